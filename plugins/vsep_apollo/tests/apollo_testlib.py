"""Helpers of the vsep-apollo tests: a tiny Apollo yaml, random-weight checkpoints, load contexts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import yaml
from vsep_apollo.config import network_config
from vsep_apollo.network import Apollo
from vsep_apollo.plugin import ApolloParams

from vsep_core.api import Device, LoadContext, ModelRecord

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


def tiny_config(**changes: Any) -> dict[str, Any]:
    """A copy of TINY with dotted keys changed (``{"model.layer": 2}``); a value None removes the key."""
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
    """Write `config` as MSST does (PyYAML)."""
    path.write_text(yaml.dump(config, sort_keys=False), encoding="utf-8")
    return path


def random_state(config: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of a random-weight Apollo built from `config` (norm gains perturbed too)."""
    torch.manual_seed(seed)
    net = Apollo(network_config(config))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.state_dict()


def write_model(directory: Path, name: str, config: dict[str, Any] | None = None, seed: int = 0,
                wrap: bool = True, suffix: str = ".ckpt") -> Path:
    """A checkpoint (``{'state_dict': ...}`` as the published weights, or plain) with ``name.yaml`` beside it."""
    config = config or TINY
    directory.mkdir(parents=True, exist_ok=True)
    write_yaml(directory / f"{name}.yaml", config)
    path = directory / f"{name}{suffix}"
    state = random_state(config, seed)
    torch.save({"state_dict": state} if wrap else state, path)
    return path


def make_ctx(model_path: Path, config_path: Path | None = None, **params: Any) -> LoadContext:
    """A LoadContext for a local checkpoint on the CPU."""
    return LoadContext(record=ModelRecord(model_path.name, "Apollo", model_path.name, []), model_path=model_path,
                       model_dir=model_path.parent,
                       config_path=config_path if config_path is not None else model_path.with_suffix(".yaml"),
                       params=ApolloParams(**params), device=Device("cpu", ()))
