"""Helpers of the vsep-bandit tests: a tiny BandIt v2 yaml, random-weight checkpoints, load contexts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from vsep_bandit.config import network_config
from vsep_bandit.model import build_network
from vsep_bandit.plugin import BanditParams

from vsep_core.api import LoadContext
from vsep_core.testlib import checkpoint_context, perturbed_state, write_checkpoint, write_yaml  # noqa: F401

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


def random_state(config: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of a random-weight network built from `config` (norms perturbed too)."""
    return perturbed_state(lambda: build_network(network_config(config)), seed, 0.1)


def write_model(directory: Path, name: str, config: dict[str, Any] | None = None, seed: int = 0,
                state: dict[str, torch.Tensor] | None = None) -> Path:
    """A checkpoint ``name.ckpt`` (a plain state dict, as MSST saves) with ``name.yaml`` beside it."""
    config = config or TINY
    return write_checkpoint(directory, name, config, state if state is not None else random_state(config, seed))


def make_ctx(model_path: Path, config_path: Path | None = None, **params: Any) -> LoadContext:
    """A LoadContext for a local checkpoint on the CPU."""
    return checkpoint_context(model_path, "BandIt", BanditParams(**params), config_path)
