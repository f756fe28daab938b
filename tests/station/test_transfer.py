"""The station's side of large transfers, against the real hub app: resumable uploads and downloads.

The slow test moves a 1 GiB safetensors update station → hub over real loopback HTTP to a hub in
its own process, and checks the hub's peak resident memory grows far less than the model's size.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from hub import Settings, create_app
from hub.core import security
from protocol import (
    DEFAULT_CHUNK_BYTES,
    ContentHashError,
    JobStatus,
    ModelUpdateRef,
    ResultEnvelope,
    content_address,
    load_key_pair,
    seal,
    sign_envelope,
)
from station.agent import StationAgent, StationSignature
from station.config import StationSettings
from station.state import StationState
from station.transfer import TransferError, TransferRefused, download_file, upload_file

HUB_TESTS = Path(__file__).resolve().parents[1] / "hub"
sys.path.insert(0, str(HUB_TESTS))  # the hub tests' factories make the federated job through the real API
from fl_jobs import RunningRound, running_round  # noqa: E402
from hub_factories import sign_station_requests  # noqa: E402

CHUNK = 4096
DATA = os.urandom(5 * CHUNK + 123)


@pytest.fixture
def hub_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(security, "_N", 2**8)
    settings = Settings(state_dir=tmp_path / "hub", base_iri="http://hub.test", upload_chunk_bytes=CHUNK)
    with TestClient(create_app(settings)) as client:
        client.event_hooks["request"].append(sign_station_requests)
        yield client


@pytest.fixture
def fl(hub_app: TestClient) -> RunningRound:
    return running_round(hub_app)


@pytest.fixture
def station_client(hub_app: TestClient, fl: RunningRound) -> TestClient:
    """A client of the same app that signs as the station does (StationSignature)."""
    client = TestClient(hub_app.app)
    client.headers.update(fl.station.headers)
    client.auth = StationSignature(fl.station.keys)
    return client


def _drop_after(client: httpx.Client, chunks: int) -> list[int]:
    """Make the connection drop once, before the chunk after ``chunks`` chunk PUTs; return the offsets sent."""
    sent: list[int] = []
    dropped: list[bool] = []

    def hook(request: httpx.Request) -> None:
        if request.method == "PUT" and "/uploads/" in request.url.path:
            if len(sent) == chunks and not dropped:
                dropped.append(True)
                raise httpx.ConnectError("the connection dropped", request=request)
            sent.append(int(request.url.path.rsplit("/", 1)[1]))

    client.event_hooks["request"].append(hook)
    return sent


def test_an_upload_broken_off_midway_resumes_from_the_hub_s_offset(
    station_client: TestClient, fl: RunningRound, tmp_path: Path
) -> None:
    update = tmp_path / "update.safetensors"
    update.write_bytes(DATA)
    first = _drop_after(station_client, 2)

    with pytest.raises(TransferError, match="did not arrive"):
        upload_file(station_client, fl.job.job_id, update, address=content_address(DATA), chunk_bytes=1 << 20)
    station_client.event_hooks["request"].clear()
    resumed = _drop_after(station_client, 100)
    status = upload_file(station_client, fl.job.job_id, update, address=content_address(DATA))

    assert first == [0, CHUNK]  # the hub's chunk size wins over the station's larger wish
    assert resumed == [2 * CHUNK, 3 * CHUNK, 4 * CHUNK, 5 * CHUNK]  # nothing sent twice
    assert status.complete and status.offset == len(DATA)
    assert station_client.get(f"/artifacts/{content_address(DATA)}").content == DATA


def test_an_upload_the_hub_refuses_for_good_says_why(
    station_client: TestClient, fl: RunningRound, tmp_path: Path
) -> None:
    update = tmp_path / "update.safetensors"
    update.write_bytes(DATA)

    with pytest.raises(TransferRefused, match="does not match its address") as refused:
        upload_file(station_client, fl.job.job_id, update, address=content_address(b"something else"))

    assert refused.value.status == 400


def test_a_download_resumes_a_partial_file_with_a_range_request(
    station_client: TestClient, fl: RunningRound, tmp_path: Path
) -> None:
    address = content_address(DATA)
    update = tmp_path / "update.safetensors"
    update.write_bytes(DATA)
    upload_file(station_client, fl.job.job_id, update, address=address)
    target = tmp_path / "global.safetensors"
    target.with_name("global.safetensors.part").write_bytes(DATA[:7000])  # what a dropped download left
    answers: list[tuple[int, int]] = []
    station_client.event_hooks["response"].append(
        lambda response: answers.append((response.status_code, int(response.headers.get("content-length", -1))))
    )

    download_file(station_client, f"/artifacts/{address}", target, address=address, max_bytes=1 << 20)

    assert target.read_bytes() == DATA
    assert answers == [(206, len(DATA) - 7000)]
    assert not target.with_name("global.safetensors.part").exists()


def test_a_download_that_does_not_match_its_address_or_is_too_large_is_refused(
    station_client: TestClient, fl: RunningRound, tmp_path: Path
) -> None:
    address = content_address(DATA)
    update = tmp_path / "update.safetensors"
    update.write_bytes(DATA)
    upload_file(station_client, fl.job.job_id, update, address=address)
    target = tmp_path / "global.safetensors"
    target.with_name("global.safetensors.part").write_bytes(b"\0" * 100)  # a partial file gone bad

    with pytest.raises(ContentHashError, match="does not match its address"):
        download_file(station_client, f"/artifacts/{address}", target, address=address, max_bytes=1 << 20)
    with pytest.raises(TransferRefused, match="larger than the limit"):
        download_file(station_client, f"/artifacts/{address}", target, address=address, max_bytes=CHUNK)
    with pytest.raises(TransferRefused) as missing:
        download_file(station_client, f"/artifacts/{content_address(b'x')}", target, address=address, max_bytes=CHUNK)

    assert missing.value.status == 404
    assert not target.exists() and not target.with_name("global.safetensors.part").exists()


def test_the_agent_sends_an_update_the_hub_will_not_take_whole_in_chunks_and_resumes_after_a_drop(
    station_client: TestClient, fl: RunningRound, state: StationState, settings: StationSettings
) -> None:
    agent = StationAgent(settings, client=station_client, retry_delays=(0.0,), sleep=lambda _s: None)
    agent.outbox.put_update(fl.job.job_id, DATA)  # above the hub's 4 KiB chunks: one PUT gets 413
    envelope = ResultEnvelope(
        job_id=fl.job.job_id,
        train_id=fl.job.train_id,
        station=fl.station.name,
        status=JobStatus.SUCCEEDED,
        sealed=seal(b"{}", fl.researcher.keys.encryption_public, associated_data=fl.job.job_id),
        update=ModelUpdateRef(address=content_address(DATA), size=len(DATA), num_examples=10),
        created_at=datetime.now(UTC),
    )
    signed = sign_envelope(envelope, fl.station.keys.signing)
    agent.outbox.put(signed)
    sent = _drop_after(station_client, 3)  # the first attempt breaks off after three chunks

    assert agent.upload(signed)

    assert sent == [0, CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK, 5 * CHUNK]  # resumed at the hub's offset
    assert station_client.get(f"/artifacts/{content_address(DATA)}").content == DATA
    assert not agent.outbox.has(fl.job.job_id)


# -- 1 GiB over real loopback, the hub in its own process ----------------------------------------------

_HUB_SERVER = """
import json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from bench._serve import serve_on_loopback
from hub import Settings, create_app
from hub.core import security
from protocol import save_key_pair
from fl_jobs import running_round
from hub_factories import sign_station_requests

