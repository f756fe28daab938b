"""The demo flow with every station running cohort-stats in a locked-down container."""

import io
from pathlib import Path

import pytest
from docker.client import DockerClient
from rich.console import Console

from client._demo import DEMO_SITES, run_demo
from station.executors.docker import JOB_LABEL

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def test_demo_runs_cohort_stats_and_federated_rounds_in_docker_at_every_station(
    docker_client: DockerClient, torch_image: str, tmp_path: Path
) -> None:
    # Prepare
    stations = {site.station for site in DEMO_SITES}
    # Execute
    result = run_demo(tmp_path / "state", seed=5, executor="docker", patients=8, console=Console(file=io.StringIO()))
    # Assert
    assert result.job_status == dict.fromkeys(stations, "succeeded")
    assert {cohort["station"] for cohort in result.results.values()} == stations
    assert all(cohort["subjects"] == 8 for cohort in result.results.values())
    assert result.fl_run["status"] in {"finished", "stopped_early"}, result.fl_run
    assert all(len(row["contributed"]) == len(stations) for row in result.fl_run["rounds"])
    station_logs = "".join(path.read_text() for path in (tmp_path / "state" / "logs").glob("station-*.log"))
    assert "docker executor" in station_logs
    leftovers = docker_client.containers.list(all=True, filters={"label": JOB_LABEL})
    assert leftovers == []
