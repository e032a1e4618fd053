"""Reading an MSST ``bandit_v2`` yaml: safe loading, the claim rule, and the settings inference uses.

MSST's yamls name no model type (MSST takes ``--model_type bandit_v2`` on its command line). A yaml is a
BandIt v2 yaml when it says so (``model_type: bandit_v2`` at the top or under ``training``), or, naming no
type, when it has MSST's ``cls: Bandit`` or a ``kwargs`` section with BandIt v2's own keys (``stems`` and
``n_sqm_modules`` or ``band_type``): no other MSST family keeps its network settings under ``kwargs``.

No torch here: this module is cheap to import (the claim runs for every ``vsep separate``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vsep_core import helpers

MODEL_TYPE = "bandit_v2"
YAML_SUFFIXES = (".yaml", ".yml")
_NETWORK_KEYS = {"n_sqm_modules", "band_type"}


class ConfigError(ValueError):
    """The yaml is not a usable BandIt v2 config; the message names the key."""


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a yaml with core's safe config loader (``!!python/tuple`` allowed, no other Python tags); a
    mapping or ConfigError."""
    try:
        data = helpers.load_yaml(path)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{Path(path).name} is not valid yaml: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{Path(path).name} does not hold a mapping")
    return data


def stated_model_type(config: Mapping[str, Any]) -> str | None:
    """The model type a yaml states (``model_type`` at the top or under ``training``), or None."""
    for section in (config, config.get("training")):
        if isinstance(section, Mapping) and isinstance(section.get("model_type"), str):
            return section["model_type"].strip().lower()
    return None


def describes_bandit_v2(config: Mapping[str, Any]) -> bool:
    """Whether a parsed yaml is a BandIt v2 config (the claim rule in the module docstring)."""
    stated = stated_model_type(config)
    if stated is not None:
        return stated == MODEL_TYPE
    if config.get("cls") == "Bandit":
        return True
    kwargs = config.get("kwargs")
    return isinstance(kwargs, Mapping) and "stems" in kwargs and bool(_NETWORK_KEYS & set(kwargs))


def config_beside(path: Path) -> Path | None:
    """The yaml beside a checkpoint (same stem), if there is one."""
    return next((path.with_suffix(s) for s in YAML_SUFFIXES if path.with_suffix(s).is_file()), None)


@functools.lru_cache(maxsize=64)
def _claims_cached(yaml_path: str, mtime: float) -> bool:
    try:
        return describes_bandit_v2(load_yaml(yaml_path))
    except (OSError, ConfigError):
        return False


def claims_file(path: Path) -> bool:
    """True for a checkpoint whose yaml beside it is a BandIt v2 yaml."""
    yaml_path = config_beside(Path(path))
    return yaml_path is not None and _claims_cached(str(yaml_path), yaml_path.stat().st_mtime)


@dataclass(frozen=True)
class InferenceSettings:
    """How MSST's inference.py runs the model: chunking, normalisation, sample rate, channels."""

    sample_rate: int
    channels: int
    chunk_size: int
    num_overlap: int
    batch_size: int
    normalize: bool
    instruments: tuple[str, ...]


def _section(config: Mapping[str, Any], name: str, required: bool = True) -> Mapping[str, Any]:
    value = config.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"the yaml has no '{name}' section")
    return value


