"""Catalogue records of SCNet models, handed to core through the ``vsep_models`` hook.

``data/models.json`` holds the SCNet rows of MSST's ``docs/pretrained_models.md`` (see
``data/README.md``): checkpoint and config with their release URLs, SDR per stem on the MVSep
Multisong dataset and on the MUSDB18-HQ test set, licence and provenance.

Scores in a record: ``{"<Stem> (<dataset>)": {"SDR": value}}`` with dataset ``Multisong`` or
``MUSDB18-HQ test`` (the convention of vsep-mdxc's MSST records), so published scores keep their
dataset. A packaged config is offered first (``file://``), its release URL after.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

from vsep_core.api import DownloadFile, ModelRecord

ARCHITECTURE = "SCNet"
PACKAGE = "vsep-scnet"
DATASET_NAMES = {"multisong": "Multisong", "musdb18hq_test": "MUSDB18-HQ test"}


def _data() -> Path:
    return Path(str(resources.files(__package__).joinpath("data")))


@functools.cache
def catalogue_data() -> dict[str, Any]:
    """The parsed ``data/models.json``."""
    return json.loads((_data() / "models.json").read_text(encoding="utf-8"))


def packaged_config(name: str) -> Path | None:
    """The packaged copy of MSST config ``name``, or None when it is only a release asset."""
    path = _data() / "configs" / name
    return path if path.is_file() else None


def record_scores(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """Per-dataset SDRs ``{dataset: {stem: sdr}}`` -> the record's ``{"<Stem> (<dataset>)": {"SDR": sdr}}``."""
    return {f"{stem.capitalize()} ({DATASET_NAMES.get(dataset, dataset)})": {"SDR": value}
            for dataset, per_stem in scores.items() for stem, value in per_stem.items() if stem != "avg"}


def model_records() -> list[ModelRecord]:
    """Catalogue records of SCNet models: the checkpoint and its MSST yaml (``record.config``)."""
    data = catalogue_data()
    records = []
    for m in data["models"]:
        config = packaged_config(m["config"])
        files = [DownloadFile(m["checkpoint"], url=m["checkpoint_url"]),
                 DownloadFile(m["config"], url=config.as_uri() if config else m["config_url"])]
        records.append(ModelRecord(
            filename=m["checkpoint"], architecture=ARCHITECTURE, friendly_name=f"SCNet: {m['name']}", files=files,
            stems=[s.capitalize() for s in data["stems"]], config=m["config"], scores=record_scores(m["scores"]),
            package=PACKAGE, license=m["license"], provenance=f"MSST {m['type']} {m['provenance']}"))
    return records
