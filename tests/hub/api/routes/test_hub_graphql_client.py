"""A standard GraphQL client (gql, over real HTTP on loopback) against the hub's /graphql."""

from __future__ import annotations

from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXTransport
from hub_factories import EnrolledStation, HubFactory, Researcher, make_summary, serve_on_loopback

from hub import Settings, create_app

SEARCH = """
    query Search($filter: CollectionFilter, $after: String) {
      search(filter: $filter, first: 1, after: $after) {
        totalCount
        nodes { id subjects }
        facets { modality { value count } }
        pageInfo { endCursor hasNextPage }
      }
    }
    """


def search(**variables: Any) -> GraphQLRequest:
    return GraphQLRequest(SEARCH, variable_values=variables)


def test_gql_client_round_trip_with_schema_validation(
    settings: Settings, hub: HubFactory, station: EnrolledStation, researcher: Researcher
) -> None:
    hub.publish(station, "chest-ct", summary=make_summary(subjects=12, modalities={"CT": 12}))
    hub.publish(station, "brain-mr", summary=make_summary(subjects=47, modalities={"MR": 47}))
    hub.client.__exit__(None, None, None)  # release the store: the served app opens it again

    with serve_on_loopback(create_app(settings)) as base:
        transport = HTTPXTransport(url=f"{base}/graphql", headers=researcher.headers)
        # fetch_schema_from_transport: the client introspects the schema and validates queries locally
        with Client(transport=transport, fetch_schema_from_transport=True) as session:
            first = session.execute(search())
            second = session.execute(search(after=first["search"]["pageInfo"]["endCursor"]))
            only_mr = session.execute(search(filter={"modality": ["MR"]}))
            schema = session.client.schema

    assert first["search"]["totalCount"] == 2
    assert first["search"]["nodes"] == [{"id": "site-a/brain-mr", "subjects": 47}]
    assert second["search"]["nodes"] == [{"id": "site-a/chest-ct", "subjects": 12}]
    assert not second["search"]["pageInfo"]["hasNextPage"]
    assert only_mr["search"]["totalCount"] == 1
    assert schema is not None and "CollectionFilter" in schema.type_map
