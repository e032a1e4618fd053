"""Catalogue records of Apollo: the authors' LQ-MP3 restoration weights (JusperLee/Apollo on Hugging Face).

``pytorch_model.bin`` holds ``{'state_dict': ...}``; it is saved here as ``apollo_lq_mp3.bin`` (the
upstream name is shared by every Hugging Face model). The config is MSST's ``config_apollo.yaml``
(packaged here, MIT). No per-stem score is published for these weights: MSST's table lists "---"; the
paper (arXiv 2409.08514) reports restoration quality per MP3 bitrate on MUSDB18-HQ and MoisesDB as
figures. The SHA-256 is the one two independent projects that verify their downloads pin. Licence: the
authors' repository (JusperLee/Apollo) is CC BY-SA 4.0; the Hugging Face card names none of its own.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from vsep_core.api import DownloadFile, ModelRecord

ARCHITECTURE = "Apollo"
PACKAGE = "vsep-apollo"
CONFIG = "config_apollo.yaml"
WEIGHTS_URL = "https://huggingface.co/JusperLee/Apollo/resolve/main/pytorch_model.bin"
WEIGHTS_SHA256 = "99d9af7f1ff20e63c393035513a655392818d66b4d7fc23d658175c1f15e8d76"


def packaged_config() -> Path:
    """The packaged copy of MSST's Apollo config."""
    return Path(str(resources.files(__package__).joinpath("data", CONFIG)))


def model_records() -> list[ModelRecord]:
    """The LQ-MP3 restoration model: weights from Hugging Face and the packaged yaml."""
    return [ModelRecord(
        filename="apollo_lq_mp3.bin", architecture=ARCHITECTURE,
        friendly_name="Apollo: LQ MP3 restoration (by JusperLee)",
        files=[DownloadFile("apollo_lq_mp3.bin", url=WEIGHTS_URL, sha256=WEIGHTS_SHA256),
               DownloadFile(CONFIG, url=packaged_config().as_uri())],
        stems=["Restored"], target_stem="Restored", config=CONFIG, scores={}, package=PACKAGE,
        license="CC BY-SA 4.0",
        provenance="the authors' weights (Kai Li, Yi Luo; JusperLee/Apollo on Hugging Face), trained to restore "
                   "MP3-compressed music; no per-stem score published (MSST lists '---'; the paper's results on "
                   "MUSDB18-HQ and MoisesDB are per-bitrate figures)")]
