"""Which research purposes a collection's GA4GH DUO data-use conditions permit.

The rule table is deliberately small (DUO, https://github.com/EBISPOT/DUO):

==============  =======================================================================
condition       permits purpose
==============  =======================================================================
DUO:0000042 GRU every purpose
DUO:0000006 HMB health/medical/biomedical research (HMB) and disease-specific (DS)
DUO:0000007 DS  disease-specific research (DS) for one of the collection's diseases only
DUO:0000015     modifier NMDS: forbids methods development (DUO:0000031 MDS)
==============  =======================================================================

A collection with no condition permits nothing in a search: its stewards have not said what it
may be used for. :func:`screen` (an access request's automatic checks) is kinder: it leaves such a
collection to its steward with a note, and adds the conditions a person must check: ethics
approval (DUO:0000021) needs the project's ethics reference, publication (DUO:0000019) and
non-commercial use (DUO:0000046) are shown to researcher and steward.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DUO_DS",
    "DUO_GRU",
    "DUO_HMB",
    "DUO_IRB",
    "DUO_MDS",
    "DUO_NCU",
    "DUO_NMDS",
    "DUO_PUB",
    "Finding",
    "diseases_match",
    "is_purpose_permitted",
    "screen",
]

DUO_GRU = "DUO:0000042"
DUO_HMB = "DUO:0000006"
DUO_DS = "DUO:0000007"
DUO_NMDS = "DUO:0000015"
DUO_MDS = "DUO:0000031"
DUO_IRB = "DUO:0000021"
DUO_PUB = "DUO:0000019"
DUO_NCU = "DUO:0000046"
_PRIMARY = (DUO_GRU, DUO_HMB, DUO_DS)
_LABELS = {
    DUO_GRU: "general research use",
    DUO_HMB: "health/medical/biomedical research",
    DUO_DS: "disease-specific research",
    DUO_NMDS: "no general methods research",
    DUO_MDS: "methods development (e.g. training a model)",
    DUO_IRB: "ethics approval required",
    DUO_PUB: "publication required",
    DUO_NCU: "non-commercial use only",
}
_PERMITS = {DUO_GRU: None, DUO_HMB: frozenset({DUO_HMB, DUO_DS}), DUO_DS: frozenset({DUO_DS})}


def is_purpose_permitted(
    conditions: Iterable[str],
    purpose: str,
    *,
    purpose_diseases: Iterable[str] = (),
    collection_diseases: Iterable[str] = (),
) -> bool:
    """Tell whether data-use ``conditions`` permit a research ``purpose`` (DUO CURIEs).

    Examples
    --------
    >>> is_purpose_permitted(["DUO:0000006"], "DUO:0000007")
    True
    >>> is_purpose_permitted(["DUO:0000042", "DUO:0000015"], "DUO:0000031")
    False
    """
    found = set(conditions)
    if purpose == DUO_MDS and DUO_NMDS in found:
        return False
    for condition in found:
        if condition not in _PERMITS:
            continue
        permitted = _PERMITS[condition]
        if permitted is None:
            return True
        if purpose in permitted:
            if condition == DUO_DS and purpose == DUO_DS:
                wanted = {code.upper() for code in purpose_diseases}
                if not wanted & {code.upper() for code in collection_diseases}:
                    continue
            return True
    return False


def diseases_match(wanted: str, have: str) -> bool:
    """Tell whether a purpose's disease code covers a collection's (ICD-10 ``C34`` covers ``C34.1``).

    >>> diseases_match("C34", "C34.1"), diseases_match("C34.1", "C34.9")
    (True, False)
    """
    wanted, have = wanted.upper(), have.upper()
    return have == wanted or have.startswith(wanted + ".") or (len(wanted) == 3 and have[:3] == wanted)


@dataclass(frozen=True)
class Finding:
    """One result of :func:`screen`: a ``problem`` stops the request, a ``note`` informs the steward."""

    severity: str
    code: str
    message: str


def _label(code: str) -> str:
    return f"{code} ({_LABELS[code]})" if code in _LABELS else code


def screen(
    *,
    project_use: Iterable[str],
    project_diseases: Iterable[str],
    ethics_reference: str | None,
    conditions: Iterable[str],
    collection_diseases: Iterable[str],
) -> list[Finding]:
    """Match a project's intended use (DUO codes) against one collection's data-use conditions.

    Examples
    --------
    >>> [f.code for f in screen(project_use=["DUO:0000006", "DUO:0000031"], project_diseases=[],
    ...     ethics_reference=None, conditions=["DUO:0000042", "DUO:0000015"], collection_diseases=[])]
    ['methods-development-forbidden']
    """
    use, found = set(project_use), set(conditions)
    wanted_diseases, have_diseases = list(project_diseases), list(collection_diseases)
    primaries = [code for code in _PRIMARY if code in use]
    findings: list[Finding] = []
    if not primaries:
        findings.append(
            Finding(
                "problem",
                "no-purpose",
                "the project declares no primary purpose: add one of DUO:0000042 (general research use), "
                "DUO:0000006 (health/medical/biomedical) or DUO:0000007 (disease-specific) to its data use",
            )
        )
    if DUO_DS in use and not wanted_diseases:
        findings.append(
            Finding("problem", "ds-without-disease", "a disease-specific purpose (DUO:0000007) needs the diseases")
        )
    if not found:
        findings.append(
            Finding(
                "note",
                "no-conditions",
                "the collection declares no data-use conditions: its steward decides without an automatic match",
            )
        )
    elif primaries:
        matched = [have for have in have_diseases if any(diseases_match(want, have) for want in wanted_diseases)]
        permitted = any(
            is_purpose_permitted(
                found - {DUO_NMDS}, purpose, purpose_diseases=matched, collection_diseases=have_diseases
            )
            for purpose in primaries
        )
        if not permitted:
            findings.append(Finding("problem", "purpose-not-permitted", _why_not(primaries, found, have_diseases)))
    if DUO_MDS in use and DUO_NMDS in found:
        findings.append(
            Finding(
                "problem",
                "methods-development-forbidden",
                f"the collection forbids {_label(DUO_NMDS)}, which rules out the project's {_label(DUO_MDS)}",
            )
        )
    if DUO_IRB in found:
        if ethics_reference:
            findings.append(
                Finding("note", "ethics-approval", f"{_label(DUO_IRB)}: the steward checks {ethics_reference!r}")
            )
        else:
            findings.append(
                Finding(
                    "problem",
                    "ethics-approval-missing",
                    f"the collection requires ethics approval ({DUO_IRB}): give the project's ethics reference",
                )
            )
    for code in (DUO_PUB, DUO_NCU):
        if code in found:
            findings.append(Finding("note", code.lower(), f"the collection's condition {_label(code)} applies"))
    known = {*_PRIMARY, DUO_NMDS, DUO_IRB, DUO_PUB, DUO_NCU}
    for code in sorted(found - known):
        findings.append(Finding("note", "other-condition", f"condition {code}: its steward checks it by hand"))
    return findings


def _why_not(primaries: list[str], found: set[str], have_diseases: list[str]) -> str:
    purposes = ", ".join(_label(code) for code in primaries)
    if DUO_DS in found and not ({DUO_GRU, DUO_HMB} & found):
        diseases = ", ".join(have_diseases) or "its diseases"
        if DUO_DS in primaries:
            return (
                f"the collection permits disease-specific research on {diseases} only, "
                "and none of the project's diseases matches"
            )
        return (
            f"the collection permits disease-specific research on {diseases} only: "
            f"declare DUO:0000007 with a matching disease (the project declares {purposes})"
        )
    if DUO_HMB in found and DUO_GRU not in found:
        return f"the collection permits {_label(DUO_HMB)} only; the project declares {purposes}"
    conditions = ", ".join(_label(code) for code in sorted(found))
    return f"the collection's conditions ({conditions}) permit none of the project's purposes ({purposes})"
