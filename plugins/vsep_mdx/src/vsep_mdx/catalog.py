"""Catalogue data of MDX-Net models, handed to core through hooks.

``data/models.json`` lists ``[friendly name, .onnx file]`` in the reference's order (UVR's
public and VIP lists, then audio-separator's additions); ``data/hash_params.json`` maps the
MD5 of a model file's last 10,240,000 bytes to its parameters. See ``data/README.md``.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from vsep_core.api import HashTable, ModelRecord
from vsep_core.helpers import attach_scores
from vsep_core.sources import uvr_model_file

ARCHITECTURE = "MDX"
MDX_MODEL_DATA_FILENAME = "mdx_model_data.json"
"""The reference caches UVR's MDX hash table in the model directory under this name."""
PACKAGE = "vsep-mdx"


@functools.cache
def _load(name: str) -> dict:
    return json.loads(resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8"))


def _scores() -> dict:
    return json.loads(resources.files(__package__).joinpath("data", "scores.json").read_text(encoding="utf-8"))


def model_records() -> list[ModelRecord]:
    """Catalogue records of MDX-Net models (one ``.onnx`` file each; VIP when the name says so)."""
    return attach_scores([
        ModelRecord(filename=filename, architecture=ARCHITECTURE, friendly_name=name,
                    files=[uvr_model_file(filename, vip="VIP" in name)], vip="VIP" in name, package=PACKAGE)
        for name, filename in _load("models.json")["models"]
    ], _scores())


def hash_tables() -> list[HashTable]:
    """UVR's MDX hash table (with audio-separator's additions), merged by core with mdx_model_data.json.

    Priority 0: searched before VR's table, as the reference looks hashes up."""
    return [HashTable(ARCHITECTURE, MDX_MODEL_DATA_FILENAME, _load("hash_params.json"), priority=0)]
