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
from rdflib.namespace import DCAT, DCTERMS, FOAF, SKOS

from ontology import CODING_SYSTEMS, HEALTHDCATAP

__all__ = [
    "CATALOG_ID",
    "LDP",
    "TY",
    "add_vocabulary_terms",
    "catalog_graph",
    "catalog_iri",
    "dataset_iri",
    "distribution_iri",
    "distribution_triples",
    "export_catalog",
    "fdp_graph",
    "retype_counts",
    "station_iri",
    "station_urn",
]

TY = Namespace("https://w3id.org/trainyard/ontology#")
LDP = Namespace("http://www.w3.org/ns/ldp#")
FDP = Namespace("https://w3id.org/fdp/fdp-o#")
R3D = Namespace("http://www.re3data.org/schema/3-0#")
ACCESS_RIGHT_SCHEME = "http://publications.europa.eu/resource/authority/access-right"
ACCESS_RIGHT = f"{ACCESS_RIGHT_SCHEME}/RESTRICTED"
DATA_THEME = "http://publications.europa.eu/resource/authority/data-theme"
HEALTH_THEME = f"{DATA_THEME}/HEAL"
ODRL_HAS_POLICY = "http://www.w3.org/ns/odrl/2/hasPolicy"
REMOTE_ONLY_RIGHTS = "https://w3id.org/trainyard/ontology#RemoteProcessingOnly"
CORPORATE_BODY = "http://publications.europa.eu/resource/authority/corporate-body"
DATASET_TYPE = "http://publications.europa.eu/resource/authority/dataset-type"
PERSONAL_DATA = f"{DATASET_TYPE}/PERSONAL_DATA"
DCATAP = "http://data.europa.eu/r5r/"
EHDS = "http://data.europa.eu/eli/reg/2025/327/oj"  # the European Health Data Space regulation
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
_COUNTS = ("numberOfUniqueIndividuals", "numberOfRecords", "minTypicalAge", "maxTypicalAge")
CODE_SCHEMES = {iri: f"{system} codes" for system, iri in CODING_SYSTEMS.items()}
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


def distribution_triples(
    base: str, station: str, collection: str, *, station_name: str, published: Iterable[ox.Triple] = ()
) -> list[ox.Triple]:
    """What the hub adds to a collection's graph: its distribution, publisher and catalog link.

    The data-use policies (ODRL offers of DUO purposes) the station put on its dataset in
    ``published`` go on the distribution too: that is where DCAT-AP puts access conditions.
    """
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
        ox.Triple(dataset, iri(str(DCTERMS.type)), iri(PERSONAL_DATA)),
        ox.Triple(dataset, iri(DCATAP + "applicableLegislation"), iri(EHDS)),
        ox.Triple(dataset, iri(str(DCAT.contactPoint)), iri(f"{base.rstrip('/')}/#contact")),
        ox.Triple(dataset, iri("http://www.w3.org/ns/adms#sample"), distribution),
        ox.Triple(dataset, iri(str(DCTERMS.accessRights)), iri(ACCESS_RIGHT)),
        ox.Triple(dataset, iri(HEALTHDCATAP + "hdab"), iri(f"{base.rstrip('/')}/")),
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
        ox.Triple(distribution, iri(DCATAP + "applicableLegislation"), iri(EHDS)),
        ox.Triple(distribution, iri(str(DCTERMS.accessRights)), iri(ACCESS_RIGHT)),
        ox.Triple(distribution, iri(str(TY.accessMode)), iri(str(TY.RemoteProcessing))),
        ox.Triple(distribution, iri(str(DCTERMS.rights)), iri(REMOTE_ONLY_RIGHTS)),
        *(
            ox.Triple(distribution, iri(ODRL_HAS_POLICY), triple.object)
            for triple in published
            if triple.subject == dataset and triple.predicate == iri(ODRL_HAS_POLICY)
        ),
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


def add_vocabulary_terms(graph: Graph) -> Graph:
    """Add the EU vocabulary concepts the records use (theme HEAL, access right RESTRICTED) with their schemes."""
    for scheme, concept, label in (
        (DATA_THEME, HEALTH_THEME, "Health"),
        (ACCESS_RIGHT_SCHEME, ACCESS_RIGHT, "Restricted"),
        (DATASET_TYPE, PERSONAL_DATA, "Personal data"),
    ):
        graph.add((URIRef(scheme), RDF.type, SKOS.ConceptScheme))
        graph.add((URIRef(scheme), SKOS.prefLabel, Literal(scheme.rsplit("/", 1)[-1], lang="en")))
        graph.add((URIRef(scheme), DCTERMS.title, Literal(scheme.rsplit("/", 1)[-1], lang="en")))
        graph.add((URIRef(concept), RDF.type, SKOS.Concept))
        graph.add((URIRef(concept), SKOS.prefLabel, Literal(label, lang="en")))
        graph.add((URIRef(concept), SKOS.inScheme, URIRef(scheme)))
    graph.add((URIRef(ACCESS_RIGHT), RDF.type, DCTERMS.RightsStatement))
    graph.add((URIRef(REMOTE_ONLY_RIGHTS), RDF.type, DCTERMS.RightsStatement))
    graph.add(
        (
            URIRef(REMOTE_ONLY_RIGHTS),
            DCTERMS.description,
            Literal("No download: approved projects' trains run at the station; aggregates come back.", lang="en"),
        )
    )
    for scheme, title in CODE_SCHEMES.items():
        graph.add((URIRef(scheme), RDF.type, SKOS.ConceptScheme))
        graph.add((URIRef(scheme), DCTERMS.title, Literal(title, lang="en")))
    graph.add((URIRef(EHDS), RDF.type, URIRef("http://data.europa.eu/eli/ontology#LegalResource")))
    graph.add((URIRef(CORPORATE_BODY), RDF.type, SKOS.ConceptScheme))
    graph.add((URIRef(CORPORATE_BODY), DCTERMS.title, Literal("corporate-body", lang="en")))
    return graph


