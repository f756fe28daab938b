"""DICOM de-identification by the PS3.15 Annex E Basic Profile and options (see :mod:`.engine`)."""

from .engine import ANNEX_E as ANNEX_E
from .engine import DeidOptions as DeidOptions
from .engine import annex_e_table as annex_e_table
from .engine import deidentify_dataset as deidentify_dataset

__all__ = ["ANNEX_E", "DeidOptions", "annex_e_table", "deidentify_dataset"]
