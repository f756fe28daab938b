"""The hub's own catalog records: the FAIR Data Point, the catalog, station agents, distributions.

Stations describe their collections; the hub adds what only it knows: where a collection
resolves (``{base}/dataset/{station}/{collection}``), its distribution — remote processing by
trains, never a download — the station as a publishing agent, and the catalog and FAIR Data
Point that list them. See ``docs/catalog-model.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyoxigraph as ox
from rdflib import RDF, XSD, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF

__all__ = [
    "CATALOG_ID",
    "LDP",
    "TY",
    "catalog_graph",
    "catalog_iri",
    "dataset_iri",
    "distribution_iri",
    "distribution_triples",
    "fdp_graph",
    "station_iri",
    "station_urn",
]

TY = Namespace("https://w3id.org/trainyard/ontology#")
LDP = Namespace("http://www.w3.org/ns/ldp#")
FDP = Namespace("https://w3id.org/fdp/fdp-o#")
R3D = Namespace("http://www.re3data.org/schema/3-0#")
ACCESS_RIGHT = "http://publications.europa.eu/resource/authority/access-right/RESTRICTED"
HEALTH_THEME = "http://publications.europa.eu/resource/authority/data-theme/HEAL"
CATALOG_ID = "trainyard"


def dataset_iri(base: str, station: str, collection: str) -> str:
    """The resolvable IRI of a collection (also the name of its graph)."""
    return f"{base.rstrip('/')}/dataset/{station}/{collection}"


def distribution_iri(base: str, station: str, collection: str) -> str:
    """The IRI of a collection's only distribution: remote processing."""
    return f"{base.rstrip('/')}/distribution/{station}/{collection}"


def station_iri(base: str, station: str) -> str:
    """The IRI of a station as a publishing agent."""
    return f"{base.rstrip('/')}/station/{station}"


def catalog_iri(base: str) -> str:
    """The IRI of the hub's catalog."""
    return f"{base.rstrip('/')}/catalog/{CATALOG_ID}"


def station_urn(station: str, collection: str) -> str:
    """The IRI a station gives its collection before the hub publishes it."""
    return f"urn:trainyard:collection:{station}:{collection}"


def distribution_triples(base: str, station: str, collection: str, *, station_name: str) -> list[ox.Triple]:
    """What the hub adds to a collection's graph: its distribution, publisher and catalog link."""
    dataset = ox.NamedNode(dataset_iri(base, station, collection))
    distribution = ox.NamedNode(distribution_iri(base, station, collection))
    agent = ox.NamedNode(station_iri(base, station))

    def iri(value: str) -> ox.NamedNode:
        return ox.NamedNode(value)

    rdf_type = iri(str(RDF.type))
    return [
        ox.Triple(dataset, iri(str(DCAT.distribution)), distribution),
        ox.Triple(dataset, iri(str(DCTERMS.publisher)), agent),
        ox.Triple(dataset, iri(str(DCAT.theme)), iri(HEALTH_THEME)),
        ox.Triple(dataset, iri(str(DCTERMS.isPartOf)), iri(catalog_iri(base))),
        ox.Triple(distribution, rdf_type, iri(str(DCAT.Distribution))),
        ox.Triple(distribution, iri(str(DCTERMS.title)), ox.Literal("Remote processing by trains", language="en")),
        ox.Triple(
            distribution,
            iri(str(DCTERMS.description)),
            ox.Literal(
                "The images stay at the station. Approved projects send analysis or training trains that run "
                "there; only disclosure-controlled aggregates and model updates come back.",
                language="en",
            ),
        ),
        ox.Triple(distribution, iri(str(DCAT.accessURL)), iri(f"{base.rstrip('/')}/trains")),
        ox.Triple(distribution, iri(str(DCTERMS.accessRights)), iri(ACCESS_RIGHT)),
        ox.Triple(distribution, iri(str(TY.accessMode)), iri(str(TY.RemoteProcessing))),
        ox.Triple(agent, rdf_type, iri(str(FOAF.Agent))),
        ox.Triple(agent, iri(str(FOAF.name)), ox.Literal(station_name)),
    ]


