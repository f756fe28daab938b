"""The catalog: search collections, read one as JSON or as its Turtle named graph."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status

from hub import crud
from hub.api.deps import CatalogDep, CurrentUser, SessionDep
from hub.catalog.filters import summary_matches
from hub.models import CollectionPublic, CollectionsPublic
from protocol import CollectionSummary

router = APIRouter(prefix="/collections", tags=["catalog"])

TURTLE = "text/turtle"


@router.get("")
def read_collections(
    session: SessionDep,
    _user: CurrentUser,
    modality: str | None = None,
    body_part: str | None = None,
    min_subjects: int | None = None,
) -> CollectionsPublic:
    """Search collections by modality, body part and a minimum (unsuppressed) subject count."""
    rows = [
        CollectionPublic.from_collection(row)
        for row in crud.list_collections(session=session)
        if summary_matches(
            CollectionSummary.model_validate(row.summary),
            modality=modality,
            body_part=body_part,
            min_subjects=min_subjects,
        )
    ]
    return CollectionsPublic(data=rows, count=len(rows))


@router.get(
    "/{station}/{collection}",
    response_model=CollectionPublic,
    responses={status.HTTP_200_OK: {"content": {TURTLE: {"schema": {"type": "string"}}}}},
)
def read_collection(
    station: str, collection: str, request: Request, session: SessionDep, catalog: CatalogDep, _user: CurrentUser
) -> CollectionPublic | Response:
    """Read one collection; ask for ``text/turtle`` to get its named graph."""
    row = crud.get_collection(session=session, collection_id=f"{station}/{collection}")
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no collection {station}/{collection} in the catalog")
    if TURTLE in request.headers.get("accept", ""):
        return Response(catalog.export_turtle(row.graph_iri), media_type=TURTLE)
    return CollectionPublic.from_collection(row)
