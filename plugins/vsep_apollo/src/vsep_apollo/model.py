"""Loading an MSST ``apollo`` checkpoint and running it as MSST's inference.py does.

- the yaml beside the checkpoint (or the catalogue's) builds the network from ``model``;
- the checkpoint is read with ``torch.load(weights_only=True)``: a state dict, or one under
  ``state_dict`` as the published LQ-MP3 weights have it (MSST's loader unwraps it the same way);
- the mix (at ``audio.sample_rate``) is standardised when ``inference.normalize`` is true, cut by core's
  ``demix`` (MSST's generic mode: ``chunk_size``, ``num_overlap``, fades and reflect border) in batches
  of ``inference.batch_size``, and the one output (the restored signal) is de-standardised.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsep_apollo.config import (
    MODEL_TYPE,
    ConfigError,
    InferenceSettings,
    inference_settings,
    load_yaml,
    network_config,
    output_name,
    stated_model_type,
)
from vsep_apollo.network import Apollo
from vsep_core.api import LoadContext, Progress
from vsep_core.chunking import DemixPlan, demix, standardize
from vsep_core.errors import ModelDataError, ModelLoadError

_WRAPPERS = ("state_dict", "model_state_dict", "state")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, loaded without running code from it.

    A plain state dict, or one under ``state_dict`` / ``model_state_dict`` / ``state`` (as MSST's loader
    unwraps). A ``model.`` (Lightning), ``module.`` (DataParallel) or ``_orig_mod.`` (torch.compile) prefix
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
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in ("model.", "module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_strict(net: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy `state` into `net`: every tensor must be there with the network's shape, and nothing else.

    Raises ModelLoadError naming the first tensor that is missing, extra or of another shape.
    """
    expected = net.state_dict()
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


class ApolloModel:
    """A loaded Apollo model: float32 [channels, samples] at ``sample_rate`` -> {"Restored": same shape}."""

    def __init__(self, net: Apollo, settings: InferenceSettings, stem: str, device: str = "cpu",
                 overlap: int | None = None, batch_size: int | None = None) -> None:
        self.net = net.to(device).eval()
        self.settings = settings
        self.device = device
        self.sample_rate = settings.sample_rate
        self.channels = settings.channels  # audio.num_channels: 1 for a mono model (MSST keeps a mono file mono)
        self.stems = [stem]
        self.plan = DemixPlan.generic(settings.chunk_size, overlap or settings.num_overlap)
        self.batch_size = batch_size or settings.batch_size

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.net(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        return out.float().cpu().numpy()

    def separate(self, audio: np.ndarray, progress: Progress | None = None) -> dict[str, np.ndarray]:
        """Restore as MSST's demix (generic mode); the output exactly as long as `audio`."""
        mix = np.asarray(audio, dtype=np.float32)
        if self.settings.normalize:
            mix, mean, std = standardize(mix)
        out = demix(mix, self._run, self.plan, self.batch_size, progress)
        if self.settings.normalize:
            out = out * np.float32(std) + np.float32(mean)
        return {self.stems[0]: np.ascontiguousarray(out)}


def check_model_type(config: Mapping[str, Any], explicit: str | None) -> None:
    """ConfigError when an explicit type, or the type the yaml states, is not Apollo's (the network
    settings themselves are checked key by key when the network is built)."""
    if explicit is not None and explicit.strip().lower() != MODEL_TYPE:
        raise ConfigError(f"model type {explicit!r} was given, but vsep-apollo runs only '{MODEL_TYPE}'")
    stated = stated_model_type(config)
    if stated is not None and stated != MODEL_TYPE:
        raise ConfigError(f"the yaml says model_type {stated!r}; vsep-apollo runs only '{MODEL_TYPE}'")


def load_model(ctx: LoadContext) -> ApolloModel:
    """Build, load and wrap an Apollo checkpoint (see the module docstring)."""
    if ctx.config_path is None:
        raise ModelDataError(f"{ctx.model_path.name} needs its MSST yaml beside it as {ctx.model_path.stem}.yaml")
    name = ctx.config_path.name
    try:
        config = load_yaml(ctx.config_path)
        check_model_type(config, getattr(ctx.params, "model_type", None))
        cfg = network_config(config)
        settings = inference_settings(config)
        stem = output_name(config)
    except ConfigError as exc:
        raise ModelDataError(f"{name}: {exc}") from exc
    net = Apollo(cfg)
    load_strict(net, read_state_dict(ctx.model_path), ctx.model_path.name)
    return ApolloModel(net, settings, stem, ctx.device.torch_device, getattr(ctx.params, "overlap", None),
                       getattr(ctx.params, "batch_size", None))
