"""The Trainyard station: harvest DICOM collections, publish their catalog entries, run trains.

The station sits next to the images, opens every connection to the hub itself, and lets
only signed, verified trains run, isolated, on read-only data; only declared, sealed outputs
leave it.
"""

from .agent import HubError as HubError
from .agent import StationAgent as StationAgent
from .agent import enrol as enrol
from .agent import publish_collections as publish_collections
from .agent import run_agent as run_agent
from .catalog import build_publication as build_publication
from .catalog import collection_to_turtle as collection_to_turtle
from .config import StationSettings as StationSettings
from .indexer import DicomHeader as DicomHeader
from .indexer import DicomIndex as DicomIndex
from .indexer import IndexReport as IndexReport
from .indexer import SkippedFile as SkippedFile
from .indexer import index_collection as index_collection
from .indexer import iter_dicom_paths as iter_dicom_paths
from .indexer import read_header as read_header
from .state import CollectionRecord as CollectionRecord
from .state import StationIdentity as StationIdentity
from .state import StationState as StationState
from .summary import summarise_collection as summarise_collection
from .synthetic import write_synthetic_collection as write_synthetic_collection

__all__ = [
    "CollectionRecord",
    "DicomHeader",
    "DicomIndex",
    "HubError",
    "IndexReport",
    "SkippedFile",
    "StationAgent",
    "StationIdentity",
    "StationSettings",
    "StationState",
    "build_publication",
    "collection_to_turtle",
    "enrol",
    "index_collection",
    "iter_dicom_paths",
    "publish_collections",
    "read_header",
    "run_agent",
    "summarise_collection",
    "write_synthetic_collection",
]
