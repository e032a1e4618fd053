"""Helpers of the vsep-mdxc tests: tiny yaml configs, random-weight checkpoints, load contexts, the metric."""

from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import yaml
from vsep_mdxc.config import BS_ROFORMER, MDX23C, detect_kind
from vsep_mdxc.plugin import MDXCParams
from vsep_mdxc.roformer import build_roformer, roformer_config
from vsep_mdxc.tfc_tdf import TFCTDFConfig, TFCTDFNet

from vsep_core.api import Device, LoadContext, ModelRecord

REPO_ROOT = Path(__file__).resolve().parents[3]
REFERENCE = REPO_ROOT.parent / "shared" / "reference"
CHECKER = REPO_ROOT.parent / "shared" / "tools" / "check_reference.py"
UVR_CONFIGS = REPO_ROOT.parent / "shared" / "uvr-data" / "mdx_model_data" / "mdx_c_configs"
SR = 44100

TINY_MDX23C: dict[str, Any] = {
    "audio": {"chunk_size": 1984, "dim_f": 128, "dim_t": 32, "hop_length": 64, "n_fft": 256, "num_channels": 2,
              "sample_rate": SR},
    "model": {"act": "gelu", "bottleneck_factor": 4, "growth": 4, "norm": "InstanceNorm", "num_blocks_per_scale": 1,
              "num_channels": 4, "num_scales": 2, "num_subbands": 2, "scale": [2, 2]},
    "training": {"instruments": ["Vocals", "Instrumental"], "target_instrument": None},
    "inference": {"batch_size": 1, "dim_t": 32, "num_overlap": 4},
}

TINY_BS: dict[str, Any] = {
    "audio": {"chunk_size": 8000, "dim_f": 129, "dim_t": 64, "hop_length": 64, "n_fft": 256, "num_channels": 2,
              "sample_rate": SR},
    "model": {"dim": 8, "depth": 1, "stereo": True, "num_stems": 1, "time_transformer_depth": 1,
              "freq_transformer_depth": 1, "freqs_per_bands": (16, 16, 32, 65), "dim_head": 4, "heads": 2,
              "attn_dropout": 0.1, "ff_dropout": 0.1, "flash_attn": True, "dim_freqs_in": 129, "stft_n_fft": 256,
              "stft_hop_length": 64, "stft_win_length": 256, "stft_normalized": False, "mask_estimator_depth": 2},
    "training": {"instruments": ["Vocals", "Instrumental"], "target_instrument": "Vocals"},
    "inference": {"batch_size": 1, "dim_t": 64, "num_overlap": 2},
}

TINY_MEL: dict[str, Any] = {
    "audio": copy.deepcopy(TINY_BS["audio"]),
    "model": {"dim": 8, "depth": 1, "stereo": True, "num_stems": 1, "time_transformer_depth": 1,
              "freq_transformer_depth": 1, "num_bands": 8, "dim_head": 4, "heads": 2, "sample_rate": SR,
              "stft_n_fft": 256, "stft_hop_length": 64, "stft_win_length": 256, "mask_estimator_depth": 2},
    "training": {"instruments": ["Vocals", "Instrumental"], "target_instrument": "Vocals"},
    "inference": {"batch_size": 1, "dim_t": 64, "num_overlap": 2},
}


def variant_of(config: dict[str, Any]) -> str:
    """'mdx23c', 'bs' or 'mel'."""
    kind = detect_kind(config, [])
    return "mdx23c" if kind == MDX23C else ("bs" if kind == BS_ROFORMER else "mel")


def build_net(config: dict[str, Any], seed: int = 0) -> torch.nn.Module:
    """The network of a parsed yaml with seeded random weights (norm gains perturbed so they matter)."""
    torch.manual_seed(seed)
    variant = variant_of(config)
    if variant == "mdx23c":
        training = config["training"]
        targets = 1 if training.get("target_instrument") else len(training["instruments"])
        net: torch.nn.Module = TFCTDFNet(TFCTDFConfig.from_yaml(config, targets))
    else:
        net = build_roformer(roformer_config(config["model"], variant), variant)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("gamma", "norm.weight", ".0.weight")) and p.ndim == 1:
                p.mul_(1 + 0.1 * torch.randn_like(p))
    return net.eval()


def write_model(tmp: Path, config: dict[str, Any], name: str, seed: int = 0,
                state: dict[str, torch.Tensor] | None = None) -> tuple[Path, Path]:
    """Save a yaml and a random-weight checkpoint `<name>.ckpt` for `config`; return both paths."""
    yml = tmp / f"{name}.yaml"
    ckpt = tmp / f"{name}.ckpt"
    yml.write_text(yaml.safe_dump(_plain(config)))
    torch.save(state if state is not None else build_net(config, seed).state_dict(), ckpt)
    return ckpt, yml


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def make_ctx(ckpt: Path, yml: Path | None, model_data: dict[str, Any] | None = None, **params: Any) -> LoadContext:
    """A LoadContext for the CPU, as core would hand it over (audio_separator inference unless
    `inference` is given; ``inference=None`` leaves the choice to the plugin's default)."""
    params.setdefault("inference", "audio_separator")
    record = ModelRecord(filename=ckpt.name, architecture="MDXC", friendly_name=ckpt.stem, files=[])
    return LoadContext(record=record, model_path=ckpt, model_dir=ckpt.parent, config_path=yml,
                       params=MDXCParams(**params), device=Device("cpu", ("CPUExecutionProvider",)),
                       model_data=model_data or {})


def tones(seconds: float, channels: int = 2, seed: int = 0, peak: float = 0.5) -> np.ndarray:
    """A deterministic stereo test signal: a few sines plus a little noise, float32 [channels, samples]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    chans = []
    for c in range(channels):
        x = sum(np.sin(2 * np.pi * f * (1 + 0.01 * c) * t) for f in (220.0, 554.0, 1760.0, 5000.0))
        x = x + 0.1 * rng.standard_normal(t.size)
        chans.append(x)
    wave = np.stack(chans).astype(np.float32)
    return (wave * (peak / np.max(np.abs(wave)))).astype(np.float32)


def load_checker() -> ModuleType | None:
    """The oracle's checker script as a module (its `compare` and `normalize`), or None when absent."""
    if not CHECKER.is_file():
        return None
    spec = importlib.util.spec_from_file_location("vsep_mdxc_check_reference", CHECKER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parity_db(ours: np.ndarray, ref: np.ndarray) -> float:
    """Gain-invariant parity in dB (the checker's formula)."""
    ours, ref = ours.astype(np.float64), ref.astype(np.float64)
    e = float(np.sum(ref**2))
    g = float(np.sum(ours * ref)) / e
    err = float(np.sum((ours - g * ref) ** 2))
    return math.inf if err == 0 else 10 * math.log10(g * g * e / err)

