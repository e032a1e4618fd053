"""Reading an MSST ``apollo`` yaml: safe loading, the claim rule, and the settings inference uses.

MSST's yamls name no model type (MSST takes ``--model_type apollo``). A yaml is an Apollo yaml when it
says so (``model_type: apollo`` at the top or under ``training``), or, naming no type, when its ``model``
section has exactly Apollo's four settings ``sr``, ``win``, ``feature_dim`` and ``layer``.

No torch here: this module is cheap to import (the claim runs for every ``vsep separate``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vsep_core import helpers

MODEL_TYPE = "apollo"
YAML_SUFFIXES = (".yaml", ".yml")
MODEL_KEYS = ("sr", "win", "feature_dim", "layer")


class ConfigError(ValueError):
    """The yaml is not a usable Apollo config; the message names the key."""


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


def describes_apollo(config: Mapping[str, Any]) -> bool:
    """Whether a parsed yaml is an Apollo config (the claim rule in the module docstring)."""
    stated = stated_model_type(config)
    if stated is not None:
        return stated == MODEL_TYPE
    model = config.get("model")
    return isinstance(model, Mapping) and set(model) == set(MODEL_KEYS)


def config_beside(path: Path) -> Path | None:
    """The yaml beside a checkpoint (same stem), if there is one."""
    return next((path.with_suffix(s) for s in YAML_SUFFIXES if path.with_suffix(s).is_file()), None)


@functools.lru_cache(maxsize=64)
def _claims_cached(yaml_path: str, mtime: float) -> bool:
    try:
        return describes_apollo(load_yaml(yaml_path))
    except (OSError, ConfigError):
        return False


def claims_file(path: Path) -> bool:
    """True for a checkpoint whose yaml beside it is an Apollo yaml."""
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


def _section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = config.get(name)
    if not isinstance(value, Mapping):
        raise ConfigError(f"the yaml has no '{name}' section")
    return value


def positive_int(section: Mapping[str, Any], where: str, key: str, default: int | None = None) -> int:
    """``section[key]`` as a positive int (else `default`); ConfigError naming ``where.key``."""
    value = section.get(key, default)
    if value is None:
        raise ConfigError(f"the yaml has no '{where}.{key}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value <= 0:
        raise ConfigError(f"'{where}.{key}' must be a positive whole number, not {value!r}")
    return int(value)


def inference_settings(config: Mapping[str, Any]) -> InferenceSettings:
    """MSST's settings: ``inference.chunk_size`` else ``audio.chunk_size``, ``inference.num_overlap``,
    ``inference.batch_size``, ``inference.normalize``, ``audio.sample_rate`` (44100 when absent),
    ``audio.num_channels`` (2 when absent)."""
    audio = _section(config, "audio")
    inference = _section(config, "inference")
    if inference.get("chunk_size") is not None:
        chunk = positive_int(inference, "inference", "chunk_size")
    else:
        chunk = positive_int(audio, "audio", "chunk_size")
    channels = positive_int(audio, "audio", "num_channels", 2)
    if channels not in (1, 2):
        raise ConfigError(f"'audio.num_channels' must be 1 or 2, not {channels}")
    return InferenceSettings(
        sample_rate=positive_int(audio, "audio", "sample_rate", 44100), channels=channels, chunk_size=chunk,
        num_overlap=positive_int(inference, "inference", "num_overlap"),
        batch_size=positive_int(inference, "inference", "batch_size", 1), normalize=inference.get("normalize") is True)


def network_config(config: Mapping[str, Any]):  # -> network.ApolloConfig (imported lazily: torch)
    """The network settings from the yaml's ``model`` section; ConfigError naming the key."""
    from vsep_apollo.network import N_BANDS, ApolloConfig

    model = _section(config, "model")
    unknown = sorted(set(model) - set(MODEL_KEYS))
    if unknown:
        raise ConfigError(f"the yaml has 'model.{unknown[0]}', which Apollo does not take")
    cfg = ApolloConfig(**{k: positive_int(model, "model", k) for k in MODEL_KEYS})
    if cfg.feature_dim % 16:
        raise ConfigError(f"'model.feature_dim' must be a multiple of 16 (8 attention heads of an even size for "
                          f"rotary positions), not {cfg.feature_dim}")
    if cfg.win_samples < 160 or cfg.band_widths[-1] <= 0:
        raise ConfigError(f"'model.win' {cfg.win} ms at 'model.sr' {cfg.sr} gives a {cfg.win_samples}-sample window; "
                          f"Apollo's {N_BANDS} bands need at least 160 samples")
    return cfg


def output_name(config: Mapping[str, Any]) -> str:
    """The one output's name: "Restored" (MSST's ``target_instrument`` is ``restored``; any other target is
    kept as the yaml spells it)."""
    training = config.get("training")
    target = training.get("target_instrument") if isinstance(training, Mapping) else None
    if not target or str(target).lower() == "restored":
        return "Restored"
    return str(target)
