"""Disclosure rules on outputs, and the agent withholding a result that breaks one."""

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from protocol import Job, JobStatus, KeyPair
from station.agent import StationAgent
from station.audit import read_audit
from station.config import StationSettings
from station.executors import RunSpec
from station.output_policy import DisclosureRules, OutputViolation, check_disclosure
from station.state import StationState


def safetensors(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    header: dict[str, Any] = {}
    offset = 0
    sizes = {"F32": 4, "F16": 2, "I16": 2, "U8": 1, "I64": 8}
    for name, (dtype, shape) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        size = count * sizes[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def rule_of(files: list[tuple[str, str, bytes]], rules: DisclosureRules | None = None) -> str | None:
    try:
        check_disclosure(files, rules or DisclosureRules())
    except OutputViolation as exc:
        return exc.rule
    return None


@pytest.mark.parametrize(
    ("document", "rule"),
    [
        ({"subjects": 12, "by_sex": {"F": 7, "M": 5, "O": 0}, "k": 5, "suppressed": None}, None),
        ({"subjects": 12, "by_sex": {"F": 9, "M": 3}}, "small counts"),
        ({"version": 2, "epochs": 3, "mean": 1.5}, None),
        ({"rows": list(range(5, 2000))}, "no per-record data"),
        ({"note": "series 1.2.840.113619.2.55.3.604688119"}, "no identifiers"),
        ({"1.2.826.0.1.3680043.8.498.1": 10}, "no identifiers"),
        ({"train": {"name": "cohort-stats", "version": "0.1.0"}}, None),
        ({"pixels": [[0.5] * 999 for _ in range(999)]}, "no per-record data"),  # rows within limits, too many in all
        ({"a": {"b": {"c": 5}}}, None),
        (json.loads("[" * 40 + "5" + "]" * 40), "no per-record data"),  # nests deeper than 32 levels
    ],
)
def test_json_rules(document: object, rule: str | None) -> None:
    assert rule_of([("out.json", "json", json.dumps(document).encode())]) == rule


def test_patient_ids_are_recognised_through_the_keyed_pseudonym() -> None:
    rules = DisclosureRules(is_patient=lambda text: text == "PAT-00042")

    assert rule_of([("out.json", "json", b'{"worst": "PAT-00042"}')], rules) == "no identifiers"
    assert rule_of([("log.txt", "text", b"processing PAT-00042 now")], rules) == "no identifiers"
    assert rule_of([("out.csv", "csv", b"site,count\nnorth,12\n")], rules) is None


def test_csv_with_a_row_per_record_is_refused() -> None:
    rows = "\n".join(f"{n},{n * 2}" for n in range(1500))

    assert rule_of([("out.csv", "csv", rows.encode())]) == "no per-record data"


def test_float_weights_pass_and_integer_pixel_arrays_do_not() -> None:
    weights = safetensors({"conv.weight": ("F32", [16, 1, 3, 3]), "bn.num_batches_tracked": ("I64", [])})
    pixels = safetensors({"images": ("I16", [4, 64, 64])})

    assert rule_of([("model.safetensors", "safetensors", weights)]) is None
    assert rule_of([("model.safetensors", "safetensors", pixels)]) == "tensors are model parameters"


def test_oversized_tensors_are_refused() -> None:
    big = safetensors({"w": ("F16", [1000, 1000])})

    assert rule_of([("m.safetensors", "safetensors", big)], DisclosureRules(max_tensor_elements=10_000)) == (
        "tensor size"
    )


def test_agent_withholds_a_result_that_prints_a_patient_id(
    settings: StationSettings,
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
    synthetic_root: Path,
) -> None:
    some_file = next(path for path in sorted(synthetic_root.rglob("*")) if path.is_file())
    patient_id = str(pydicom.dcmread(some_file, stop_before_pixels=True).PatientID)

    def leak(spec: RunSpec) -> None:
        (spec.out_dir / "result.json").write_text(json.dumps({"oldest_patient": patient_id}))

    hub.add_bundle(train_bundle)
    agent = StationAgent(settings, client=hub.client(), executor=fake_executor(leak), retry_delays=(0.0,))

    agent.process_job(job_for(researcher, train_bundle))

    envelope = hub.results["job-1"]
    assert envelope.status == JobStatus.FAILED and envelope.sealed is None
    assert envelope.failure is not None
    assert "withheld for the steward's review" in envelope.failure.reason
    assert "no identifiers" in envelope.failure.reason
    assert patient_id not in envelope.model_dump_json()
    review = state.root / "review"
    withheld = json.loads(next(review.rglob("withheld.json")).read_text())
    assert withheld["rule"] == "no identifiers"
    assert [entry.action for entry in read_audit(state.audit_file)].count("result.withheld") == 1
    from typer.testing import CliRunner

    from station.cli import app

    listed = CliRunner().invoke(app, ["review", "list", "--state", str(state.root)])
    shown = CliRunner().invoke(app, ["review", "show", "job-1", "--state", str(state.root)])
    discarded = CliRunner().invoke(app, ["review", "discard", "job-1", "--state", str(state.root)])
    assert "job-1" in listed.output and "no identifiers" in listed.output
    assert shown.exit_code == 0 and "result.json" in shown.output  # the steward reads what the train wrote
    assert discarded.exit_code == 0 and not any(review.iterdir())
    assert "result.discarded" in [entry.action for entry in read_audit(state.audit_file)]


def test_compressed_updates_pass_and_fake_ones_do_not() -> None:
    from trainkit.compression import compress_update, read_safetensors, write_safetensors

    weights = {"conv.weight": np.random.default_rng(1).normal(size=(64, 64, 3, 3)).astype(np.float32)}
    topk, _ = compress_update(weights, method="topk", fraction=0.05, dense_below=0)
    sign, _ = compress_update(weights, method="sign", dense_below=0)
    tensors, metadata = read_safetensors(topk)
    pixels = np.arange(200_000, dtype=np.int32) * 3  # ascending "indices" that do not fit the shape
    smuggled = write_safetensors({**tensors, "conv.weight::idx": pixels}, metadata)

    assert rule_of([("update.safetensors", "safetensors", topk)]) is None
    assert rule_of([("update.safetensors", "safetensors", sign)]) is None
    assert rule_of([("update.safetensors", "safetensors", smuggled)]) == "tensors are model parameters"


@pytest.mark.parametrize("method", ["topk", "sign"])
def test_packed_updates_pass_and_malformed_or_oversized_ones_do_not(method: str) -> None:
    from trainkit._packed import BLOB
    from trainkit.compression import compress_update, read_safetensors, write_safetensors

    rng = np.random.default_rng(2)
    weights = {
        "conv.weight": rng.normal(size=(64, 64, 3, 3)).astype(np.float32),
        "bn.running_var": rng.random(64).astype(np.float32),
        "bn.num_batches_tracked": np.array(7, dtype=np.int64),
    }
    packed, _ = compress_update(weights, method=method, fraction=0.05, dense={"bn.running_var"})
    tensors, metadata = read_safetensors(packed)
    assert tensors[BLOB].size > DisclosureRules().max_int_elements  # a uint8 stream, but positions and signs
    truncated = write_safetensors({BLOB: tensors[BLOB][:-1]}, metadata)
    nan_scale = tensors[BLOB].copy()
    nan_scale[-4:] = np.frombuffer(np.float32("nan").tobytes(), dtype=np.uint8)  # the last whole-tensor scale
    pixels = {**metadata, "ints": "bn.num_batches_tracked==I64,pixels=4096=I64"}
    smuggled = write_safetensors(
        {BLOB: np.concatenate([tensors[BLOB][:8], np.zeros(4096 * 8, np.uint8), tensors[BLOB][8:]])}, pixels
    )

    assert rule_of([("update.safetensors", "safetensors", packed)]) is None
    assert rule_of([("update.safetensors", "safetensors", truncated)]) == "tensors are model parameters"
    nan_update = write_safetensors({BLOB: nan_scale}, metadata)
    assert rule_of([("update.safetensors", "safetensors", nan_update)]) == "tensors are model parameters"
    with pytest.raises(OutputViolation, match="integer arrays that large"):
        check_disclosure([("update.safetensors", "safetensors", smuggled)], DisclosureRules())
    small = DisclosureRules(max_tensor_elements=1000)
    with pytest.raises(OutputViolation) as caught:
        check_disclosure([("update.safetensors", "safetensors", packed)], small)
    assert caught.value.rule == "tensor size"
    huge = write_safetensors(tensors, {**metadata, "layout": "conv.weight=100000x100000"})  # 10^10 from 3 kB
    assert rule_of([("update.safetensors", "safetensors", huge)]) == "tensor size"


def test_agent_withholds_a_result_with_a_patient_name_and_redacts_it_from_logs(
    settings: StationSettings,
    state: StationState,
    hub: Any,
    researcher: KeyPair,
    train_bundle: bytes,
    job_for: Callable[..., Job],
    fake_executor: Any,
    synthetic_root: Path,
) -> None:
    from station.executors import RunResult
    from station.indexer import DicomIndex

    some_file = next(path for path in sorted(synthetic_root.rglob("*")) if path.is_file())
    name = str(pydicom.dcmread(some_file, stop_before_pixels=True).PatientName)  # e.g. Synthetic^Patient0001
    given = name.split("^")[-1]
    with DicomIndex(state.index_file) as index:
        stored = " ".join(str(row) for row in index.connection.execute("SELECT * FROM name_token"))
    assert given.lower() not in stored.lower()  # the index keeps keyed hashes, never the name

    def leak(spec: RunSpec) -> None:
        (spec.out_dir / "result.json").write_text(json.dumps({"note": f"youngest is {given}"}))

    def crash(spec: RunSpec) -> RunResult:
        return RunResult(exit_code=1, timed_out=False, log_tail=f"failed on {given}", duration_s=0.1, executor="f")

    hub.add_bundle(train_bundle)
    StationAgent(settings, client=hub.client(), executor=fake_executor(leak), retry_delays=(0.0,)).process_job(
        job_for(researcher, train_bundle)
    )
    StationAgent(settings, client=hub.client(), executor=fake_executor(crash), retry_delays=(0.0,)).process_job(
        job_for(researcher, train_bundle, job_id="job-2")
    )

    withheld = hub.results["job-1"].failure
    assert withheld is not None and "a patient's name of this collection" in withheld.reason
    crashed = hub.results["job-2"].failure
    assert crashed is not None and "[name]" in crashed.reason and given not in crashed.reason


def test_name_parts_worth_matching() -> None:
    from station.indexer import name_tokens

    assert name_tokens("Doe^Johnathan^^Dr") == {"johnathan"}
    assert name_tokens("van der Berg^Anna-Lena") == {"berg", "anna", "lena"}
    assert name_tokens(None) == set()
    assert (
        rule_of(
            [("out.json", "json", b'{"note": "Johnathan"}')], DisclosureRules(is_name=lambda word: word == "johnathan")
        )
        == "no identifiers"
    )
