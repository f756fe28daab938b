"""Disclosure rules every output passes before it leaves the station.

After :func:`station.outputs.collect_outputs` has checked that only declared, well-typed files
were written, :func:`check_disclosure` looks inside them:

* **JSON**: no count between 1 and k-1 (any integer in that range, except under the few keys
  that are not counts: ``k``, ``version``, ``seed``, ``epoch(s)``, ``round(s)``…); no per-record
  data (an array longer than ``max_array`` or an object with more than ``max_keys`` members); no
  identifier (a DICOM-UID-shaped text, or a text whose keyed hash is a patient pseudonym of the
  collection — the station's index holds only pseudonyms, so patient IDs are recognised without
  the station ever storing them).
* **CSV / text**: the same identifier scan, and at most ``max_array`` lines.
* **safetensors**: floating-point tensors only (small integer tensors, such as batch-norm
  counters, up to ``max_int_elements``), at most ``max_tensor_elements`` elements per file —
  raw pixel arrays are integers and large, so they do not pass. A compressed update (``topk``,
  ``sign``, packed or per tensor) must decode whole, and what it decodes to meets the same rules.

A violation raises :class:`OutputViolation` naming the file and the rule; the agent withholds
the result, tells the researcher the rule, and keeps the files for the steward's review.

No output is ever DICOM: a train declares only json, csv, text or safetensors
(:class:`protocol.OutputSpec`), and a DICOM file written under any of them fails the type check
or these rules (its UIDs), so the Annex E de-identification (:mod:`station.deid`) has no derived
DICOM to process and serves ``trainyard station deidentify`` only.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocol import PolicyError
from trainkit.compression import UpdateTooLarge, decompress_update

__all__ = ["DisclosureRules", "OutputViolation", "check_disclosure", "filter_log_tail"]

_UID = re.compile(r"(?<![\d.])[0-2](?:\.(?:0|[1-9]\d*)){4,}(?![\d.])")
_TOKEN = re.compile(r"[A-Za-z0-9^._-]{3,64}")
_WORD = re.compile(r"[^\W_]{4,64}")
_NOT_COUNTS = frozenset(
    {"k", "version", "seed", "epoch", "epochs", "round", "rounds", "step", "steps", "dim", "dims", "n_classes"}
)
_FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"})


class OutputViolation(PolicyError):
    """An output breaks a disclosure rule; ``rule`` names it for the researcher and the steward."""

    def __init__(self, output: str, rule: str, detail: str) -> None:
        super().__init__(f"the output {output!r} breaks the rule '{rule}': {detail}")
        self.output = output
        self.rule = rule


@dataclass(frozen=True)
class DisclosureRules:
    """The limits of one station; ``is_patient`` tells whether a text is one of its patients' IDs."""

    k: int = 5
    max_array: int = 1000
    max_keys: int = 2000
    max_tensor_elements: int = 200_000_000
    max_int_elements: int = 1024
    max_values: int = 20_000  # all the numbers and texts of one JSON result together
    max_depth: int = 32
    is_patient: Callable[[str], bool] = field(default=lambda _text: False)
    is_name: Callable[[str], bool] = field(default=lambda _word: False)
    """Whether a word is part of a patient's name in this collection (keyed hashes of the index)."""


def _identifier_in(text: str, rules: DisclosureRules) -> str | None:
    match = _UID.search(text)
    if match:
        return "a DICOM UID"
    for token in {text.strip(), *_TOKEN.findall(text)}:
        if token and rules.is_patient(token):
            return "a patient ID of this collection"
    for word in _WORD.findall(text):
        if rules.is_name(word.lower()):
            return "a patient's name of this collection"
    return None


class _Budget:
    """How many more values a JSON result may hold (one list per row of a table is per-record data)."""

    def __init__(self, values: int) -> None:
        self.left = values


