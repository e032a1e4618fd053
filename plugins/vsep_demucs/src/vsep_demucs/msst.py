"""HTDemucs as trained in Music-Source-Separation-Training (MSST type ``htdemucs``).

MSST saves a plain state_dict ``.ckpt`` and describes the network in an OmegaConf yaml: the
``htdemucs:`` section holds HTDemucs's constructor arguments, ``training:`` its sources
(``instruments``), ``channels``, ``samplerate`` and ``segment``. MSST runs it with its demix
"demucs mode": windows of ``samplerate * segment`` samples every ``chunk // inference.num_overlap``,
each zero-padded to the full window, outputs plainly averaged (core's ``DemixPlan.plain``),
``inference.batch_size`` windows per forward pass, and the network standardising each window itself
(``use_train_segment`` off). No shifts, no whole-mix standardisation (unless ``inference.normalize``).
``--precision`` bf16/fp16 (``LoadContext.precision``) runs the network under torch autocast in that dtype,
as the bag-of-models path does; fp32 runs it plainly.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from vsep_core import checkpoints
from vsep_core.api import LoadContext, Progress
from vsep_core.checkpoints import check_tensors
from vsep_core.chunking import DemixPlan, demix, standardize
from vsep_core.errors import ModelDataError, ModelLoadError, UsageError
from vsep_core.helpers import channels_first, precision_autocast
from vsep_core.msst import config_beside, read_msst_yaml
from vsep_demucs.htdemucs import HTDemucs
from vsep_demucs.model import STEM_NAMES


def is_msst_htdemucs_yaml(config: Mapping[str, Any]) -> bool:
    """An MSST HTDemucs yaml: an ``htdemucs:`` mapping, and ``model:`` absent or ``htdemucs``."""
    return isinstance(config.get("htdemucs"), Mapping) and config.get("model", "htdemucs") == "htdemucs"


def claims_checkpoint(path: Path) -> bool:
    """The claim rule for a ``.ckpt``: the yaml beside it is an MSST HTDemucs yaml (no checkpoint is opened)."""
    found = config_beside(path)
    if found is None:
        return False
    try:
        return is_msst_htdemucs_yaml(read_msst_yaml(found))
    except (OSError, ValueError, yaml.YAMLError):
        return False


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A plain state_dict (or one under 'state_dict'), read with ``weights_only=True``: code is refused."""
    return checkpoints.read_state_dict(path, wrappers=("state_dict",), strip_prefixes=())


def _stem_label(name: str) -> str:
    return STEM_NAMES.get(name.lower(), name[:1].upper() + name[1:] if name.islower() else name)


