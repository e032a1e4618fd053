"""Helpers of the MSST-HTDemucs tests: loading through vsep_demucs.msst, and the oracle callable."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf

from vsep_core.api import Device, LoadContext, ModelRecord
from vsep_demucs.plugin import DemucsParams

MSST_REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "msst-reference"


def load_msst(ckpt: Path):
    """vsep_demucs's loader on an MSST ``.ckpt`` (its yaml beside it), on the CPU."""
    from vsep_demucs.plugin import _load

    record = ModelRecord(filename=ckpt.name, architecture="Demucs", friendly_name=ckpt.name, files=[])
    ctx = LoadContext(record=record, model_path=ckpt, model_dir=ckpt.parent, config_path=None,
                      params=DemucsParams(), device=Device("cpu", ("CPUExecutionProvider",)),
                      logger=logging.getLogger("test"))
    return _load(ctx)


def msst_callable(input_path: str, model_dir: str, model_file: str, case: dict) -> dict[str, np.ndarray]:
    """check_msst_reference.py --callable: separate with vsep_demucs directly (no core CLI)."""
    model = load_msst(Path(model_dir) / model_file)
    audio, _ = sf.read(input_path, dtype="float32", always_2d=True)
    return {name.lower(): wave for name, wave in model.separate(audio.T).items()}