def _walk_json(
    name: str, value: Any, rules: DisclosureRules, path: str, key: str | None, budget: _Budget, depth: int = 0
) -> None:
    where = path or "the document"
    if depth > rules.max_depth:
        raise OutputViolation(name, "no per-record data", f"{where} nests deeper than {rules.max_depth} levels")
    budget.left -= 1
    if budget.left < 0:
        raise OutputViolation(
            name, "no per-record data", f"the document holds more than {rules.max_values} values in all"
        )
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if 0 < value < rules.k and (key or "").lower() not in _NOT_COUNTS:
            raise OutputViolation(
                name, "small counts", f"{where} is {value}, a count between 1 and {rules.k - 1} (k = {rules.k})"
            )
        return
    if isinstance(value, float):
        return
    if isinstance(value, str):
        found = _identifier_in(value, rules)
        if found:
            raise OutputViolation(name, "no identifiers", f"{where} holds {found}")
        return
    if isinstance(value, list):
        if len(value) > rules.max_array:
            raise OutputViolation(
                name, "no per-record data", f"{where} is a list of {len(value)} items (limit {rules.max_array})"
            )
        for index, item in enumerate(value):
            _walk_json(name, item, rules, f"{path}[{index}]", key, budget, depth + 1)
        return
    if isinstance(value, dict):
        if len(value) > rules.max_keys:
            raise OutputViolation(
                name, "no per-record data", f"{where} has {len(value)} members (limit {rules.max_keys})"
            )
        for member, item in value.items():
            found = _identifier_in(str(member), rules)
            if found:
                raise OutputViolation(name, "no identifiers", f"a key of {where} holds {found}")
            _walk_json(name, item, rules, f"{path}.{member}" if path else str(member), str(member), budget, depth + 1)


def _check_text(name: str, text: str, rules: DisclosureRules) -> None:
    lines = text.splitlines()
    if len(lines) > rules.max_array + 1:
        raise OutputViolation(name, "no per-record data", f"{len(lines)} lines (limit {rules.max_array})")
    for number, line in enumerate(lines, start=1):
        for cell in re.split(r"[,;\t]", line):
            found = _identifier_in(cell, rules)
            if found:
                raise OutputViolation(name, "no identifiers", f"line {number} holds {found}")


_COMPRESSED = {"topk", "sign"}
# Metadata of a compressed update that lists its tensors' names and sizes (checked by decoding).
_LAYOUT_KEYS = {"shapes", "layout", "whole", "ints", "index"}


def _check_compressed(name: str, data: bytes, metadata: dict[str, Any], rules: DisclosureRules) -> None:
    """A compressed update must decode whole; its decoded tensors meet the same rules as dense ones.

    The packed stream (one uint8 tensor) and per-tensor index or bit arrays are positions and
    signs, not data: what is counted is what they decode to.
    """
    compression = str(metadata.get("compression"))
    try:  # the size is checked before anything is expanded: a small file may declare a huge model
        dense = decompress_update(data, limit=rules.max_tensor_elements)
    except UpdateTooLarge as exc:
        raise OutputViolation(name, "tensor size", str(exc)) from exc
    except ValueError as exc:
        raise OutputViolation(
            name, "tensors are model parameters", f"the {compression} update does not decode: {exc}"
        ) from exc
    _check_metadata(name, metadata, rules, layout=_LAYOUT_KEYS)
    _check_tensor_sizes(
        name,
        ((tensor, str(a.dtype), bool(np.issubdtype(a.dtype, np.floating)), int(a.size)) for tensor, a in dense.items()),
        rules,
    )


def _check_metadata(name: str, metadata: dict[str, Any], rules: DisclosureRules, *, layout: set[str]) -> None:
    """No identifier in a safetensors file's text metadata (``layout`` keys list tensor names and sizes)."""
    for key, value in metadata.items():
        found = None if key in layout else _identifier_in(str(value), rules)
        if found:
            raise OutputViolation(name, "no identifiers", f"the metadata holds {found}")


