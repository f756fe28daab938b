"""The one error trainkit raises for a broken job or a refused output."""

from __future__ import annotations

__all__ = ["TrainkitError"]


class TrainkitError(Exception):
    """The job cannot be read, or an output was refused (undeclared, bad name, not serialisable)."""
