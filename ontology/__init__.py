"""Trainyard's vocabulary, SHACL shapes and code lists: data files, with their paths here.

``HEALTHDCATAP`` is the HealthDCAT-AP namespace. It is not ratified (most sources use
``http://healthdataportal.eu/ns/health#``, others ``https://w3id.org/healthdcat-ap#``), so it
is this one constant; change it here when the standard settles.
"""

from pathlib import Path

__all__ = ["CODE_LISTS", "CODING_SYSTEMS", "HEALTHDCATAP", "ONTOLOGY_DIR", "SHAPES", "TY", "VOCABULARY"]

ONTOLOGY_DIR = Path(__file__).resolve().parent
VOCABULARY = ONTOLOGY_DIR / "trainyard.ttl"
SHAPES = ONTOLOGY_DIR / "shapes" / "trainyard-shapes.ttl"
CODE_LISTS = (ONTOLOGY_DIR / "codes" / "modality.ttl", ONTOLOGY_DIR / "codes" / "body-part.ttl")
HEALTHDCATAP = "http://healthdataportal.eu/ns/health#"
TY = "https://w3id.org/trainyard/ontology#"
# The disease coding systems a collection's codes come from: the IRI each code extends (and its scheme).
CODING_SYSTEMS = {"ICD-10": "http://id.who.int/icd/release/10/", "SNOMED-CT": "http://snomed.info/id/"}
