"""Catalogue records of SCNet models (filled in below)."""

from __future__ import annotations


def model_records() -> list:
    """Catalogue records of SCNet models."""
    return []
