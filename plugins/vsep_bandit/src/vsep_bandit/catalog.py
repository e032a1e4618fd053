"""Catalogue records of BandIt v2 models."""


def model_records() -> list:
    """Records."""
    return []
