"""Catalogue data of Demucs v4 models, handed to core through hooks.

``data/models.json`` lists ``[friendly name, bag yaml, [URLs of every .th and of the yaml]]``
for UVR's "Demucs v4" entries (the only Demucs generation vsep runs). The yaml is the
model's file name: it names the ``.th`` checkpoints of the bag. See ``data/README.md``.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path

from vsep_core.api import DownloadFile, ModelRecord
from vsep_core.cost import attach_costs, packaged_costs
from vsep_core.helpers import attach_scores
from vsep_core.sources import with_fallback

ARCHITECTURE = "Demucs"
MSST_ARCHITECTURE = "HTDemucs-MSST"
PACKAGE = "vsep-demucs"


@functools.cache
def _models() -> list:
    return json.loads(resources.files(__package__).joinpath("data", "models.json").read_text(encoding="utf-8"))[
        "models"]


def _scores() -> dict:
    return json.loads(resources.files(__package__).joinpath("data", "scores.json").read_text(encoding="utf-8"))


def model_records() -> list[ModelRecord]:
    """Catalogue records of Demucs v4 models: the bag yaml plus its ``.th`` checkpoints, by URL; then the
    MSST-format HTDemucs checkpoints (``data/msst_models.json``)."""
    records = attach_scores([
        ModelRecord(filename=yaml_name, architecture=ARCHITECTURE, friendly_name=name,
                    files=[with_fallback(url.rsplit("/", 1)[-1], url) for url in urls], package=PACKAGE)
        for name, yaml_name, urls in _models()
    ], _scores())
    # counted costs per second of audio: data/costs.json, written by `python -m vsep_core.cost Demucs ...`
    return attach_costs(records, packaged_costs(__package__)) + msst_records()


def msst_records() -> list[ModelRecord]:
    """MSST-format HTDemucs records: the state_dict ``.ckpt`` and its MSST yaml (packaged copy first).

    Scores: ``{"<Stem> (Multisong)": {"SDR": value}}`` (the MVSep Multisong dataset; vsep-mdxc's convention).
    """
    data = json.loads(resources.files(__package__).joinpath("data", "msst_models.json").read_text(encoding="utf-8"))
    records = []
    for m in data["models"]:
        packaged = Path(str(resources.files(__package__).joinpath("data", "msst_configs", m["config"])))
        config_url = packaged.as_uri() if packaged.is_file() else m["config_url"]
        names = {"multisong": "Multisong"}
        scores: dict[str, dict[str, float | None]] = {
            f"{stem.capitalize()} ({names.get(dataset, dataset)})": {"SDR": value}
            for dataset, per_stem in m["scores"].items() for stem, value in per_stem.items()}
        records.append(ModelRecord(
            filename=m["checkpoint"], architecture=MSST_ARCHITECTURE, friendly_name=f"Demucs (MSST): {m['name']}",
            files=[DownloadFile(m["checkpoint"], url=m["checkpoint_url"]), DownloadFile(m["config"], url=config_url)],
            stems=[s.capitalize() for s in m["stems"]], config=m["config"], scores=scores, package=PACKAGE,
            license=m["license"], provenance=m["provenance"]))
    return records
