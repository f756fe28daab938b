"""``collection.toml``: what a collection is (a rule over the index) and what people say about it.

A collection's folder may hold a ``collection.toml`` (or ``trainyard station harvest --config``
names one)::

    title = "Low-dose chest CT, lung screening 2019-2024"
    description = "Baseline and follow-up screening rounds."
    keywords = ["screening", "lung"]
    data_use = ["DUO:0000006"]            # GA4GH DUO conditions
    license = "https://creativecommons.org/licenses/by-nc/4.0/"
    annotations = ["segmentation"]
    health_categories = ["cancer"]
    contact = { name = "Imaging biobank", email = "biobank@hospital.example" }

    [[disease]]
    system = "ICD-10"                     # or SNOMED-CT
    code = "C34.1"
    label = "Malignant neoplasm of upper lobe, bronchus or lung"

    [rule]                                # which files belong (all of the folder when left out)
    folder = "."                          # relative to this file
    modality = ["CT"]
    body_part = ["CHEST"]

Every mistake is reported with the file and the field, before anything is indexed.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from protocol import CollectionMetadata, ProtocolError

from .indexer import DicomHeader

__all__ = ["COLLECTION_FILE", "CollectionConfig", "CollectionRule", "read_collection_config"]

COLLECTION_FILE = "collection.toml"
_TOP_LEVEL = {
    "title",
    "description",
    "keywords",
    "data_use",
    "license",
    "annotations",
    "health_categories",
    "contact",
    "disease",
    "rule",
}
_RULE_KEYS = {"folder", "modality", "body_part"}


@dataclass(frozen=True)
class CollectionRule:
    """Which indexed files belong to the collection: under ``folder``, with one of the modalities / body parts."""

    folder: Path
    modality: tuple[str, ...] = ()
    body_part: tuple[str, ...] = ()

    def excludes(self, header: DicomHeader) -> str | None:
        """Why a file falls outside the rule, or ``None`` when it belongs."""
        if self.modality and header.modality.upper() not in self.modality:
            return f"outside the collection's rule (modality {header.modality}, not {', '.join(self.modality)})"
        if self.body_part and (header.body_part or "").upper() not in self.body_part:
            part = header.body_part or "none"
            return f"outside the collection's rule (body part {part}, not {', '.join(self.body_part)})"
        return None


@dataclass(frozen=True)
class CollectionConfig:
    """A parsed ``collection.toml``."""

    rule: CollectionRule
    metadata: CollectionMetadata = field(default_factory=CollectionMetadata)
    title: str | None = None
    description: str | None = None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ProtocolError(f"{where} must be a list of non-empty strings")
    return tuple(item.strip().upper() for item in value)


def read_collection_config(path: Path) -> CollectionConfig:
    """Read and check a ``collection.toml``.

    Raises
    ------
    ProtocolError
        When the file cannot be read or parsed, has an unknown key, or a value is invalid; the
        message names the file and the field.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{path}: cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{path}: not valid TOML: {exc}") from exc
    unknown = sorted(set(raw) - _TOP_LEVEL)
    if unknown:
        raise ProtocolError(f"{path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_TOP_LEVEL))}")
    rule_table = raw.get("rule", {})
    if not isinstance(rule_table, dict):
        raise ProtocolError(f"{path}: [rule] must be a table")
    unknown = sorted(set(rule_table) - _RULE_KEYS)
    if unknown:
        raise ProtocolError(f"{path}: unknown key rule.{unknown[0]}; known: {', '.join(sorted(_RULE_KEYS))}")
    folder_text = rule_table.get("folder", ".")
    if not isinstance(folder_text, str):
        raise ProtocolError(f"{path}: rule.folder must be a path relative to the file")
    folder = (path.parent / folder_text).resolve()
    if not folder.is_dir():
        raise ProtocolError(f"{path}: rule.folder {folder_text!r} is not a folder ({folder})")
    rule = CollectionRule(
        folder=folder,
        modality=_strings(rule_table["modality"], f"{path}: rule.modality") if "modality" in rule_table else (),
        body_part=_strings(rule_table["body_part"], f"{path}: rule.body_part") if "body_part" in rule_table else (),
    )
    contact = raw.get("contact", {})
    if not isinstance(contact, dict):
        raise ProtocolError(f"{path}: contact must be a table {{ name = ..., email = ... }}")
    fields = {
        "keywords": raw.get("keywords", ()),
        "disease_codes": raw.get("disease", ()),
        "data_use": raw.get("data_use", ()),
        "license": raw.get("license"),
        "contact_name": contact.get("name"),
        "contact_email": contact.get("email"),
        "health_categories": raw.get("health_categories", ()),
        "annotations": raw.get("annotations", ()),
    }
    try:
        metadata = CollectionMetadata.model_validate(fields)
    except ValidationError as exc:
        names = {"disease_codes": "disease", "contact_name": "contact.name", "contact_email": "contact.email"}
        problems = "; ".join(
            f"{'.'.join(names.get(str(part), str(part)) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise ProtocolError(f"{path}: {problems}") from exc
    for key in ("title", "description"):
        if key in raw and not isinstance(raw[key], str):
            raise ProtocolError(f"{path}: {key} must be text")
    title = raw.get("title")
    if title is not None and not 1 <= len(title.strip()) <= 300:
        raise ProtocolError(f"{path}: title must have 1 to 300 characters")
    return CollectionConfig(rule=rule, metadata=metadata, title=title, description=raw.get("description"))
