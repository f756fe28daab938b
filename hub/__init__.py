"""The Trainyard hub: FAIR catalog, governance, trains and the results vault."""

from hub.core.config import Settings as Settings
from hub.main import create_app as create_app

__all__ = ["Settings", "create_app"]
