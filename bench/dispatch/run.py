"""Dispatch latency: a train's submission at the hub → its process starting at the station.

A real hub and one real station agent run as separate processes on loopback (the same
``LocalFederation`` as the demo), with the Docker executor by default. Each run submits a tiny
signed train whose first statement records ``time.time()`` into its output; the latency is that
moment minus the moment ``submit_train`` returned (one machine, one clock). Runs are sequential,
so each measures an idle station woken by the long-poll.

    .venv/bin/python -m bench.dispatch.run --runs 20 --executor docker

writes ``bench/results/dispatch.json`` (``executor``, ``runs``, ``p50_s``, ``p99_s``, …).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from client import TrainyardClient
from client._federation import LocalFederation
from protocol import generate_key_pair

RESULTS = Path(__file__).resolve().parents[1] / "results" / "dispatch.json"
PASSWORD = "bench-dispatch-password"
TRAIN_MAIN = """import time
started = time.time()
import json, os
json.dump({"started_at": started}, open(os.path.join(os.environ["TRAINYARD_OUT"], "t.json"), "w"))
"""
TRAIN_TOML = """name = "dispatch-probe"
version = "0.1.0"
kind = "analysis"
entrypoint = "main.py"
outputs = [{ name = "t.json", type = "json" }]
"""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def measure(runs: int, executor: str, workdir: Path) -> dict[str, object]:
    """Run the federation and ``runs`` probes; return the figures."""
    train_dir = workdir / "probe"
    train_dir.mkdir(parents=True)
    (train_dir / "main.py").write_text(TRAIN_MAIN)
    (train_dir / "train.toml").write_text(TRAIN_TOML)
    latencies: list[float] = []
    with LocalFederation(workdir / "state") as federation:
        federation.start_hub(admin_password=PASSWORD)
        hub = federation.hub_url
        steward_keys, researcher_keys = generate_key_pair(), generate_key_pair()
        with TrainyardClient(hub) as admin:
            admin.login("admin", PASSWORD)
            admin.create_user(username="rosa", password=PASSWORD, role="researcher")
            admin.create_user(username="steward-a", password=PASSWORD, role="steward", station="site-a")
            token = admin.create_enrolment_token("site-a")
        federation.prepare_station(
            "site-a",
            token=token,
            collection="c",
            title="C",
            patients=5,
            steward=("steward-a", steward_keys.signing_public),
        )
        federation.start_station("site-a", executor=executor)
        researcher = TrainyardClient(hub)
        researcher.login("rosa", PASSWORD)
        researcher.update_keys(researcher_keys)
        # The probe's collection declares no data-use conditions: any primary purpose passes screening.
        project = researcher.create_project("Dispatch", "Latency probe", data_use=["DUO:0000006", "DUO:0000031"])
        request = researcher.create_access_request(project_id=project["id"], collections=["site-a/c"])
        if request["status"] != "forwarded":
            raise RuntimeError(f"the probe's access request was {request['status']}: {request['screening']}")
        with TrainyardClient(hub) as steward:
            steward.login("steward-a", PASSWORD)
            steward.update_keys(steward_keys)
            pending = steward.read_access_requests()[0]
            steward.approve_with_grant(pending, pending["decisions"][0], keys=steward_keys, steward="steward-a")
        for number in range(runs + 1):  # the first run warms caches and is not counted
            (train_dir / "run.txt").write_text(str(number))  # a new bundle, so a new manifest
            submitted = time.time()
            train = researcher.submit_train(
                train_dir, keys=researcher_keys, researcher="rosa", project_id=project["id"], collections=["site-a/c"]
            )
            job = train["jobs"][0]
            deadline = time.monotonic() + 300
            while researcher.read_train(train["id"])["jobs"][0]["status"] not in {"succeeded", "failed"}:
                if time.monotonic() > deadline:
                    raise RuntimeError("a probe did not finish within 300 s")
                federation.check_alive()
                time.sleep(0.05)
            result = researcher.fetch_result(job["id"], keys=researcher_keys)
            started = float(result.json_output("t.json")["started_at"])
            if number:
                latencies.append(started - submitted)
            print(f"run {number}: {started - submitted:.3f} s{' (warm-up)' if not number else ''}", file=sys.stderr)
        researcher.close()
        del request
    return {
        "executor": executor,
        "runs": len(latencies),
        "p50_s": round(statistics.median(latencies), 3),
        "p99_s": round(_percentile(latencies, 0.99), 3),
        "min_s": round(min(latencies), 3),
        "max_s": round(max(latencies), 3),
        "command": f"python -m bench.dispatch.run --runs {runs} --executor {executor}",
    }


def main() -> None:
    """Parse options, measure, write ``bench/results/dispatch.json``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--executor", choices=["docker", "sandbox"], default="docker")
    parser.add_argument("--out", type=Path, default=RESULTS)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-dispatch-") as workdir:
        figures = measure(options.runs, options.executor, Path(workdir))
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
