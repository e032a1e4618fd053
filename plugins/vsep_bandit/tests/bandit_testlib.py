"""Helpers of the vsep-bandit tests: a tiny BandIt v2 yaml, random-weight checkpoints, load contexts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import yaml
from vsep_bandit.config import network_config
from vsep_bandit.model import build_network
from vsep_bandit.plugin import BanditParams

from vsep_core.api import Device, LoadContext, ModelRecord

REPO_ROOT = Path(__file__).resolve().parents[3]
MSST_REFERENCE = REPO_ROOT.parent / "shared" / "msst-reference"
CHECKER_DIR = REPO_ROOT.parent / "shared" / "tools"

TINY: dict[str, Any] = {
    "cls": "Bandit",
    "audio": {"chunk_size": 4800, "num_channels": 2, "sample_rate": 48000, "min_mean_abs": 0.0},
    "kwargs": {"in_channels": 1, "stems": ["speech", "music", "sfx"], "band_type": "musical", "n_bands": 16,
               "normalize_channel_independently": False, "treat_channel_as_feature": True, "n_sqm_modules": 1,
               "emb_dim": 8, "rnn_dim": 8, "bidirectional": True, "rnn_type": "GRU", "mlp_dim": 8,
               "hidden_activation": "Tanh", "hidden_activation_kwargs": None, "complex_mask": True,
               "use_freq_weights": True, "n_fft": 256, "win_length": 256, "hop_length": 64,
               "window_fn": "hann_window", "wkwargs": None, "power": None, "center": True, "normalized": True,
               "pad_mode": "reflect", "onesided": True},
    "training": {"instruments": ["speech", "music", "sfx"], "target_instrument": None, "mixup_probs": (0.2, 0.02)},
    "inference": {"batch_size": 2, "num_overlap": 2},
}


def tiny_config(**changes: Any) -> dict[str, Any]:
    """A copy of TINY with dotted keys changed (``{"kwargs.emb_dim": 4}``); a value None removes the key."""
    config = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        node = config
        for key in path:
            node = node[key]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return config


def write_yaml(path: Path, config: dict[str, Any]) -> Path:
    """Write `config` as MSST does (PyYAML, tuples as ``!!python/tuple``)."""
    path.write_text(yaml.dump(config, sort_keys=False), encoding="utf-8")
    return path


def random_state(config: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of a random-weight network built from `config` (norms perturbed too)."""
    torch.manual_seed(seed)
    net = build_network(network_config(config))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.state_dict()


def write_model(directory: Path, name: str, config: dict[str, Any] | None = None, seed: int = 0,
                state: dict[str, torch.Tensor] | None = None) -> Path:
    """A checkpoint ``name.ckpt`` (a plain state dict, as MSST saves) with ``name.yaml`` beside it."""
    config = config or TINY
    directory.mkdir(parents=True, exist_ok=True)
    write_yaml(directory / f"{name}.yaml", config)
    path = directory / f"{name}.ckpt"
    torch.save(state if state is not None else random_state(config, seed), path)
    return path


def make_ctx(model_path: Path, config_path: Path | None = None, **params: Any) -> LoadContext:
    """A LoadContext for a local checkpoint on the CPU."""
    return LoadContext(record=ModelRecord(model_path.name, "BandIt", model_path.name, []), model_path=model_path,
                       model_dir=model_path.parent,
                       config_path=config_path if config_path is not None else model_path.with_suffix(".yaml"),
                       params=BanditParams(**params), device=Device("cpu", ()))