def _bind(graph: Graph) -> Graph:
    for prefix, namespace in (
        ("dcat", DCAT),
        ("dct", DCTERMS),
        ("foaf", FOAF),
        ("ldp", LDP),
        ("fdp", FDP),
        ("r3d", R3D),
        ("ty", TY),
    ):
        graph.bind(prefix, namespace)
    return graph


def catalog_graph(base: str, *, title: str, description: str, publisher: str, datasets: Iterable[str]) -> Graph:
    """The ``dcat:Catalog`` record with its datasets, and an LDP container to navigate them."""
    graph = _bind(Graph())
    catalog = URIRef(catalog_iri(base))
    hub_agent = URIRef(f"{base.rstrip('/')}/")
    graph.add((catalog, RDF.type, DCAT.Catalog))
    graph.add((catalog, DCTERMS.title, Literal(title, lang="en")))
    graph.add((catalog, DCTERMS.description, Literal(description, lang="en")))
    graph.add((catalog, DCTERMS.publisher, hub_agent))
    graph.add((catalog, DCAT.themeTaxonomy, URIRef("http://publications.europa.eu/resource/authority/data-theme")))
    graph.add((hub_agent, RDF.type, FOAF.Agent))
    graph.add((hub_agent, FOAF.name, Literal(publisher)))
    container = URIRef(f"{catalog_iri(base)}/datasets")
    graph.add((container, RDF.type, LDP.DirectContainer))
    graph.add((container, DCTERMS.title, Literal("Datasets", lang="en")))
    graph.add((container, LDP.membershipResource, catalog))
    graph.add((container, LDP.hasMemberRelation, DCAT.dataset))
    for iri in sorted(datasets):
        graph.add((catalog, DCAT.dataset, URIRef(iri)))
        graph.add((container, LDP.contains, URIRef(iri)))
    return graph


def fdp_graph(base: str, *, title: str, description: str, publisher: str, version: str) -> Graph:
    """The FAIR Data Point's own metadata, pointing at its catalog."""
    graph = _bind(Graph())
    fdp = URIRef(f"{base.rstrip('/')}/")
    catalog = URIRef(catalog_iri(base))
    graph.add((fdp, RDF.type, FDP.FAIRDataPoint))
    graph.add((fdp, RDF.type, R3D.Repository))
    graph.add((fdp, RDF.type, DCAT.DataService))
    graph.add((fdp, DCTERMS.title, Literal(title, lang="en")))
    graph.add((fdp, DCTERMS.description, Literal(description, lang="en")))
    graph.add((fdp, DCTERMS.publisher, fdp))
    graph.add((fdp, FOAF.name, Literal(publisher)))
    graph.add((fdp, DCAT.endpointURL, fdp))
    graph.add((fdp, DCTERMS.hasVersion, Literal(version)))
    graph.add((fdp, FDP.metadataCatalog, catalog))
    graph.add((fdp, FDP.conformsToFdpSpec, URIRef("https://specs.fairdatapoint.org/fdp-specs-v1.2.html")))
    graph.add((fdp, DCAT.servesDataset, catalog))
    graph.add((fdp, TY.sparqlEndpoint, URIRef(f"{base.rstrip('/')}/sparql")))
    graph.add((fdp, DCTERMS.issued, Literal("2026-01-01T00:00:00Z", datatype=XSD.dateTime)))
    container = URIRef(f"{base.rstrip('/')}/catalogs")
    graph.add((container, RDF.type, LDP.DirectContainer))
    graph.add((container, LDP.membershipResource, fdp))
    graph.add((container, LDP.hasMemberRelation, FDP.metadataCatalog))
    graph.add((container, LDP.contains, catalog))
    return graph