def _check_tensor_sizes(name: str, tensors: Iterable[tuple[str, str, bool, int]], rules: DisclosureRules) -> None:
    """Integer tensors stay small and all tensors together under the limit (``(name, dtype, float?, size)``)."""
    total = 0
    for tensor, dtype, floating, elements in tensors:
        total += elements
        if not floating and elements > rules.max_int_elements:
            raise OutputViolation(
                name,
                "tensors are model parameters",
                f"tensor {tensor!r} is {dtype} with {elements} elements: integer arrays that large look like "
                f"image data (limit {rules.max_int_elements})",
            )
    if total > rules.max_tensor_elements:
        raise OutputViolation(name, "tensor size", f"{total} elements in all (limit {rules.max_tensor_elements})")


def _check_safetensors(name: str, data: bytes, rules: DisclosureRules) -> None:
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size].decode("utf-8"))
    metadata = header.get("__metadata__") or {}
    if str(metadata.get("compression", "none")) in _COMPRESSED:
        _check_compressed(name, data, metadata, rules)
        return
    _check_metadata(name, metadata, rules, layout={"shapes"})  # shapes: an empty object in a dense update
    sizes = (_header_size(tensor, info) for tensor, info in header.items() if tensor != "__metadata__")
    _check_tensor_sizes(name, sizes, rules)


def _header_size(tensor: str, info: dict[str, Any]) -> tuple[str, str, bool, int]:
    dtype = str(info.get("dtype", "?"))
    return tensor, dtype, dtype in _FLOAT_DTYPES, math.prod(int(dim) for dim in info.get("shape", []))


def check_disclosure(files: Iterable[tuple[str, str, bytes]], rules: DisclosureRules) -> None:
    """Check ``(name, type, data)`` outputs; raise :class:`OutputViolation` at the first breach.

    Examples
    --------
    >>> check_disclosure([("cohort.json", "json", b'{"subjects": 12, "k": 5}')], DisclosureRules())
    >>> try:
    ...     check_disclosure([("cohort.json", "json", b'{"smokers": 3}')], DisclosureRules())
    ... except OutputViolation as exc:
    ...     print(exc.rule)
    small counts
    """
    for name, kind, data in files:
        if kind == "json":
            _walk_json(name, json.loads(data.decode("utf-8")), rules, "", None, _Budget(rules.max_values))
        elif kind in {"csv", "text"}:
            _check_text(name, data.decode("utf-8"), rules)
        elif kind == "safetensors":
            _check_safetensors(name, data, rules)


_IDENTIFYING = re.compile(
    r"\b(Patient(?:ID|Name|BirthDate|Address|TelephoneNumbers)|AccessionNumber|OtherPatientIDs|"
    r"InstitutionName|ReferringPhysicianName|StudyID)\b\s*[=:]\s*\S+(?:[ \t]+[^\s=:,;]+)?",
)


def filter_log_tail(
    text: str,
    is_patient: Callable[[str], bool],
    *,
    is_name: Callable[[str], bool] = lambda _word: False,
    max_lines: int = 20,
    max_chars: int = 1500,
) -> str:
    """The last lines of a train's output, safe to send: patient ids and DICOM UIDs redacted.

    Every word that is a patient id of the collection becomes ``[patient-id]``, a part of a
    patient's name ``[name]``, every dotted
    UID ``[uid]``, the value after an identifying keyword (``PatientName=...``) ``[redacted]``;
    control characters are dropped and the tail is cut to ``max_lines`` lines
    and ``max_chars`` characters.

    Examples
    --------
    >>> filter_log_tail("seen P001 in 1.2.840.10008.1.2.3", lambda word: word == "P001")
    'seen [patient-id] in [uid]'
    """
    lines = text.replace("\r", "\n").splitlines()[-max_lines:]
    cleaned = []
    for line in lines:
        line = "".join(char for char in line if char.isprintable() or char == "\t")
        line = _IDENTIFYING.sub(lambda match: f"{match.group(1)}=[redacted]", line)
        line = _UID.sub("[uid]", line)
        line = _TOKEN.sub(lambda match: "[patient-id]" if is_patient(match.group(0)) else match.group(0), line)
        line = _WORD.sub(lambda match: "[name]" if is_name(match.group(0).lower()) else match.group(0), line)
        cleaned.append(line)
    tail = "\n".join(cleaned).strip()
    return tail[-max_chars:]