def _int(section: Mapping[str, Any], where: str, key: str, default: int | None = None) -> int:
    value = section.get(key, default)
    if value is None:
        raise ConfigError(f"the yaml has no '{where}.{key}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value <= 0:
        raise ConfigError(f"'{where}.{key}' must be a positive whole number, not {value!r}")
    return int(value)


def inference_settings(config: Mapping[str, Any], default_chunk: int | None = None) -> InferenceSettings:
    """MSST's settings: ``inference.chunk_size`` else ``audio.chunk_size``, ``inference.num_overlap``,
    ``inference.batch_size``, ``inference.normalize``, ``audio.sample_rate`` (44100 when absent) and
    ``audio.num_channels`` (2 when absent); instruments from ``training.instruments`` (or
    ``training.target_instrument`` alone when it is set, as MSST's prefer_target_instrument)."""
    audio = _section(config, "audio")
    inference = _section(config, "inference")
    training = _section(config, "training", required=False)
    if inference.get("chunk_size") is not None:
        chunk = _int(inference, "inference", "chunk_size")
    else:
        chunk = _int(audio, "audio", "chunk_size", default_chunk)
    channels = _int(audio, "audio", "num_channels", 2)
    if channels not in (1, 2):
        raise ConfigError(f"'audio.num_channels' must be 1 or 2, not {channels}")
    target = training.get("target_instrument")
    instruments = [str(target)] if target else [str(i) for i in (training.get("instruments") or [])]
    return InferenceSettings(
        sample_rate=_int(audio, "audio", "sample_rate", 44100), channels=channels, chunk_size=chunk,
        num_overlap=_int(inference, "inference", "num_overlap"),
        batch_size=_int(inference, "inference", "batch_size", 1),
        normalize=inference.get("normalize") is True, instruments=tuple(instruments))


_IGNORED_KWARGS = {"band_type", "normalize_channel_independently", "treat_channel_as_feature", "power",
                   "require_no_overlap", "require_no_gap", "stft_precisions", "bandsplit_precisions",
                   "tf_model_precisions", "mask_estim_precisions"}
_ACTIVATIONS = {"Tanh", "ReLU", "GELU", "SiLU", "ELU", "LeakyReLU", "PReLU", "Sigmoid", "Softplus", "Mish"}
_WINDOWS = {"hann_window", "hamming_window", "blackman_window", "bartlett_window", "kaiser_window"}


def network_config(config: Mapping[str, Any]):  # -> network.BanditConfig (imported lazily: torch)
    """The network settings from the yaml's ``kwargs``; ConfigError naming the key for anything unusable."""
    from vsep_bandit.network import BanditConfig

    kwargs = config.get("kwargs")
    if not isinstance(kwargs, Mapping):
        raise ConfigError("the yaml has no 'kwargs' section (MSST's bandit_v2 network settings)")
    if "stems" not in kwargs or not kwargs["stems"]:
        raise ConfigError("the yaml has no 'kwargs.stems'")
    if kwargs.get("band_type", "musical") != "musical":
        raise ConfigError(f"'kwargs.band_type' {kwargs['band_type']!r} is not supported (MSST's bandit_v2 has "
                          "only 'musical')")
    if kwargs.get("treat_channel_as_feature", True) is not True:
        raise ConfigError("'kwargs.treat_channel_as_feature' must be true (the only mode of MSST's bandit_v2)")
    if kwargs.get("normalize_channel_independently", False) is not False:
        raise ConfigError("'kwargs.normalize_channel_independently' must be false (the only mode of MSST's "
                          "bandit_v2)")
    if kwargs.get("power") is not None:
        raise ConfigError("'kwargs.power' must be null (the network masks a complex spectrogram)")
    fields = {f.name for f in dataclasses.fields(BanditConfig)}
    unknown = sorted(set(kwargs) - fields - _IGNORED_KWARGS)
    if unknown:
        raise ConfigError(f"the yaml has 'kwargs.{unknown[0]}', which MSST's bandit_v2 does not take")
    values = {k: v for k, v in kwargs.items() if k in fields}
    values["stems"] = tuple(str(s) for s in kwargs["stems"])
    values["hidden_activation_kwargs"] = dict(kwargs.get("hidden_activation_kwargs") or {})
    values["wkwargs"] = dict(kwargs.get("wkwargs") or {})
    cfg = BanditConfig(**values)
    for key in ("in_channels", "n_bands", "n_sqm_modules", "emb_dim", "rnn_dim", "mlp_dim", "n_fft", "hop_length",
                "fs"):
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"'kwargs.{key}' must be a positive whole number, not {value!r}")
    if cfg.in_channels != 1:
        raise ConfigError(f"'kwargs.in_channels' must be 1, not {cfg.in_channels}: MSST's bandit_v2 separates "
                          "each channel as a mono signal")
    if cfg.rnn_type not in ("LSTM", "GRU", "RNN"):
        raise ConfigError(f"'kwargs.rnn_type' must be LSTM, GRU or RNN, not {cfg.rnn_type!r}")
    if cfg.hidden_activation not in _ACTIVATIONS:
        raise ConfigError(f"'kwargs.hidden_activation' {cfg.hidden_activation!r} is not one of "
                          f"{', '.join(sorted(_ACTIVATIONS))}")
    if cfg.window_fn not in _WINDOWS:
        raise ConfigError(f"'kwargs.window_fn' {cfg.window_fn!r} is not one of {', '.join(sorted(_WINDOWS))}")
    if cfg.win_length is not None and not 0 < cfg.win_length <= cfg.n_fft:
        raise ConfigError(f"'kwargs.win_length' must be in 1..n_fft ({cfg.n_fft}), not {cfg.win_length}")
    if cfg.pad_mode not in ("constant", "reflect", "replicate", "circular"):
        raise ConfigError(f"'kwargs.pad_mode' {cfg.pad_mode!r} is not a torch.stft pad mode")
    if not cfg.onesided:
        raise ConfigError("'kwargs.onesided' must be true")
    return cfg
