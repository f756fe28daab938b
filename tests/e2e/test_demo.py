"""The researcher's whole flow over real HTTP: hub and three stations as separate processes."""

import io
import json
from pathlib import Path

import httpx
import pydicom
import pytest
from rich.console import Console

from client._demo import DEMO_SITES, DemoResult, run_demo
from client._federation import LocalFederation

pytestmark = pytest.mark.slow

STATIONS = {site.station for site in DEMO_SITES}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    state = tmp_path_factory.mktemp("demo") / "state"
    return run_demo(state, seed=11, executor="sandbox", patients=12, console=Console(file=io.StringIO(), width=200))


def test_demo_every_station_returns_a_result(demo: DemoResult) -> None:
    assert demo.job_status == dict.fromkeys(STATIONS, "succeeded")
    assert set(demo.results) == STATIONS


def test_demo_search_found_every_station(demo: DemoResult) -> None:
    assert {hit["station"] for hit in demo.search_hits} == STATIONS
    assert all(hit["subjects"] is None or hit["subjects"] >= 5 for hit in demo.search_hits)


def test_demo_results_are_aggregates_without_identifiers(demo: DemoResult) -> None:
    text = json.dumps(demo.results)
    data_dir = demo.state_dir / "data"
    some_dicom = next(path for path in data_dir.rglob("*") if path.is_file() and path.suffix != ".toml")
    header = pydicom.dcmread(some_dicom, stop_before_pixels=True)

    assert str(header.PatientID) not in text
    assert str(header.SOPInstanceUID) not in text
    assert str(header.StudyInstanceUID) not in text


def test_demo_hub_holds_ciphertext_only(demo: DemoResult) -> None:
    # Section names that exist only inside cohort.json (the public catalog also says "series").
    markers = {key for cohort in demo.results.values() for key in cohort if "_by_" in key}
    assert markers
    hub_files = [path for path in (demo.state_dir / "hub").rglob("*") if path.is_file()]

    for path in hub_files:
        content = path.read_bytes()
        for marker in markers:
            assert f'"{marker}"'.encode() not in content, f"{marker} in plaintext at the hub: {path}"


def test_demo_hub_serves_its_state_again(demo: DemoResult) -> None:
    federation = LocalFederation(demo.state_dir)
    credentials = json.loads((demo.state_dir / "credentials.json").read_text())
    with federation:
        federation.start_hub(admin_password=credentials["admin"])
        login = httpx.post(
            f"{federation.hub_url}/auth/login", json={"username": "rosa", "password": credentials["rosa"]}
        )
        token = login.json()["access_token"]
        query = {"query": '{ collections(modality: "MR") { id station } }'}
        answer = httpx.post(f"{federation.hub_url}/graphql", json=query, headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 200
    assert {hit["station"] for hit in answer.json()["data"]["collections"]} == STATIONS


def test_demo_is_deterministic_for_a_seed(demo: DemoResult, tmp_path: Path) -> None:
    again = run_demo(tmp_path / "again", seed=11, executor="sandbox", patients=12, console=Console(file=io.StringIO()))

    assert again.results == demo.results


def test_demo_refuses_a_foreign_state_dir(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")

    with pytest.raises(Exception, match="not a demo state"):
        run_demo(tmp_path, console=Console(file=io.StringIO()))
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_demo_stations_ran_only_with_their_stewards_signed_grants(demo: DemoResult) -> None:
    from station.audit import read_audit, verify_audit_log

    for station in STATIONS:
        log = demo.state_dir / "stations" / station / "audit.log"
        actions = [entry.action for entry in read_audit(log)]
        assert "grant.verified" in actions and "job.refused" not in actions
        assert verify_audit_log(log).ok


def test_demo_federated_run_shows_each_round_and_registers_a_model(demo: DemoResult) -> None:
    run = demo.fl_run
    assert run["status"] in {"finished", "stopped_early"}
    assert run["model_id"]
    assert all(len(row["contributed"]) == len(STATIONS) for row in run["rounds"])
    accuracies = [row["metrics"]["val_accuracy"] for row in run["rounds"]]
    assert accuracies[-1] >= 0.6  # chest vs abdomen is learnable in three rounds


def test_demo_station_updates_carry_no_identifiers(demo: DemoResult) -> None:
    text = json.dumps(demo.fl_run)
    some_dicom = next(
        path for path in (demo.state_dir / "data").rglob("*") if path.is_file() and path.suffix != ".toml"
    )
    header = pydicom.dcmread(some_dicom, stop_before_pixels=True)

    assert str(header.PatientID) not in text
    assert str(header.SOPInstanceUID) not in text
