"""Helpers of the MSST-HTDemucs tests: loading through vsep_demucs.msst, and the oracle callable."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf
from vsep_demucs.plugin import MSSTHTDemucsParams

from vsep_core.api import Device, LoadContext, ModelRecord

MSST_REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "msst-reference"


def load_msst(ckpt: Path, **params):
    """vsep_demucs's MSST loader on an MSST ``.ckpt`` (its yaml beside it), on the CPU."""
    from vsep_demucs.plugin import _load_msst

    record = ModelRecord(filename=ckpt.name, architecture="HTDemucs-MSST", friendly_name=ckpt.name, files=[])
    ctx = LoadContext(record=record, model_path=ckpt, model_dir=ckpt.parent, config_path=None,
                      params=MSSTHTDemucsParams(**params), device=Device("cpu", ("CPUExecutionProvider",)),
                      logger=logging.getLogger("test"))
    return _load_msst(ctx)


def msst_callable(input_path: str, model_dir: str, model_file: str, case: dict) -> dict[str, np.ndarray]:
    """check_msst_reference.py --callable: separate with vsep_demucs directly (no core CLI)."""
    model = load_msst(Path(model_dir) / model_file)
    audio, _ = sf.read(input_path, dtype="float32", always_2d=True)
    return {name.lower(): wave for name, wave in model.separate(audio.T).items()}


def msst_yaml_text(instruments=("vocals", "other"), segment: float = 1.0, samplerate: int = 8000,
                   num_overlap: int = 2, batch_size: int = 2, extra_inference: str = "") -> str:
    """An MSST HTDemucs yaml (OmegaConf style: ``dconv_init: 1e-3``) of a tiny network."""
    return (
        "audio:\n  chunk_size: 8000\n"
        f"training:\n  segment: {segment}\n  samplerate: {samplerate}\n  channels: 2\n"
        f"  instruments: {list(instruments)!r}\n  target_instrument: null\n"
        f"inference:\n  num_overlap: {num_overlap}\n  batch_size: {batch_size}\n{extra_inference}"
        "model: htdemucs\n"
        "htdemucs:\n  channels: 4\n  depth: 4\n  nfft: 4096\n  t_layers: 1\n  t_heads: 2\n  dconv_comp: 2\n"
        "  dconv_mode: 3\n  dconv_init: 1e-3\n  num_subbands: 1\n  bottom_channels: 8\n  t_cape_glob_loc_scale:"
        " [5000.0, 1.0, 1.4]\n"
    )


def write_msst_model(folder: Path, name: str, text: str, seed: int = 0) -> Path:
    """`<name>.ckpt` (plain state_dict of a random HTDemucs built from `text`) and `<name>.yaml` in `folder`."""
    import torch
    import yaml
    from vsep_demucs.htdemucs import HTDemucs
    from vsep_demucs.msst import _MSSTLoader

    config = yaml.load(text, Loader=_MSSTLoader)  # noqa: S506 - SafeLoader subclass
    kwargs = {k: v for k, v in config["htdemucs"].items() if k != "num_subbands"}
    t = config["training"]
    torch.manual_seed(seed)
    net = HTDemucs(sources=t["instruments"], audio_channels=t["channels"], samplerate=t["samplerate"],
                   segment=t["segment"], use_train_segment=False, **kwargs)
    with torch.no_grad():
        for pname, p in net.named_parameters():
            if pname.endswith(".scale"):
                p.normal_(0.5, 0.1)
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / f"{name}.ckpt"
    torch.save(net.state_dict(), ckpt)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return ckpt
