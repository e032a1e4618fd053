"""Reading an MSST ``apollo`` yaml: safe loading, the claim rule, and the settings inference uses.

MSST's yamls name no model type (MSST takes ``--model_type apollo``). A yaml is an Apollo yaml when it
says so (``model_type: apollo`` at the top or under ``training``), or, naming no type, when its ``model``
section has exactly Apollo's four settings ``sr``, ``win``, ``feature_dim`` and ``layer``.

No torch here: this module is cheap to import (the claim runs for every ``vsep separate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vsep_core.msst import (  # noqa: F401 - re-exported: the plugin's config API
    ConfigError,
    InferenceSettings,
    config_beside,
    inference_settings,
    load_yaml,
    positive_int,
    section,
    stated_model_type,
    yaml_beside_claims,
)

MODEL_TYPE = "apollo"
MODEL_KEYS = ("sr", "win", "feature_dim", "layer")


def describes_apollo(config: Mapping[str, Any]) -> bool:
    """Whether a parsed yaml is an Apollo config (the claim rule in the module docstring)."""
    stated = stated_model_type(config)
    if stated is not None:
        return stated == MODEL_TYPE
    model = config.get("model")
    return isinstance(model, Mapping) and set(model) == set(MODEL_KEYS)


def claims_file(path: Path) -> bool:
    """True for a checkpoint whose yaml beside it is an Apollo yaml."""
    return yaml_beside_claims(path, describes_apollo)


def network_config(config: Mapping[str, Any]):  # -> network.ApolloConfig (imported lazily: torch)
    """The network settings from the yaml's ``model`` section; ConfigError naming the key."""
    from vsep_apollo.network import N_BANDS, ApolloConfig

    model = section(config, "model")
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
