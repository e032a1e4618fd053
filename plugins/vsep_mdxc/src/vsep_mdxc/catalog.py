"""Catalogue data of MDXC models (MDX23C, BS-Roformer, Mel-Band-Roformer), handed to core through hooks.

``data/models.json`` lists ``[friendly name, .ckpt file, .yaml config]`` in the reference's
order; ``data/configs/`` holds the yaml configs of UVR's ``mdx_c_configs``. A packaged config
is copied into the model directory (no network); the others are downloaded (the UVR configs
path first, then the audio-separator repository). See ``data/README.md``.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

from vsep_core.api import DownloadFile, ModelRecord
from vsep_core.helpers import attach_scores
from vsep_core.sources import uvr_config_file, uvr_model_file

ARCHITECTURE = "MDXC"
PACKAGE = "vsep-mdxc"


def _data() -> Path:
    return Path(str(resources.files(__package__).joinpath("data")))


@functools.cache
def _models() -> list[list[str]]:
    return json.loads((_data() / "models.json").read_text(encoding="utf-8"))["models"]


def packaged_config(name: str) -> Path | None:
    """The packaged copy of yaml config ``name``, or None when it is not packaged."""
    path = _data() / "configs" / name
    return path if path.is_file() else None


def _config_file(name: str) -> DownloadFile:
    return uvr_config_file(name, packaged_config(name))


def _scores() -> dict:
    return json.loads(resources.files(__package__).joinpath("data", "scores.json").read_text(encoding="utf-8"))


def model_records() -> list[ModelRecord]:
    """Catalogue records of MDXC models: the checkpoint and its yaml config (``record.config``)."""
    return attach_scores([
        ModelRecord(filename=ckpt, architecture=ARCHITECTURE, friendly_name=name,
                    files=[uvr_model_file(ckpt, vip="VIP" in name), _config_file(config)], config=config,
                    vip="VIP" in name, package=PACKAGE)
        for name, ckpt, config in _models()
    ], _scores())
