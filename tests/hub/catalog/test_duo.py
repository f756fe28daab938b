import pytest

from hub.catalog.duo import DUO_DS, DUO_GRU, DUO_HMB, DUO_MDS, DUO_NMDS, is_purpose_permitted


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
