"""Catalogue data of Demucs v4 models, handed to core through hooks.

``data/models.json`` lists ``[friendly name, bag yaml, [URLs of every .th and of the yaml]]``
for UVR's "Demucs v4" entries (the only Demucs generation vsep runs). The yaml is the
model's file name: it names the ``.th`` checkpoints of the bag. See ``data/README.md``.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from vsep_core.api import ModelRecord
from vsep_core.helpers import attach_scores
from vsep_core.sources import with_fallback

ARCHITECTURE = "Demucs"
PACKAGE = "vsep-demucs"


@functools.cache
def _models() -> list:
    return json.loads(resources.files(__package__).joinpath("data", "models.json").read_text(encoding="utf-8"))[
        "models"]


def _scores() -> dict:
    return json.loads(resources.files(__package__).joinpath("data", "scores.json").read_text(encoding="utf-8"))


def model_records() -> list[ModelRecord]:
    """Catalogue records of Demucs v4 models: the bag yaml plus its ``.th`` checkpoints, by URL."""
    return attach_scores([
        ModelRecord(filename=yaml_name, architecture=ARCHITECTURE, friendly_name=name,
                    files=[with_fallback(url.rsplit("/", 1)[-1], url) for url in urls], package=PACKAGE)
        for name, yaml_name, urls in _models()
    ], _scores())
