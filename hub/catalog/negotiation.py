"""Content negotiation for catalog records: Turtle by default; JSON-LD, RDF/XML, N-Triples on request."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RDF_MEDIA_TYPES", "NotAcceptable", "RdfChoice", "choose_rdf_format"]

# media type → rdflib serializer name
RDF_MEDIA_TYPES = {
    "text/turtle": "turtle",
    "application/ld+json": "json-ld",
    "application/rdf+xml": "xml",
    "application/n-triples": "nt",
}
_SHORT = {
    "ttl": "text/turtle",
    "jsonld": "application/ld+json",
    "rdf": "application/rdf+xml",
    "nt": "application/n-triples",
}


class NotAcceptable(ValueError):
    """No RDF format the caller accepts (406)."""


@dataclass(frozen=True)
class RdfChoice:
    """The chosen media type and rdflib serializer; ``html`` when a browser asked for a page."""

    media_type: str
    serializer: str
    html: bool = False


def _ranked(accept: str) -> list[tuple[float, int, str]]:
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        fields = [field.strip() for field in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        quality = 1.0
        for field in fields[1:]:
            if field.startswith("q="):
                try:
                    quality = float(field[2:])
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, position, media))
    return sorted(ranked)


def choose_rdf_format(accept: str | None, fmt: str | None) -> RdfChoice:
    """Pick the format from ``?format=`` (wins) or the ``Accept`` header (by quality, then order).

    Examples
    --------
    >>> choose_rdf_format("application/ld+json", None).serializer
    'json-ld'
    >>> choose_rdf_format(None, "nt").media_type
    'application/n-triples'
    >>> choose_rdf_format("text/html,application/xhtml+xml,*/*;q=0.8", None).html
    True

    Raises
    ------
    NotAcceptable
        For an unknown ``format`` or an ``Accept`` header that names no RDF type and no wildcard.
    """
    if fmt is not None:
        media = _SHORT.get(fmt.lower())
        if media is None:
            raise NotAcceptable(f"format must be one of {', '.join(_SHORT)}")
        return RdfChoice(media, RDF_MEDIA_TYPES[media])
    if not accept:
        return RdfChoice("text/turtle", "turtle")
    for quality, _position, media in _ranked(accept):
        if quality == 0:
            continue
        if media in RDF_MEDIA_TYPES:
            return RdfChoice(media, RDF_MEDIA_TYPES[media])
        if media in {"text/html", "application/xhtml+xml"}:
            return RdfChoice("text/turtle", "turtle", html=True)
        if media in {"*/*", "text/*", "application/*"}:
            return RdfChoice("text/turtle", "turtle")
    raise NotAcceptable(f"ask for one of {', '.join(RDF_MEDIA_TYPES)} (or ?format={'|'.join(_SHORT)})")
