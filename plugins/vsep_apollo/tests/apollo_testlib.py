"""Helpers of the vsep-apollo tests: a tiny Apollo yaml, random-weight checkpoints, load contexts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from vsep_apollo.config import network_config
from vsep_apollo.network import Apollo
from vsep_apollo.plugin import ApolloParams

from vsep_core.api import LoadContext
from vsep_core.testlib import checkpoint_context, perturbed_state, write_checkpoint, write_yaml  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[3]
MSST_REFERENCE = REPO_ROOT.parent / "shared" / "msst-reference"
CHECKER_DIR = REPO_ROOT.parent / "shared" / "tools"

TINY: dict[str, Any] = {
    "audio": {"chunk_size": 4410, "num_channels": 2, "sample_rate": 44100, "min_mean_abs": 0.0},
    "model": {"sr": 44100, "win": 20, "feature_dim": 16, "layer": 1},
    "training": {"instruments": ["restored", "addition"], "target_instrument": "restored"},
    "augmentations": {"enable": False},
    "inference": {"batch_size": 2, "num_overlap": 2},
}


def random_state(config: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of a random-weight Apollo built from `config` (norm gains perturbed too)."""
    return perturbed_state(lambda: Apollo(network_config(config)), seed, 0.05)


def write_model(directory: Path, name: str, config: dict[str, Any] | None = None, seed: int = 0,
                wrap: bool = True, suffix: str = ".ckpt") -> Path:
    """A checkpoint (``{'state_dict': ...}`` as the published weights, or plain) with ``name.yaml`` beside it."""
    config = config or TINY
    state = random_state(config, seed)
    return write_checkpoint(directory, name, config, {"state_dict": state} if wrap else state, suffix)


def make_ctx(model_path: Path, config_path: Path | None = None, **params: Any) -> LoadContext:
    """A LoadContext for a local checkpoint on the CPU."""
    return checkpoint_context(model_path, "Apollo", ApolloParams(**params), config_path)
