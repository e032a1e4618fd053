"""Catalogue records of BandIt v2: the authors' published checkpoints (Zenodo record 12701995).

The weights are the authors' own release (Watcharasupat, Wu, Orife, "Remastering Divide and Remaster",
arXiv 2407.07275), CC BY-SA 4.0, trained on DnR v3: a multilingual model and six language-specific ones.
They are PyTorch Lightning checkpoints; vsep reads their ``state_dict`` (tensors only, ``weights_only``)
and drops the ``model.`` prefix and the training-only ``loss_handler.*`` tensors, as MSST's conversion
recipe does. The config is MSST's ``config_dnr_bandit_v2_mus64.yaml`` (packaged here, MIT).

Scores: the only per-model number found is the multilingual model's speech SDR on the DnR v3 test set
(MVSep's DnR v3 leaderboard, 12.30 dB); the paper reports per-language SNRs that are not reproduced here.
Scores are keyed ``"<stem> (<dataset>)"`` (as vsep-mdxc keys MSST's published scores), so they keep
their dataset and never mix with scores measured on another set.
Sizes and digests are given only where a source that verified a download states them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from vsep_core.api import DownloadFile, ModelRecord

ARCHITECTURE = "BandIt"
PACKAGE = "vsep-bandit"
CONFIG = "config_dnr_bandit_v2_mus64.yaml"
ZENODO = "https://zenodo.org/records/12701995/files"
LICENSE = "CC BY-SA 4.0"
SCORES_DATASET = "DnR v3 test, MVSep leaderboard"
STEMS = ["speech", "music", "sfx"]

# (language key, what it was trained on, size in bytes or None, sha256 or None, scores)
_CHECKPOINTS: list[tuple[str, str, int | None, str | None, dict[str, dict[str, float | None]]]] = [
    ("multi", "multilingual DnR v3 (30+ languages)", None,
     "abcfccf65446752a057f4a302c941479a54b7560ebf8d7bca039d2ea98e64cfc",
     {f"speech ({SCORES_DATASET})": {"SDR": 12.30}}),
    ("eng", "English DnR v3", 446680129, "3d14c48399ddb42be6fca6c316adc1b7d67d0e648e4e937359811aa6fa8b8cd2", {}),
    ("deu", "German DnR v3", None, None, {}),
    ("fra", "French DnR v3", None, None, {}),
    ("spa", "Spanish DnR v3", None, None, {}),
    ("cmn", "Mandarin DnR v3", None, None, {}),
    ("fao", "Faroese DnR v3", None, None, {}),
]


def packaged_config() -> Path:
    """The packaged copy of MSST's BandIt v2 config."""
    return Path(str(resources.files(__package__).joinpath("data", CONFIG)))


def model_records() -> list[ModelRecord]:
    """One record per published checkpoint: the checkpoint from Zenodo and the packaged yaml."""
    config = DownloadFile(CONFIG, url=packaged_config().as_uri())
    records = []
    for key, trained, size, sha256, scores in _CHECKPOINTS:
        name = f"checkpoint-{key}.ckpt"
        records.append(ModelRecord(
            filename=name, architecture=ARCHITECTURE, friendly_name=f"BandIt v2 {key} (speech/music/sfx)",
            files=[DownloadFile(name, url=f"{ZENODO}/{name}?download=1", size=size, sha256=sha256), config],
            stems=list(STEMS), target_stem="speech", config=CONFIG, scores=scores, package=PACKAGE,
            license=LICENSE,
            provenance=(f"the authors' release (Zenodo 12701995, arXiv 2407.07275), trained on {trained}; a "
                        "PyTorch Lightning checkpoint whose state_dict vsep reads"
                        + ("" if scores else "; no per-stem score published for it outside the paper's "
                           "per-language tables"))))
    return records
