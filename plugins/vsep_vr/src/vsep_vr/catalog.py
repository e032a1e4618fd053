"""Catalogue data of VR models, handed to core through hooks.

``data/models.json`` lists ``[friendly name, .pth file]`` in the reference's order (UVR's
list, then audio-separator's additions); ``data/hash_params.json`` maps the MD5 of a model
file's last 10,240,000 bytes to its parameters. See ``data/README.md``. The band parameter
files (``vr_model_param``) belong to the VR model code, not to this catalogue.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from vsep_core.api import HashTable, ModelRecord
from vsep_core.helpers import attach_scores
from vsep_core.sources import uvr_model_file

ARCHITECTURE = "VR"
VR_MODEL_DATA_FILENAME = "vr_model_data.json"
"""The reference caches UVR's VR hash table in the model directory under this name."""
PACKAGE = "vsep-vr"


@functools.cache
def _load(name: str) -> dict:
    return json.loads(resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8"))


def _scores() -> dict:
    return json.loads(resources.files(__package__).joinpath("data", "scores.json").read_text(encoding="utf-8"))


def model_records() -> list[ModelRecord]:
    """Catalogue records of VR models (one ``.pth`` file each)."""
    return attach_scores([
        ModelRecord(filename=filename, architecture=ARCHITECTURE, friendly_name=name,
                    files=[uvr_model_file(filename, vip="VIP" in name)], vip="VIP" in name, package=PACKAGE)
        for name, filename in _load("models.json")["models"]
    ], _scores())


def hash_tables() -> list[HashTable]:
    """UVR's VR hash table (with audio-separator's additions), merged by core with vr_model_data.json."""
    return [HashTable(ARCHITECTURE, VR_MODEL_DATA_FILENAME, _load("hash_params.json"), priority=1)]
