"""Catalogue records of Apollo models."""


def model_records() -> list:
    """Records."""
    return []
