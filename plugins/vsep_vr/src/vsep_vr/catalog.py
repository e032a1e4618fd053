"""Catalogue data of VR models, handed to core through hooks.

``data/models.json`` lists ``[friendly name, .pth file]`` in the reference's order (UVR's
list, then audio-separator's additions); ``data/hash_params.json`` maps the MD5 of a model
file's last 10,240,000 bytes to its parameters. See ``data/README.md``. The band parameter
files (``vr_model_param``) belong to the VR model code, not to this catalogue.
"""

from __future__ import annotations

from vsep_core.api import HashTable, ModelRecord
from vsep_core.helpers import package_json, uvr_catalogue

ARCHITECTURE = "VR"
VR_MODEL_DATA_FILENAME = "vr_model_data.json"
"""The reference caches UVR's VR hash table in the model directory under this name."""
PACKAGE = "vsep-vr"


def model_records() -> list[ModelRecord]:
    """Catalogue records of VR models (one ``.pth`` file each)."""
    return uvr_catalogue(__package__, ARCHITECTURE, PACKAGE)


def hash_tables() -> list[HashTable]:
    """UVR's VR hash table (with audio-separator's additions), merged by core with vr_model_data.json."""
    return [HashTable(ARCHITECTURE, VR_MODEL_DATA_FILENAME, package_json(__package__, "hash_params.json"), priority=1)]
