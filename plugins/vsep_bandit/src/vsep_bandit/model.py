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

import numpy as np
import torch

from vsep_bandit.bands import check_layout, musical_layout
from vsep_bandit.config import (
    MODEL_TYPE,
    ConfigError,
    InferenceSettings,
    inference_settings,
    load_yaml,
    network_config,
    stated_model_type,
)
from vsep_bandit.network import Bandit, BanditConfig
from vsep_core.api import LoadContext, Progress
from vsep_core.chunking import DemixPlan, demix, standardize
from vsep_core.errors import ModelDataError, ModelLoadError

_WRAPPERS = ("state_dict", "model_state_dict", "state")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, loaded without running code from it.

    A plain state dict, or one under ``state_dict`` / ``model_state_dict`` / ``state`` (as MSST's loader
    unwraps). The authors' Lightning checkpoints keep training-only ``loss_handler.*`` tensors (dropped)
    beside ``model.*``; a ``model.``, ``module.`` (DataParallel) or ``_orig_mod.`` (torch.compile) prefix
    shared by every key is removed.
    """
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"refusing {path.name}: it is not a plain tensor checkpoint that loads with "
                             f"weights_only=True ({first[:160]}); use a state-dict checkpoint") from exc
    for key in _WRAPPERS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{path.name} holds no state dict (found {type(obj).__name__})")
    state = {str(k): v for k, v in obj.items()
             if isinstance(v, torch.Tensor) and not str(k).startswith("loss_handler.")}
    for prefix in ("model.", "module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_strict(net: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy `state` into `net`: every tensor must be there with the network's shape, and nothing else.

    Raises ModelLoadError naming the first tensor that is missing, extra or of another shape. The STFT
    windows that torchaudio-based code saves (``stft.window``, ``istft.window``) are not weights and are
    ignored.
    """
    expected = net.state_dict()
    state = {k: v for k, v in state.items() if k not in ("stft.window", "istft.window")}
    for name, tensor in expected.items():
        if name not in state:
            raise ModelLoadError(f"{source}: tensor {name!r} {tuple(tensor.shape)} of the network built from the "
                                 "yaml is missing from the checkpoint; the yaml does not match the checkpoint")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ModelLoadError(f"{source}: tensor {name!r} is {tuple(state[name].shape)} in the checkpoint but "
                                 f"{tuple(tensor.shape)} in the network built from the yaml; the yaml does not "
                                 "match the checkpoint")
    extra = next((n for n in state if n not in expected), None)
    if extra is not None:
        raise ModelLoadError(f"{source}: the checkpoint has tensor {extra!r} {tuple(state[extra].shape)} that the "
                             "network built from the yaml lacks; the yaml does not match the checkpoint")
    net.load_state_dict(dict(state), strict=True)


def build_network(cfg: BanditConfig) -> Bandit:
    """A BandIt v2 network (random weights) for `cfg`."""
    layout = musical_layout(cfg.n_fft, cfg.n_bands, cfg.fs)
    try:
        check_layout(layout, cfg.n_freqs)
    except ValueError as exc:
        raise ConfigError(f"'kwargs.n_bands' {cfg.n_bands} with n_fft {cfg.n_fft} gives unusable bands: {exc}") \
            from exc
    return Bandit(cfg, layout)


class BanditModel:
    """A loaded BandIt v2 model: float32 [channels, samples] at ``sample_rate`` -> {stem: same shape}."""

    def __init__(self, net: Bandit, settings: InferenceSettings, stems: list[str], device: str = "cpu",
                 overlap: int | None = None, batch_size: int | None = None) -> None:
        self.net = net.to(device).eval()
        self.settings = settings
        self.device = device
        self.sample_rate = settings.sample_rate
        self.channels = settings.channels  # audio.num_channels: 1 for a mono model (MSST keeps a mono file mono)
        self.stems = stems
        self.plan = DemixPlan.generic(settings.chunk_size, overlap or settings.num_overlap)
        self.batch_size = batch_size or settings.batch_size

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.net(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        return out.float().cpu().numpy()

    def separate(self, audio: np.ndarray, progress: Progress | None = None) -> dict[str, np.ndarray]:
        """Separate as MSST's demix (generic mode); every stem exactly as long as `audio`."""
        mix = np.asarray(audio, dtype=np.float32)
        if self.settings.normalize:
            mix, mean, std = standardize(mix)
        out = demix(mix, self._run, self.plan, self.batch_size, progress)
        if self.settings.normalize:
            out = out * np.float32(std) + np.float32(mean)
        return {stem: np.ascontiguousarray(out[i]) for i, stem in enumerate(self.stems)}


def check_model_type(config: Mapping[str, Any], explicit: str | None) -> None:
    """ConfigError when an explicit type, or the type the yaml states, is not BandIt v2's (the network
    settings themselves are checked key by key when the network is built)."""
    if explicit is not None and explicit.strip().lower() != MODEL_TYPE:
        raise ConfigError(f"model type {explicit!r} was given, but vsep-bandit runs only '{MODEL_TYPE}'")
    stated = stated_model_type(config)
    if stated is not None and stated != MODEL_TYPE:
        raise ConfigError(f"the yaml says model_type {stated!r}; vsep-bandit runs only '{MODEL_TYPE}'")


def stem_names(settings: InferenceSettings, cfg: BanditConfig) -> list[str]:
    """Output names: ``training.instruments`` as MSST labels the outputs, else ``kwargs.stems``."""
    if not settings.instruments:
        return list(cfg.stems)
    if len(settings.instruments) != len(cfg.stems):
        raise ConfigError(f"'training.instruments' lists {len(settings.instruments)} stems but 'kwargs.stems' "
                          f"{len(cfg.stems)}; they must name the same outputs")
    return list(settings.instruments)


def load_model(ctx: LoadContext) -> BanditModel:
    """Build, load and wrap a BandIt v2 checkpoint (see the module docstring)."""
    if ctx.config_path is None:
        raise ModelDataError(f"{ctx.model_path.name} needs its MSST yaml beside it as {ctx.model_path.stem}.yaml")
    name = ctx.config_path.name
    try:
        config = load_yaml(ctx.config_path)
        check_model_type(config, getattr(ctx.params, "model_type", None))
        cfg = network_config(config)
        settings = inference_settings(config)
        stems = stem_names(settings, cfg)
        net = build_network(cfg)
    except ConfigError as exc:
        raise ModelDataError(f"{name}: {exc}") from exc
    load_strict(net, read_state_dict(ctx.model_path), ctx.model_path.name)
    return BanditModel(net, settings, stems, ctx.device.torch_device, getattr(ctx.params, "overlap", None),
                       getattr(ctx.params, "batch_size", None))
