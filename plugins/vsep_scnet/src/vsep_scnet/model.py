"""Loading an MSST SCNet checkpoint and running it as MSST's ``inference.py`` does.

- the yaml (``<checkpoint stem>.yaml`` beside the checkpoint, or the record's config) builds the
  network: ``model:`` holds SCNet's constructor arguments (MSST's defaults where absent);
- the model type is ``scnet_tran`` when ``model:`` has ``tran_*`` keys, else ``scnet_masked`` when
  the checkpoint has ``pos_embed_f``/``mask_layer.*`` tensors, else ``scnet``; ``--scnet_model_type``
  overrides (see docs/scnet.md, "Which files this plugin claims");
- the checkpoint is read with ``torch.load(weights_only=True)`` and must match the network tensor
  for tensor;
- separation: ``audio.num_channels`` (a mono file into a 2-channel model is duplicated),
  ``inference.normalize`` (core's ``standardize``; every stem de-standardised), then core's
  ``demix`` in MSST's generic mode with ``inference.chunk_size`` (else ``audio.chunk_size``),
  ``inference.num_overlap`` and ``inference.batch_size``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from vsep_core import checkpoints
from vsep_core.api import LoadContext, Progress
from vsep_core.checkpoints import load_strict
from vsep_core.chunking import DemixPlan, demix, standardize
from vsep_core.errors import ModelDataError, ModelLoadError, UsageError
from vsep_core.helpers import channels_first, precision_autocast
from vsep_core.msst import read_msst_yaml
from vsep_scnet.claim import SCNET_KEYS
from vsep_scnet.network import MODEL_TYPES, SCNET, SCNET_MASKED, SCNET_TRAN, SCNet, SCNetConfig

#: checkpoint tensors only scnet_masked has
MASKED_TENSORS = ("pos_embed_f", "mask_layer.0.weight")
#: yaml ``model:`` keys only scnet_tran has
TRAN_PREFIX = "tran_"

_TUPLE_FIELDS = {"sources", "dims", "band_SR", "band_stride", "band_kernel", "conv_depths"}


# ----------------------------------------------------------------------------------------------
# yaml and checkpoint


def is_scnet_yaml(config: Mapping[str, Any]) -> bool:
    """True when the yaml's ``model:`` section has the keys of an SCNet network (SCNET_KEYS)."""
    model = config.get("model")
    return isinstance(model, Mapping) and all(k in model for k in SCNET_KEYS)


def model_type_of(config: Mapping[str, Any], tensor_names: Any) -> str:
    """MSST's model type of an SCNet yaml + checkpoint: the claim rule of docs/scnet.md."""
    model = config.get("model") or {}
    if any(str(k).startswith(TRAN_PREFIX) for k in model) or "first_conv.weight" in tensor_names:
        return SCNET_TRAN
    if any(name in tensor_names for name in MASKED_TENSORS):
        return SCNET_MASKED
    return SCNET