def catalog_graph(
    base: str,
    *,
    title: str,
    description: str,
    publisher: str,
    datasets: Iterable[str],
    stations: Iterable[str] = (),
    contact_email: str = "catalog@trainyard.invalid",
) -> Graph:
    """The ``dcat:Catalog`` record with its datasets, and an LDP container to navigate them."""
    graph = _bind(Graph())
    catalog = URIRef(catalog_iri(base))
    hub_agent = URIRef(f"{base.rstrip('/')}/")
    graph.add((catalog, RDF.type, DCAT.Catalog))
    graph.add((catalog, DCTERMS.title, Literal(title, lang="en")))
    graph.add((catalog, DCTERMS.description, Literal(description, lang="en")))
    graph.add((catalog, DCTERMS.publisher, hub_agent))
    graph.add((catalog, DCAT.themeTaxonomy, URIRef(DATA_THEME)))
    graph.add((catalog, URIRef(DCATAP + "applicableLegislation"), URIRef(EHDS)))
    graph.add((hub_agent, RDF.type, FOAF.Agent))
    graph.add((hub_agent, FOAF.name, Literal(publisher)))
    graph.add((hub_agent, FOAF.homepage, hub_agent))
    graph.add((hub_agent, FOAF.mbox, URIRef(f"mailto:{contact_email}")))
    contact = URIRef(f"{base.rstrip('/')}/#contact")
    graph.add((contact, RDF.type, VCARD.Kind))
    graph.add((contact, VCARD.fn, Literal(publisher)))
    graph.add((contact, VCARD.hasEmail, URIRef(f"mailto:{contact_email}")))
    add_vocabulary_terms(graph)
    for agent in {hub_agent, *(URIRef(station_iri(base, station)) for station in stations)}:
        graph.add((agent, RDF.type, FOAF.Agent))
        # DCAT-AP's vocabulary shapes want publishers from the EU corporate-body list; a hospital
        # federation's agents are declared members of that scheme here so the export validates.
        graph.add((agent, SKOS.inScheme, URIRef(CORPORATE_BODY)))
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
    graph.add((fdp, URIRef(DCATAP + "applicableLegislation"), URIRef(EHDS)))
    graph.add((fdp, DCTERMS.hasVersion, Literal(version)))
    graph.add((fdp, FDP.metadataCatalog, catalog))
    graph.add((fdp, FDP.conformsToFdpSpec, URIRef("https://specs.fairdatapoint.org/fdp-specs-v1.2.html")))
    graph.add((fdp, TY.sparqlEndpoint, URIRef(f"{base.rstrip('/')}/sparql")))
    graph.add((fdp, DCTERMS.issued, Literal("2026-01-01T00:00:00Z", datatype=XSD.dateTime)))
    container = URIRef(f"{base.rstrip('/')}/catalogs")
    graph.add((container, RDF.type, LDP.DirectContainer))
    graph.add((container, LDP.membershipResource, fdp))
    graph.add((container, LDP.hasMemberRelation, FDP.metadataCatalog))
    graph.add((container, LDP.contains, catalog))
    return graph


def retype_counts(graph: Graph) -> Graph:
    """Give HealthDCAT-AP counts and ages back their ``xsd:nonNegativeInteger`` type.

    Oxigraph stores every integer-derived literal as ``xsd:integer``; HealthDCAT-AP's shapes want
    ``nonNegativeInteger``, so records read from the store are re-typed before they are served.
    """
    for name in _COUNTS:
        predicate = URIRef(HEALTHDCATAP + name)
        for subject, value in list(graph.subject_objects(predicate)):
            if isinstance(value, Literal) and value.datatype == XSD.integer:
                graph.remove((subject, predicate, value))
                graph.add((subject, predicate, Literal(str(value), datatype=XSD.nonNegativeInteger)))
    return graph


def export_catalog(
    store_triples: Iterable[list[ox.Triple]],
    base: str,
    *,
    datasets: Iterable[str],
    stations: Iterable[str],
    title: str,
    description: str,
    publisher: str,
    contact_email: str = "catalog@trainyard.invalid",
    version: str = "0.1.0",
) -> Graph:
    """The whole catalog as one graph: FAIR Data Point, catalog, agents, vocabulary terms, every record."""
    graph = catalog_graph(
        base,
        title=title,
        description=description,
        publisher=publisher,
        datasets=datasets,
        stations=stations,
        contact_email=contact_email,
    )
    graph += fdp_graph(base, title=title, description=description, publisher=publisher, version=version)
    for triples in store_triples:
        data = ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES) or b""
        graph.parse(data=data.decode("utf-8"), format="nt")
    return retype_counts(graph)
