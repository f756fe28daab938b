"""The catalog: RDF named graphs in Oxigraph, summary search, and the GraphQL schema."""

from hub.catalog.filters import summary_matches as summary_matches
from hub.catalog.store import CatalogStore as CatalogStore
from hub.catalog.store import graph_iri_for_collection as graph_iri_for_collection

__all__ = ["CatalogStore", "graph_iri_for_collection", "summary_matches"]
