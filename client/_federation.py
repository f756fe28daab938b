"""A local federation on loopback: one hub and several stations as separate processes.

Used by ``trainyard demo`` and the end-to-end tests. Each process is the real
``trainyard hub serve`` / ``trainyard station run`` command; everything between them
is real HTTP.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx

from protocol import TrainyardError

__all__ = ["FederationError", "LocalFederation", "free_port", "run_cli"]

_STARTUP_TIMEOUT_S = 60.0


class FederationError(TrainyardError):
    """A process of the local federation failed to start or a command failed."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cli() -> list[str]:
    return [sys.executable, "-m", "client.cli"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_cli(args: Sequence[str], *, log: Path) -> str:
    """Run one ``trainyard`` command to completion; return its output, raise with its tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run([*_cli(), *args], capture_output=True, text=True, env=_env(), check=False)
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ trainyard {' '.join(args)}\n{completed.stdout}{completed.stderr}\n")
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
        raise FederationError(f"'trainyard {args[0]} {args[1] if len(args) > 1 else ''}' failed:\n{tail}")
    return completed.stdout


class LocalFederation:
    """Starts and stops the hub and station processes of a federation in ``state_dir``."""

    def __init__(self, state_dir: Path, *, port: int | None = None) -> None:
        self.state_dir = state_dir
        self.port = port or free_port()
        self.hub_url = f"http://127.0.0.1:{self.port}"
        self.logs = state_dir / "logs"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> LocalFederation:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _spawn(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen([*_cli(), *args], stdout=log, stderr=subprocess.STDOUT, env=_env())
        log.close()
        self._processes[name] = process
        return process

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The last lines a process wrote to its log."""
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def start_hub(self, *, admin_password: str) -> None:
        """Initialise the hub's state and serve it; return once it answers."""
        hub_state = str(self.state_dir / "hub")
        run_cli(
            ["hub", "init", "--state", hub_state, "--admin-user", "admin", "--admin-password", admin_password],
            log=self.logs / "hub-init.log",
        )
        process = self._spawn("hub", ["hub", "serve", "--state", hub_state, "--port", str(self.port)])
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise FederationError(f"the hub exited with {process.returncode}:\n{self.log_tail('hub')}")
            try:
                if httpx.get(f"{self.hub_url}/openapi.json", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise FederationError(f"the hub did not answer within {_STARTUP_TIMEOUT_S:.0f} s:\n{self.log_tail('hub')}")

    def start_station(self, name: str, *, executor: str) -> None:
        """Run a station's agent; it long-polls the hub for jobs."""
        args = ["station", "run", "--state", str(self.station_state(name)), "--executor", executor]
        self._spawn(f"station-{name}", [*args, "--allow-unisolated"])

    def prepare_station(
        self,
        name: str,
        *,
        token: str,
        collection: str,
        title: str,
        site_index: int = 0,
        seed: int = 1,
        patients: int = 8,
        steward: tuple[str, str] | None = None,
        collection_toml: str | None = None,
    ) -> Path:
        """Set a station up with the real CLI: synthetic DICOM, enrol, harvest, publish, trust a steward.

        Parameters
        ----------
        name, token
            The station's name and its one-time enrolment token.
        collection, title
            The collection harvested from the synthetic data.
        site_index, seed, patients
            What ``station synth`` generates (the site index picks the scanner vendor).
        steward
            ``(name, signing public key)`` of the steward whose grants the station accepts.
        collection_toml
            A ``collection.toml`` (rule and metadata) written next to the synthetic files.

        Returns
        -------
        Path
            The station's state folder.
        """
        state = self.station_state(name)
        data = self.state_dir / "data" / name
        log = self.logs / f"setup-{name}.log"
        synth = ["station", "synth", str(data), "--site-index", str(site_index), "--seed", str(seed)]
        run_cli([*synth, "--patients", str(patients)], log=log)
        if collection_toml is not None:
            (data / "collection.toml").write_text(collection_toml, encoding="utf-8")
        run_cli(
            ["station", "enrol", "--state", str(state), "--hub", self.hub_url, "--name", name, "--token", token],
            log=log,
        )
        harvest = ["station", "harvest", str(data), "--state", str(state), "--collection", collection]
        run_cli([*harvest, "--title", title], log=log)
        run_cli(["station", "publish", "--state", str(state)], log=log)
        if steward is not None:
            steward_name, key = steward
            run_cli(["station", "stewards", "add", steward_name, "--key", key, "--state", str(state)], log=log)
        return state

    def station_state(self, name: str) -> Path:
        """Where a station keeps its state."""
        return self.state_dir / "stations" / name

    def check_alive(self) -> None:
        """Raise when any process of the federation has exited."""
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise FederationError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def stop(self) -> None:
        """Stop every process: stations first, then the hub."""
        for name in sorted(self._processes, key=lambda item: item == "hub"):
            process = self._processes[name]
            if process.poll() is None:
                process.terminate()
        for process in self._processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
