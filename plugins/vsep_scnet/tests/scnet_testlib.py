"""Helpers of vsep-scnet's tests: tiny random-weight SCNets in MSST's formats, and the oracle callable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from vsep_scnet.network import SCNET_TRAN, SCNet
from vsep_scnet.plugin import SCNetParams

from vsep_core.testlib import checkpoint_context, separate_file_lower

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "msst-reference"


def tiny_yaml(sources=("drums", "bass", "other", "vocals"), tran: bool = False, chunk: int = 8192,
              overlap: int = 2, batch: int = 2, normalize: bool = False, channels: int = 2) -> dict[str, Any]:
    """An MSST-style SCNet yaml with small dimensions."""
    model = {"sources": list(sources), "audio_channels": channels, "dims": [2 * channels, 8, 16], "nfft": 512,
             "hop_size": 128, "win_size": 512, "normalized": True, "band_SR": [0.2, 0.4, 0.4],
             "band_stride": [1, 4, 16], "band_kernel": [3, 4, 16], "conv_depths": [2, 1, 1], "compress": 4,
             "conv_kernel": 3, "num_dplayer": 2, "expand": 1}
    if tran:
        model.update(tran_rotary_embedding_dim=8, tran_depth=1, tran_heads=2, tran_dim_head=8,
                     tran_attn_dropout=0.0, tran_ff_dropout=0.0, tran_flash_attn=False)
    return {"audio": {"chunk_size": chunk, "num_channels": channels, "sample_rate": 44100},
            "model": model, "training": {"instruments": list(sources), "target_instrument": None},
            "inference": {"batch_size": batch, "num_overlap": overlap, "normalize": normalize}}


def write_model(folder: Path, name: str, config: dict[str, Any], model_type: str, seed: int = 0) -> Path:
    """Write `<name>.ckpt` (plain state_dict of a random `model_type` SCNet) and `<name>.yaml` into `folder`."""
    from vsep_scnet.model import scnet_config

    torch.manual_seed(seed)
    net = SCNet(scnet_config(config), model_type)
    with torch.no_grad():  # make the constant-initialised norms random too
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / f"{name}.ckpt"
    torch.save(net.state_dict(), ckpt)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return ckpt


def load(ckpt: Path, **params: Any):
    """vsep_scnet.model.load_model on `ckpt` (its yaml beside it), on the CPU."""
    from vsep_scnet.model import load_model

    return load_model(checkpoint_context(ckpt, "SCNet", SCNetParams(**params), yaml_beside=False))


def msst_callable(input_path: str, model_dir: str, model_file: str, case: dict) -> dict[str, np.ndarray]:
    """check_msst_reference.py --callable: separate the oracle's input with vsep_scnet directly (no core CLI)."""
    return separate_file_lower(load(Path(model_dir) / model_file), input_path)


__all__ = ["REFERENCE", "SCNET_TRAN", "tiny_yaml", "write_model", "load", "msst_callable"]
