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

A collection with no condition permits nothing: its stewards have not said what it may be used for.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["DUO_DS", "DUO_GRU", "DUO_HMB", "DUO_MDS", "DUO_NMDS", "is_purpose_permitted"]

DUO_GRU = "DUO:0000042"
DUO_HMB = "DUO:0000006"
DUO_DS = "DUO:0000007"
DUO_NMDS = "DUO:0000015"
DUO_MDS = "DUO:0000031"
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
