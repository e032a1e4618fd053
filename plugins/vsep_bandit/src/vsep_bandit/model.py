"""Loading an MSST ``bandit_v2`` checkpoint and running it as MSST's inference.py does.

- the yaml beside the checkpoint (or the catalogue's) builds the network from ``kwargs``;
- the checkpoint is read with ``torch.load(weights_only=True)``: a plain state dict, or one under
  ``state_dict`` (a Lightning checkpoint, whose keys carry a ``model.`` prefix, works too);
- the mix (at ``audio.sample_rate``, 48 kHz for MSST's configs: core resamples to the model's rate) is
  standardised when ``inference.normalize`` is true, cut by core's ``demix`` (MSST's generic mode:
  ``chunk_size``, ``num_overlap``, fades and reflect border) in batches of ``inference.batch_size``,
  and every stem is de-standardised.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vsep_bandit.bands import check_layout, musical_layout
from vsep_bandit.config import MODEL_TYPE, ConfigError, InferenceSettings, inference_settings, network_config
from vsep_bandit.network import Bandit, BanditConfig
from vsep_core import checkpoints, msst
from vsep_core.api import LoadContext

_STFT_WINDOWS = ("stft.window", "istft.window")
_TRAINING_ONLY = ("loss_handler.",)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint (:func:`vsep_core.checkpoints.read_state_dict`); the authors' Lightning
    checkpoints keep training-only ``loss_handler.*`` tensors (dropped) beside ``model.*``."""
    return checkpoints.read_state_dict(path, drop_prefixes=_TRAINING_ONLY)


def build_network(cfg: BanditConfig) -> Bandit:
    """A BandIt v2 network (random weights) for `cfg`."""
    layout = musical_layout(cfg.n_fft, cfg.n_bands, cfg.fs)
    try:
        check_layout(layout, cfg.n_freqs)
    except ValueError as exc:
        raise ConfigError(f"'kwargs.n_bands' {cfg.n_bands} with n_fft {cfg.n_fft} gives unusable bands: {exc}") \
            from exc
    return Bandit(cfg, layout)


class BanditModel(msst.MsstModel):
    """A loaded BandIt v2 model: float32 [channels, samples] at ``sample_rate`` -> {stem: same shape}."""


def stem_names(settings: InferenceSettings, cfg: BanditConfig) -> list[str]:
    """Output names: ``training.instruments`` as MSST labels the outputs, else ``kwargs.stems``."""
    if not settings.instruments:
        return list(cfg.stems)
    if len(settings.instruments) != len(cfg.stems):
        raise ConfigError(f"'training.instruments' lists {len(settings.instruments)} stems but 'kwargs.stems' "
                          f"{len(cfg.stems)}; they must name the same outputs")
    return list(settings.instruments)


def build(config: Mapping[str, Any]) -> tuple[Bandit, InferenceSettings, list[str]]:
    """The network (random weights), inference settings and output names of a BandIt v2 yaml."""
    cfg = network_config(config)
    settings = inference_settings(config)
    stems = stem_names(settings, cfg)
    return build_network(cfg), settings, stems


def load_model(ctx: LoadContext) -> BanditModel:
    """Build, load and wrap a BandIt v2 checkpoint (see the module docstring)."""
    # the STFT windows that torchaudio-based code saves are not weights
    return msst.load_checkpoint(ctx, MODEL_TYPE, "vsep-bandit", build, drop_prefixes=_TRAINING_ONLY,
                                ignore=_STFT_WINDOWS, model_class=BanditModel)
