"""``trainyard station ...`` through typer's runner; enrol/publish/run against a tiny real HTTP server."""

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

import protocol
from station.cli import app
from station.state import StationState

runner = CliRunner()


def _flat(output: str) -> str:
    """The output with rich's box drawing and line wrapping removed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


TOKEN = "cli-api-token-abcdefghijklmnop"


class _Hub(BaseHTTPRequestHandler):
    received: dict[str, object] = {}

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _reply(self, status: int, body: object | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, object]:
        body: dict[str, object] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        return body

    def do_POST(self) -> None:
        if self.path == "/stations/enrol":
            body = self._body()
            if body["enrolment_token"] != "good-enrolment-token":
                self._reply(403, {"detail": "the enrolment token is used, expired or wrong"})
                return
            self.received["enrol"] = body
            self._reply(201, {"station_id": "st-9", "api_token": TOKEN})
        else:
            self._reply(404, {"detail": "no route"})

    def do_PUT(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._reply(401, {"detail": "bad token"})
            return
        self.received[self.path] = self._body()
        self._reply(200, {"id": "x"})

    def do_GET(self) -> None:
        self.received["polled"] = self.headers.get("Authorization") == f"Bearer {TOKEN}"
        self._reply(204)


@pytest.fixture()
def hub_url() -> Iterator[str]:
    _Hub.received = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "data"
    result = runner.invoke(app, ["synth", str(root), "--site-index", "2", "--seed", "4", "--patients", "6"])
    assert result.exit_code == 0, result.output
    (root / "README.txt").write_text("not DICOM")
    return root


def test_synth_writes_files(data: Path) -> None:
    assert sum(1 for p in data.rglob("*") if p.is_file()) > 30


def test_harvest_prints_summary_and_skipped(data: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["harvest", str(data), "--state", str(tmp_path / "s"), "--collection", "mixed", "--title", "Mixed"]
    )

    assert result.exit_code == 0, result.output
    assert "subjects" in result.output
    assert "<5" in result.output  # site 2 with 6 patients has small counts
    assert "README.txt: not a DICOM file" in result.output
    record = StationState(tmp_path / "s").read_collection("mixed")
    assert record is not None and record.root == str(data.resolve())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["harvest", "{data}", "--state", "{tmp}", "--collection", "Bad Slug", "--title", "T"], "not a slug"),
        (["harvest", "{tmp}/missing", "--state", "{tmp}", "--collection", "c", "--title", "T"], "does not exist"),
        (["publish", "--state", "{tmp}"], "enrol"),
        (["run", "--state", "{tmp}", "--once"], "enrol"),
        (["run", "--state", "{tmp}", "--executor", "podman"], "podman"),
        (["enrol", "--state", "{tmp}", "--hub", "hub", "--name", "a", "--token", "t" * 20], "http"),
        (["enrol", "--state", "{tmp}", "--hub", "http://h", "--name", "A!", "--token", "t" * 20], "not a slug"),
        (["synth", "{tmp}/out", "--patients", "0"], "patients"),
    ],
)
def test_bad_input_exits_2_without_traceback(data: Path, tmp_path: Path, args: list[str], message: str) -> None:
    argv = [arg.format(data=data, tmp=tmp_path) for arg in args]

    result = runner.invoke(app, argv)

    assert result.exit_code == 2, result.output
    assert message in _flat(result.output)
    assert "Traceback" not in result.output


def test_enrol_unreachable_hub_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["enrol", "--state", str(tmp_path), "--hub", "http://127.0.0.1:9", "--name", "a", "--token", "t" * 20]
    )

    assert result.exit_code == 1
    assert "cannot reach the hub" in _flat(result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_enrol_harvest_publish_run_over_http(data: Path, tmp_path: Path, hub_url: str) -> None:
    state = tmp_path / "state"

    # Execute
    refused = runner.invoke(
        app, ["enrol", "--state", str(state), "--hub", hub_url, "--name", "site-c", "--token", "wrong-token-0123456"]
    )
    enrolled = runner.invoke(
        app, ["enrol", "--state", str(state), "--hub", hub_url, "--name", "site-c", "--token", "good-enrolment-token"]
    )
    again = runner.invoke(
        app, ["enrol", "--state", str(state), "--hub", hub_url, "--name", "site-c", "--token", "good-enrolment-token"]
    )
    harvested = runner.invoke(
        app, ["harvest", str(data), "--state", str(state), "--collection", "thorax", "--title", "Thorax"]
    )
    published = runner.invoke(app, ["publish", "--state", str(state)])
    ran = runner.invoke(app, ["run", "--state", str(state), "--once", "--executor", "sandbox", "--allow-unisolated"])

    # Assert
    assert refused.exit_code == 1 and "403" in _flat(refused.output)
    assert enrolled.exit_code == 0, enrolled.output
    assert TOKEN not in enrolled.output
    assert again.exit_code == 2 and "already enrolled" in _flat(again.output)
    assert harvested.exit_code == 0, harvested.output
    assert published.exit_code == 0, published.output
    assert "published site-c/thorax" in published.output
    publication = protocol.CollectionPublication.model_validate(_Hub.received["/stations/me/collections/thorax"])
    protocol.verify_publication(publication, StationState(state).load_keys().signing_public)
    assert ran.exit_code == 0, ran.output
    assert _Hub.received["polled"] is True