security._N = 2**8
state = Path(sys.argv[1])
app = create_app(Settings(state_dir=state / "hub", base_iri="http://127.0.0.1", max_update_bytes=2 << 30))
with serve_on_loopback(app) as url:
    client = TestClient(app)
    client.event_hooks["request"].append(sign_station_requests)
    fl = running_round(client)
    save_key_pair(fl.station.keys, state / "keys")
    info = {"url": url, "headers": fl.station.headers, "job_id": fl.job.job_id}
    print(json.dumps(info), flush=True)
    sys.stdin.read()  # serve until the test closes our stdin
"""


def _memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def _write_safetensors(path: Path, floats: int) -> str:
    """Write a float32 safetensors file of ``floats`` values block by block; return its content address."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [floats], "data_offsets": [0, floats * 4]}}).encode()
    header += b" " * (-len(header) % 8)
    digest = hashlib.sha256()
    block = (b"\0\0\0\0" * 1023 + b"\0\0\x80\x3f") * 2048  # zeros with a 1.0 every 4 KiB: 8 MiB
    with path.open("wb") as out:
        for part in (len(header).to_bytes(8, "little"), header):
            out.write(part)
            digest.update(part)
        left = floats * 4
        while left:
            piece = block[: min(left, len(block))]
            out.write(piece)
            digest.update(piece)
            left -= len(piece)
    return "sha256:" + digest.hexdigest()


@pytest.mark.slow
def test_a_1_gib_update_crosses_loopback_with_the_hub_s_memory_far_below_its_size(tmp_path: Path) -> None:
    update = tmp_path / "update.safetensors"
    address = _write_safetensors(update, 256 << 20)  # 2**28 float32: 1 GiB of tensor data
    size = update.stat().st_size
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HUB_TESTS), str(Path.cwd())])}
    server = subprocess.Popen(
        [sys.executable, "-c", _HUB_SERVER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        keys = load_key_pair(tmp_path / "keys")
        before_kb = _memory_kb(server.pid, "VmRSS")
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # peak RSS starts again from here
        with httpx.Client(
            base_url=info["url"], headers=info["headers"], auth=StationSignature(keys), timeout=120
        ) as client:
            started = time.monotonic()
            status = upload_file(client, info["job_id"], update, address=address)
            upload_s = time.monotonic() - started
            upload_peak_kb = _memory_kb(server.pid, "VmHWM")
            target = tmp_path / "downloaded.safetensors"
            started = time.monotonic()
            download_file(client, f"/artifacts/{address}", target, address=address, max_bytes=2 << 30)
            download_s = time.monotonic() - started
        peak_kb = _memory_kb(server.pid, "VmHWM")
        stored = tmp_path / "hub" / "artifacts" / "sha256" / address.removeprefix("sha256:")
        report = (
            f"1 GiB update ({size} bytes, {DEFAULT_CHUNK_BYTES >> 20} MiB chunks): upload {upload_s:.1f} s, "
            f"download {download_s:.1f} s; hub RSS before {before_kb // 1024} MiB, peak increase during upload "
            f"{(upload_peak_kb - before_kb) // 1024} MiB, during upload and download "
            f"{(peak_kb - before_kb) // 1024} MiB"
        )
        print(report)
        assert status.complete and stored.stat().st_size == size
        assert target.stat().st_size == size
        assert (peak_kb - before_kb) * 1024 < 300 << 20, report
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=60)
        for path in tmp_path.rglob("*.safetensors"):
            path.unlink()
        stored_dir = tmp_path / "hub" / "artifacts" / "sha256"
        for path in stored_dir.glob("*") if stored_dir.is_dir() else ():
            path.unlink()
