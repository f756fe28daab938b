"""The audit chain: every kind of tampering is named at its place."""

from datetime import UTC, datetime

import pytest
import rdflib

from protocol import (
    AuditEntry,
    AuditHead,
    AuditProblemKind,
    ProtocolError,
    audit_entries_from_jsonl,
    audit_to_prov_turtle,
    next_audit_entry,
    verify_audit_chain,
)


def make_chain(length: int = 6) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for index in range(length):
        entries.append(
            next_audit_entry(
                entries[-1] if entries else None,
                actor="rosa" if index % 2 else "steward-a",
                role="researcher" if index % 2 else "steward",
                action=f"event.{index}",
                subject=f"thing-{index}",
                details={"n": index, "tags": ["a", "b"]},
                ts=datetime(2026, 1, 1, 12, index, tzinfo=UTC),
            )
        )
    return entries


def head_of(entries: list[AuditEntry]) -> AuditHead:
    return AuditHead(seq=entries[-1].seq, hash=entries[-1].hash)


def kinds(entries: list[AuditEntry], head: AuditHead | None = None) -> list[AuditProblemKind]:
    return [problem.kind for problem in verify_audit_chain(entries, head=head).problems]


def test_an_intact_chain_verifies() -> None:
    entries = make_chain()

    result = verify_audit_chain(entries, head=head_of(entries))

    assert result.ok
    assert result.entries == 6
    assert result.head == head_of(entries)
    assert [entry.seq for entry in entries] == [1, 2, 3, 4, 5, 6]


def test_an_empty_chain_verifies() -> None:
    assert verify_audit_chain([]).ok


def test_edited_entry_is_found() -> None:
    entries = make_chain()
    entries[2] = entries[2].model_copy(update={"actor": "mallory"})

    result = verify_audit_chain(entries)

    assert [(p.kind, p.seq) for p in result.problems] == [(AuditProblemKind.EDITED, 3)]


def test_edited_and_rehashed_entry_breaks_the_next_link() -> None:
    entries = make_chain()
    forged = entries[2].model_copy(update={"action": "event.innocent"})
    entries[2] = forged.model_copy(update={"hash": forged.computed_hash()})

    result = verify_audit_chain(entries)

    assert [(p.kind, p.seq) for p in result.problems] == [(AuditProblemKind.EDITED, 4)]


def test_deleted_entry_is_found() -> None:
    entries = make_chain()
    del entries[3]

    result = verify_audit_chain(entries)

    assert [(p.kind, p.seq) for p in result.problems] == [(AuditProblemKind.DELETED, 5)]
    assert "4 are missing" in result.problems[0].message


def test_inserted_entry_is_found() -> None:
    entries = make_chain()
    intruder = next_audit_entry(entries[1], actor="mallory", role="admin", action="grant.forged")
    entries.insert(2, intruder)

    assert AuditProblemKind.INSERTED in kinds(entries)


def test_reordered_entries_are_found() -> None:
    entries = make_chain()
    entries[2], entries[3] = entries[3], entries[2]

    assert AuditProblemKind.REORDERED in kinds(entries)


def test_cut_off_tail_is_found_with_the_recorded_head() -> None:
    entries = make_chain()
    head = head_of(entries)

    assert verify_audit_chain(entries[:-2]).ok  # without a head, a clean cut is invisible
    assert kinds(entries[:-2], head) == [AuditProblemKind.TRUNCATED]


def test_rewritten_tail_is_found_with_the_recorded_head() -> None:
    entries = make_chain()
    head = head_of(entries)
    rewritten = [*entries[:-1], next_audit_entry(entries[-2], actor="mallory", role="admin", action="quiet")]

    assert kinds(rewritten, head) == [AuditProblemKind.TRUNCATED]


def test_jsonl_round_trip() -> None:
    entries = make_chain()
    lines = [entry.to_json_line() for entry in entries]

    assert list(audit_entries_from_jsonl(lines)) == entries


def test_jsonl_with_a_bad_line_names_it() -> None:
    lines = [make_chain(1)[0].to_json_line(), '{"seq": "x"}']

    with pytest.raises(ProtocolError, match="audit line 2"):
        list(audit_entries_from_jsonl(lines))


def test_prov_export_parses_and_links_activities() -> None:
    entries = make_chain(3)

    graph = rdflib.Graph().parse(data=audit_to_prov_turtle(entries), format="turtle")

    prov = rdflib.Namespace("http://www.w3.org/ns/prov#")
    activities = set(graph.subjects(rdflib.RDF.type, prov.Activity))
    assert len(activities) == 3
    assert len(list(graph.triples((None, prov.wasInformedBy, None)))) == 2
    assert len(set(graph.subjects(rdflib.RDF.type, prov.Agent))) == 2
