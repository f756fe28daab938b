"""Trainyard's vocabulary, SHACL shapes and code lists: data files, with their paths here.

``HEALTHDCATAP`` is the HealthDCAT-AP namespace. It is not ratified (most sources use
``http://healthdataportal.eu/ns/health#``, others ``https://w3id.org/healthdcat-ap#``), so it
is this one constant; change it here when the standard settles.
"""

from pathlib import Path

__all__ = ["CODE_LISTS", "HEALTHDCATAP", "ONTOLOGY_DIR", "SHAPES", "TY", "VOCABULARY"]

ONTOLOGY_DIR = Path(__file__).resolve().parent
VOCABULARY = ONTOLOGY_DIR / "trainyard.ttl"
SHAPES = ONTOLOGY_DIR / "shapes" / "trainyard-shapes.ttl"
CODE_LISTS = (ONTOLOGY_DIR / "codes" / "modality.ttl", ONTOLOGY_DIR / "codes" / "body-part.ttl")
HEALTHDCATAP = "http://healthdataportal.eu/ns/health#"
TY = "https://w3id.org/trainyard/ontology#"