def scnet_config(config: Mapping[str, Any]) -> SCNetConfig:
    """SCNetConfig from the yaml's ``model:`` section; ValueError naming a key of the wrong type."""
    model = config.get("model")
    if not isinstance(model, Mapping):
        raise ValueError("the yaml has no 'model:' section")
    known = {f.name: f for f in dataclasses.fields(SCNetConfig) if f.name != "extra"}
    values: dict[str, Any] = {}
    for key, value in model.items():
        if key not in known:
            continue
        default = known[key].default
        try:
            if key in _TUPLE_FIELDS:
                if not isinstance(value, (list, tuple)):
                    raise TypeError
                item = str if key == "sources" else (float if key == "band_SR" else int)
                values[key] = tuple(item(v) for v in value)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise TypeError
                values[key] = value
            else:
                values[key] = type(default)(value)
        except (TypeError, ValueError):
            raise ValueError(f"model.{key} must be {'a list' if key in _TUPLE_FIELDS else type(default).__name__}"
                             f", not {value!r}") from None
    cfg = SCNetConfig(**values, extra={k: v for k, v in model.items() if k not in known})
    for key in ("band_SR", "band_stride", "band_kernel", "conv_depths"):
        if len(getattr(cfg, key)) != 3:
            raise ValueError(f"model.{key} must list 3 values (low, mid, high band), not {list(getattr(cfg, key))}")
    if len(cfg.dims) < 2 or cfg.dims[0] != 2 * cfg.audio_channels:
        raise ValueError(f"model.dims must start with 2 * audio_channels = {2 * cfg.audio_channels} "
                         f"(real and imaginary part per channel), not {list(cfg.dims)}")
    if not cfg.sources:
        raise ValueError("model.sources is empty")
    return cfg


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of an MSST checkpoint (a plain state_dict, or one under 'state_dict'), safely.

    ``torch.load(weights_only=True)``: a file that holds code (any pickled object other than
    tensors and containers) is refused with ModelLoadError. A ``module.`` (DataParallel) or ``_orig_mod.``
    (torch.compile) prefix on every key is removed.
    """
    return checkpoints.read_state_dict(path, wrappers=("state_dict",), strip_prefixes=("module.", "_orig_mod."))




def _positive_int(section: Mapping[str, Any], key: str, where: str) -> int:
    value = section.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}.{key} must be a positive whole number, not {value!r}")
    return value


# ----------------------------------------------------------------------------------------------
# the loaded model


def stem_label(name: str) -> str:
    """MSST instrument name -> vsep stem name: 'vocals' -> 'Vocals' (names with capitals kept)."""
    return name[:1].upper() + name[1:] if name.islower() else name


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """How a model is run (MSST's inference settings, after params)."""

    chunk_size: int
    num_overlap: int
    batch_size: int
    normalize: bool
    channels: int


class SCNetModel:
    """A loaded SCNet (any of the three MSST types): the SeparationModel of vsep-scnet."""

    def __init__(self, net: SCNet, instruments: list[str], outputs: list[int], settings: RunSettings,
                 sample_rate: int, device: torch.device, logger: logging.Logger | None = None):
        self.net = net
        self.model_type = net.model_type
        self.instruments = instruments
        self.outputs = outputs
        self.settings = settings
        self.sample_rate = sample_rate
        self.device = device
        self.stems = [stem_label(i) for i in instruments]
        self.channels = settings.channels  # core's channel policy: 1 = each channel separated on its own
        self.logger = logger or logging.getLogger("vsep.scnet")
        self.precision = "fp32"  # LoadContext.precision: bf16/fp16 run the network under autocast

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), precision_autocast(self.device.type, self.precision):
            y = self.net(torch.from_numpy(batch).to(self.device)).float().cpu().numpy()
        return y[:, self.outputs]

    def separate(self, audio: np.ndarray, progress: Progress | None = None) -> dict[str, np.ndarray]:
        """audio float32 [channels, samples] -> {stem: float32 [channels, samples]}, MSST's demix."""
        audio = channels_first(audio)
        in_channels = audio.shape[0]
        want = self.settings.channels
        if in_channels == want:
            mix = audio
        elif in_channels == 1:
            mix = np.repeat(audio, want, axis=0)
        else:
            raise UsageError(f"this model separates {want}-channel audio (audio.num_channels); got {in_channels}")
        mean, std = 0.0, 1.0
        if self.settings.normalize:
            mix, mean, std = standardize(mix)
        s = self.settings
        out = demix(mix, self._forward, DemixPlan.generic(s.chunk_size, s.num_overlap), s.batch_size, progress)
        result: dict[str, np.ndarray] = {}
        for name, wave in zip(self.stems, out, strict=True):
            if self.settings.normalize:
                wave = wave * np.float32(std) + np.float32(mean)
            if in_channels == 1 and want != 1:
                wave = wave.mean(axis=0, keepdims=True)
            result[name] = np.ascontiguousarray(wave, dtype=np.float32)
        return result


# ----------------------------------------------------------------------------------------------
# load_model