class MSSTHTDemucsModel:
    """An MSST-trained HTDemucs run with MSST's demucs-mode demix."""

    def __init__(self, net: HTDemucs, chunk: int, overlap: int, batch_size: int, normalize: bool,
                 device: torch.device, logger: logging.Logger | None = None, precision: str = "fp32"):
        self.net = net
        self.precision = precision
        self.plan = DemixPlan.plain(chunk, overlap)
        self.batch_size = batch_size
        self.normalize = normalize
        self.device = device
        self.sample_rate = int(net.samplerate)
        self.audio_channels = int(net.audio_channels)
        self.channels = self.audio_channels  # core's channel policy
        self.instruments = list(net.sources)
        self.stems = [_stem_label(s) for s in self.instruments]
        self.logger = logger or logging.getLogger("vsep.demucs")

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), precision_autocast(self.device.type, self.precision):
            out = self.net(torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()

    def separate(self, audio: np.ndarray, progress: Progress | None = None) -> dict[str, np.ndarray]:
        """audio float32 [channels, samples] -> {stem: float32 [channels, samples]} in the yaml's instrument order."""
        audio = channels_first(audio)
        in_channels = audio.shape[0]
        if in_channels == self.audio_channels:
            mix = audio
        elif in_channels == 1:
            mix = np.repeat(audio, self.audio_channels, axis=0)
        else:
            raise UsageError(f"this model separates {self.audio_channels}-channel audio; got {in_channels}")
        mean, std = 0.0, 1.0
        if self.normalize:
            mix, mean, std = standardize(mix)
        out = demix(mix, self._forward, self.plan, self.batch_size, progress)
        if out.ndim == 2:
            out = out[None]
        result: dict[str, np.ndarray] = {}
        for name, wave in zip(self.stems, out, strict=True):
            if self.normalize:
                wave = wave * np.float32(std) + np.float32(mean)
            if in_channels == 1 and self.audio_channels != 1:
                wave = wave.mean(axis=0, keepdims=True)
            result[name] = np.ascontiguousarray(wave, dtype=np.float32)
        return result


def _read_config(ctx: LoadContext) -> tuple[dict[str, Any], str]:
    # the yaml beside the checkpoint wins over a catalogue record's config
    candidates = [config_beside(ctx.model_path)] + ([Path(ctx.config_path)] if ctx.config_path else [])
    for path in candidates:
        if path is not None and path.is_file() and path != ctx.model_path:
            try:
                return read_msst_yaml(path), path.name
            except (OSError, ValueError, yaml.YAMLError) as exc:
                raise ModelDataError(f"cannot read the model yaml {path.name}: {str(exc).splitlines()[0]}") from exc
    raise ModelDataError(f"{ctx.model_path.name} needs its MSST yaml config: put it beside the checkpoint as "
                         f"{ctx.model_path.stem}.yaml")


def _require(section: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in section or section[key] is None:
        raise ValueError(f"missing key '{where}.{key}'")
    return section[key]


def load_msst_htdemucs(ctx: LoadContext) -> MSSTHTDemucsModel:
    """Build HTDemucs from an MSST yaml, load its state_dict ``.ckpt`` strictly, run as MSST's demucs mode."""
    config, yaml_name = _read_config(ctx)
    source = ctx.model_path.name
    try:
        if not is_msst_htdemucs_yaml(config):
            raise ValueError("missing key 'htdemucs' (an MSST HTDemucs yaml has an 'htdemucs:' section"
                             + (f"; model is {config.get('model')!r}, not 'htdemucs')" if "model" in config else ")"))
        training = config.get("training")
        if not isinstance(training, Mapping):
            raise ValueError("missing key 'training'")
        instruments = [str(i) for i in _require(training, "instruments", "training")]
        channels = int(_require(training, "channels", "training"))
        samplerate = int(_require(training, "samplerate", "training"))
        segment = _require(training, "segment", "training")
        inference = config.get("inference") or {}
        overlap = int(getattr(ctx.params, "overlap", None) or _require(inference, "num_overlap", "inference"))
        batch = int(getattr(ctx.params, "batch_size", None) or inference.get("batch_size") or 1)
        chunk = int(samplerate * segment)
        DemixPlan.plain(chunk, overlap)
        kwargs = dict(config["htdemucs"])
        subbands = kwargs.pop("num_subbands", 1)
        if subbands not in (1, None):
            raise ValueError(f"htdemucs.num_subbands {subbands} (sub-band splitting) is not supported by vsep-demucs")
        known = inspect.signature(HTDemucs).parameters
        unknown = [k for k in kwargs if k not in known]
        if unknown:
            raise ValueError(f"unknown key 'htdemucs.{unknown[0]}' for HTDemucs")
        if kwargs.get("t_cape_glob_loc_scale") is None:
            kwargs.pop("t_cape_glob_loc_scale", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = HTDemucs(sources=instruments, audio_channels=channels, samplerate=samplerate, segment=segment,
                           use_train_segment=False, **kwargs)
    except NotImplementedError as exc:
        raise ModelLoadError(f"{source} ({yaml_name}): {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{source} ({yaml_name}): {exc}") from exc
    state = read_state_dict(ctx.model_path)
    check_tensors(net.state_dict(), state, f"{source} (as MSST htdemucs from {yaml_name})")
    net.load_state_dict(state, strict=True)
    device = torch.device(ctx.device.torch_device if ctx.device else "cpu")
    net.to(device).eval()
    return MSSTHTDemucsModel(net, chunk, overlap, batch, inference.get("normalize") is True, device, ctx.logger,
                             precision=ctx.precision)
