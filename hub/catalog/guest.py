"""The guests' view of the catalog: every published count rounded down to a multiple of :data:`GUEST_STEP`.

Anonymous callers see the catalog with thresholded counts, whichever way they read it: GraphQL
rounds what it shows, the FAIR Data Point rounds the records it serves (:func:`guest_triples`),
and ``/sparql`` answers guests from a second store whose graphs hold the rounded counts (kept by
:class:`hub.catalog.store.CatalogStore`), so a query cannot compute with, filter on or compare an
exact count either. Members (logged in) read the published counts. Published counts are already
0 or at least k; rounding down keeps them that way (5..9 become 0).

The counts are the subjects, studies, series and instances of a record (``ty:numberOf…`` and
HealthDCAT-AP's ``numberOfUniqueIndividuals``/``numberOfRecords``), the subjects of breakdowns and
acquisition ranges (``ty:subjects``) and the series per quality flag (``ty:series``). Typical ages,
percentiles, coverage percentages and the disclosure threshold are not counts and stay as they are
(GraphQL shows them to guests unchanged too).
"""

from __future__ import annotations

from collections.abc import Iterable

import pyoxigraph as ox

from ontology import HEALTHDCATAP

__all__ = ["COUNT_PREDICATES", "GUEST_STEP", "guest_count", "guest_quad", "guest_triples"]

GUEST_STEP = 10
"""Guests see counts rounded down to a multiple of this."""
_TY = "https://w3id.org/trainyard/ontology#"
COUNT_PREDICATES = frozenset(
    ox.NamedNode(iri)
    for iri in (
        _TY + "numberOfSubjects",
        _TY + "numberOfStudies",
        _TY + "numberOfSeries",
        _TY + "numberOfInstances",
        _TY + "subjects",
        _TY + "series",
        HEALTHDCATAP + "numberOfUniqueIndividuals",
        HEALTHDCATAP + "numberOfRecords",
    )
)
"""The predicates whose (integer) objects are counts of people, studies, series or instances."""


def guest_count(value: int) -> int:
    """A count as guests see it: rounded down to a multiple of :data:`GUEST_STEP`.

    Examples
    --------
    >>> guest_count(37), guest_count(40), guest_count(7)
    (30, 40, 0)
    """
    return value - value % GUEST_STEP


def _guest_object(predicate: ox.NamedNode, value: object) -> object:
    if predicate not in COUNT_PREDICATES or not isinstance(value, ox.Literal):
        return value
    try:
        number = int(value.value)
    except ValueError:
        return ox.Literal("0", datatype=value.datatype)  # never a count stored as odd text: nothing is shown
    return ox.Literal(str(guest_count(number)), datatype=value.datatype)


def guest_triples(triples: Iterable[ox.Triple]) -> list[ox.Triple]:
    """The triples with every count rounded as guests see it (everything else unchanged)."""
    return [
        triple
        if triple.predicate not in COUNT_PREDICATES
        else ox.Triple(triple.subject, triple.predicate, _guest_object(triple.predicate, triple.object))  # type: ignore[arg-type]
        for triple in triples
    ]


def guest_quad(quad: ox.Quad) -> ox.Quad:
    """One quad with its count (if it holds one) rounded as guests see it."""
    if quad.predicate not in COUNT_PREDICATES:
        return quad
    return ox.Quad(quad.subject, quad.predicate, _guest_object(quad.predicate, quad.object), quad.graph_name)  # type: ignore[arg-type]