def read_config(ctx: LoadContext) -> tuple[dict[str, Any], str]:
    """The MSST yaml of a model: ``<stem>.yaml`` beside the checkpoint, else ``ctx.config_path`` (the
    record's config), else the parsed ``ctx.model_data``. Returns (config, its name for messages)."""
    # the yaml beside the checkpoint wins over a catalogue record's config (a local file keeps its own yaml)
    candidates = [ctx.model_path.with_suffix(".yaml"), ctx.model_path.with_suffix(".yml")]
    candidates += [Path(ctx.config_path)] if ctx.config_path else []
    for path in candidates:
        if path.is_file() and path != ctx.model_path:
            try:
                return read_msst_yaml(path), path.name
            except (OSError, ValueError, yaml.YAMLError) as exc:
                raise ModelDataError(f"cannot read the model yaml {path.name}: {str(exc).splitlines()[0]}") from exc
    if isinstance(ctx.model_data, Mapping) and "model" in ctx.model_data:
        return dict(ctx.model_data), "the model's yaml"
    raise ModelDataError(f"{ctx.model_path.name} needs its MSST yaml config: put it beside the checkpoint as "
                         f"{ctx.model_path.stem}.yaml")


def load_model(ctx: LoadContext) -> SCNetModel:
    """Build the SCNet the yaml describes, load the checkpoint strictly, and wrap it for separation."""
    config, yaml_name = read_config(ctx)
    source = ctx.model_path.name
    state = read_checkpoint(ctx.model_path)
    override = getattr(ctx.params, "model_type", None) or None
    if override is not None and override not in MODEL_TYPES:
        raise UsageError(f"--scnet_model_type must be one of {', '.join(MODEL_TYPES)}, not {override!r}")
    try:
        if not isinstance(config.get("model"), Mapping):
            raise ValueError("missing key 'model' (the network's settings)")
        missing = [k for k in SCNET_KEYS if k not in config["model"]]
        if missing:
            raise ValueError(f"missing key 'model.{missing[0]}' (an SCNet yaml has {', '.join(SCNET_KEYS)})")
        model_type = override or model_type_of(config, state.keys())
        cfg = scnet_config(config)
        audio = config.get("audio") or {}
        inference = config.get("inference") or {}
        training = config.get("training") or {}
        if "chunk_size" in inference:
            chunk = _positive_int(inference, "chunk_size", "inference")
        elif "chunk_size" in audio:
            chunk = _positive_int(audio, "chunk_size", "audio")
        else:
            raise ValueError("missing key 'audio.chunk_size' (or 'inference.chunk_size')")
        overlap = _positive_int(inference, "num_overlap", "inference") if "num_overlap" in inference else 1
        batch = _positive_int(inference, "batch_size", "inference") if "batch_size" in inference else 1
        params = ctx.params
        overlap = int(getattr(params, "overlap", None) or overlap)
        batch = int(getattr(params, "batch_size", None) or batch)
        channels = int(audio.get("num_channels") or cfg.audio_channels)
        if channels != cfg.audio_channels:
            raise ValueError(f"audio.num_channels is {channels} but model.audio_channels is {cfg.audio_channels}")
        sample_rate = int(audio.get("sample_rate") or 44100)
        instruments = [str(i) for i in (training.get("instruments") or cfg.sources)]
        target = training.get("target_instrument")
        sources = list(cfg.sources)
        if target:
            if str(target) not in sources:
                raise ValueError(f"training.target_instrument {target!r} is not in model.sources {sources}")
            instruments, outputs = [str(target)], [sources.index(str(target))]
        else:
            if len(instruments) != len(sources):
                raise ValueError(f"training.instruments {instruments} must name the {len(sources)} model.sources "
                                 f"{sources} in order")
            outputs = list(range(len(sources)))
        plan_ok = DemixPlan.generic(chunk, overlap)  # validates chunk/overlap together
        del plan_ok
    except ValueError as exc:
        raise ModelLoadError(f"{source} ({yaml_name}): {exc}") from exc
    if cfg.extra:
        ctx.logger.debug("SCNet yaml keys without effect: %s", ", ".join(map(str, cfg.extra)))
    net = SCNet(cfg, model_type)
    load_strict(net, state, f"{source} (as {model_type} from {yaml_name})")
    del state
    device = torch.device(ctx.device.torch_device if ctx.device else "cpu")
    net.to(device).eval()
    settings = RunSettings(chunk, overlap, batch, inference.get("normalize") is True, channels)
    ctx.logger.debug("loaded %s as %s: stems %s, chunk %d, overlap %d, batch %d, normalize %s", source, model_type,
                     instruments, chunk, overlap, batch, settings.normalize)
    model = SCNetModel(net, instruments, outputs, settings, sample_rate, device, ctx.logger)
    model.precision = ctx.precision
    return model
