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
from typing import Any

from vsep_core.api import DownloadFile, ModelRecord
from vsep_core.cost import attach_costs, packaged_costs
from vsep_core.helpers import attach_scores
from vsep_core.sources import uvr_config_file, uvr_model_file

ARCHITECTURE = "MDXC"
PACKAGE = "vsep-mdxc"


def _data() -> Path:
    return Path(str(resources.files(__package__).joinpath("data")))


@functools.cache
def _models() -> list[list[str]]:
    return json.loads((_data() / "models.json").read_text(encoding="utf-8"))["models"]


def reference_checkpoints() -> frozenset[str]:
    """The checkpoint file names of audio-separator's MDXC model list."""
    return frozenset(ckpt for _, ckpt, _ in _models())


def packaged_config(name: str) -> Path | None:
    """The packaged copy of yaml config ``name``, or None when it is not packaged."""
    path = _data() / "configs" / name
    return path if path.is_file() else None


def _config_file(name: str) -> DownloadFile:
    return uvr_config_file(name, packaged_config(name))


def _scores() -> dict:
    return json.loads(resources.files(__package__).joinpath("data", "scores.json").read_text(encoding="utf-8"))


@functools.cache
def _msst_models() -> list[dict[str, Any]]:
    return json.loads((_data() / "msst_models.json").read_text(encoding="utf-8"))["models"]


def msst_scores(entry: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """MSST's published scores of a model as record scores, keyed ``"<stem> (<dataset>)"`` so that they
    keep their dataset and never mix with the MUSDB18-HQ medians core measures for the same stem."""
    scores: dict[str, dict[str, float | None]] = {}
    for table in entry.get("scores", []):
        for stem, value in table["values"].items():
            scores[f"{stem} ({table['dataset']})"] = {table["metric"]: value}
    return scores


def _msst_record(entry: dict[str, Any]) -> ModelRecord:
    config = entry["config"]
    packaged = packaged_config(config)
    config_file = DownloadFile(config, url=entry["config_url"], mirrors=(packaged.as_uri(),) if packaged else ())
    return ModelRecord(filename=entry["checkpoint"], architecture=ARCHITECTURE, friendly_name=entry["name"],
                       files=[DownloadFile(entry["checkpoint"], url=entry["checkpoint_url"]), config_file],
                       stems=list(entry.get("stems", [])), config=config, scores=msst_scores(entry),
                       package=PACKAGE, license=entry.get("license"), provenance=entry.get("provenance"))


def model_records() -> list[ModelRecord]:
    """Catalogue records of MDXC models: the checkpoint and its yaml config (``record.config``).

    audio-separator's list first (in its order), with MSST's scores, licence and provenance added
    where MSST's model list has the same file; then the RoFormers only MSST's list has
    (``data/msst_models.json``). The MUSDB18-HQ medians of ``data/scores.json`` are attached to all.
    """
    extends = {e["checkpoint"]: e for e in _msst_models() if e["mode"] == "extends"}
    records = []
    for name, ckpt, config in _models():
        record = ModelRecord(filename=ckpt, architecture=ARCHITECTURE, friendly_name=name,
                             files=[uvr_model_file(ckpt, vip="VIP" in name), _config_file(config)], config=config,
                             vip="VIP" in name, package=PACKAGE)
        extra = extends.get(ckpt)
        if extra:
            record.scores = msst_scores(extra)
            record.license, record.provenance = extra.get("license"), extra.get("provenance")
        records.append(record)
    records += [_msst_record(e) for e in _msst_models() if e["mode"] == "new"]
    # counted costs per second of audio: data/costs.json, written by `python -m vsep_core.cost MDXC ...`
    return attach_costs(attach_scores(records, _scores()), packaged_costs(__package__))
