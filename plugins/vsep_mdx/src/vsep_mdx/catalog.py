"""Catalogue data of this plugin's model family, handed to core through hooks (filled in by the catalogue work)."""

from __future__ import annotations

from vsep_core.api import HashTable, ModelRecord


def model_records() -> list[ModelRecord]:
    """Catalogue records of this family."""
    return []


def hash_tables() -> list[HashTable]:
    """Hash -> parameter tables of this family (none for yaml-configured families)."""
    return []
