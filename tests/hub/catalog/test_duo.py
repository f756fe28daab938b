import pytest

from hub.catalog.duo import (
    DUO_DS,
    DUO_GRU,
    DUO_HMB,
    DUO_IRB,
    DUO_MDS,
    DUO_NCU,
    DUO_NMDS,
    DUO_PUB,
    is_purpose_permitted,
    screen,
)


@pytest.mark.parametrize(
    ("conditions", "purpose", "expected"),
    [
        ([DUO_GRU], DUO_MDS, True),
        ([DUO_GRU, DUO_NMDS], DUO_MDS, False),
        ([DUO_HMB], DUO_HMB, True),
        ([DUO_HMB], DUO_GRU, False),
        ([DUO_DS], DUO_HMB, False),
        ([], DUO_HMB, False),
    ],
)
def test_is_purpose_permitted_rule_table(conditions: list[str], purpose: str, expected: bool) -> None:
    assert is_purpose_permitted(conditions, purpose) is expected


def test_is_purpose_permitted_disease_specific_needs_a_matching_disease() -> None:
    assert is_purpose_permitted([DUO_DS], DUO_DS, purpose_diseases=["c34"], collection_diseases=["C34"])
    assert not is_purpose_permitted([DUO_DS], DUO_DS, purpose_diseases=["C50"], collection_diseases=["C34"])


def _codes(**kwargs: object) -> list[str]:
    arguments: dict[str, object] = {
        "project_use": [DUO_HMB, DUO_MDS],
        "project_diseases": [],
        "ethics_reference": None,
        "conditions": [DUO_HMB],
        "collection_diseases": [],
    }
    arguments.update(kwargs)
    return [finding.code for finding in screen(**arguments)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, []),
        ({"project_use": [DUO_MDS]}, ["no-purpose"]),
        ({"project_use": [DUO_GRU]}, ["purpose-not-permitted"]),
        ({"conditions": [DUO_GRU, DUO_NMDS]}, ["methods-development-forbidden"]),
        ({"conditions": []}, ["no-conditions"]),
        ({"project_use": [DUO_DS]}, ["ds-without-disease"]),  # HMB permits disease-specific research
        ({"conditions": [DUO_DS], "collection_diseases": ["C34"]}, ["purpose-not-permitted"]),
        (
            {
                "project_use": [DUO_DS],
                "project_diseases": ["C34"],
                "conditions": [DUO_DS],
                "collection_diseases": ["C34.1"],
            },
            [],
        ),
        (
            {
                "project_use": [DUO_DS],
                "project_diseases": ["C50"],
                "conditions": [DUO_DS],
                "collection_diseases": ["C34"],
            },
            ["purpose-not-permitted"],
        ),
        ({"conditions": [DUO_HMB, DUO_IRB]}, ["ethics-approval-missing"]),
        ({"conditions": [DUO_HMB, DUO_IRB], "ethics_reference": "METC 2026-114"}, ["ethics-approval"]),
        ({"conditions": [DUO_HMB, DUO_PUB, DUO_NCU]}, [DUO_PUB.lower(), DUO_NCU.lower()]),
        ({"conditions": [DUO_HMB, "DUO:0000026"]}, ["other-condition"]),
    ],
)
def test_screen_findings(kwargs: dict[str, object], expected: list[str]) -> None:
    assert _codes(**kwargs) == expected


def test_screen_says_what_to_do() -> None:
    (finding,) = screen(
        project_use=[DUO_HMB],
        project_diseases=[],
        ethics_reference=None,
        conditions=[DUO_DS],
        collection_diseases=["C34"],
    )

    assert finding.severity == "problem"
    assert "declare DUO:0000007 with a matching disease" in finding.message
    assert "C34" in finding.message
