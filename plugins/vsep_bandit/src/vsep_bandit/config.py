"""Reading an MSST ``bandit_v2`` yaml: safe loading, the claim rule, and the settings inference uses.

MSST's yamls name no model type (MSST takes ``--model_type bandit_v2`` on its command line). A yaml is a
BandIt v2 yaml when it says so (``model_type: bandit_v2`` at the top or under ``training``), or, naming no
type, when it has MSST's ``cls: Bandit`` or a ``kwargs`` section with BandIt v2's own keys (``stems`` and
``n_sqm_modules`` or ``band_type``): no other MSST family keeps its network settings under ``kwargs``.

No torch here: this module is cheap to import (the claim runs for every ``vsep separate``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vsep_core import msst
from vsep_core.msst import (  # noqa: F401 - re-exported: the plugin's config API
    ConfigError,
    InferenceSettings,
    config_beside,
    load_yaml,
    stated_model_type,
    yaml_beside_claims,
)

MODEL_TYPE = "bandit_v2"
_NETWORK_KEYS = {"n_sqm_modules", "band_type"}


def describes_bandit_v2(config: Mapping[str, Any]) -> bool:
    """Whether a parsed yaml is a BandIt v2 config (the claim rule in the module docstring)."""
    stated = stated_model_type(config)
    if stated is not None:
        return stated == MODEL_TYPE
    if config.get("cls") == "Bandit":
        return True
    kwargs = config.get("kwargs")
    return isinstance(kwargs, Mapping) and "stems" in kwargs and bool(_NETWORK_KEYS & set(kwargs))


def claims_file(path: Path) -> bool:
    """True for a checkpoint whose yaml beside it is a BandIt v2 yaml."""
    return yaml_beside_claims(path, describes_bandit_v2)


def inference_settings(config: Mapping[str, Any], default_chunk: int | None = None) -> InferenceSettings:
    """MSST's settings with ``training.instruments`` (see :func:`vsep_core.msst.inference_settings`)."""
    return msst.inference_settings(config, default_chunk, instruments=True)


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
