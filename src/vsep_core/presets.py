"""Ensemble presets: the packaged ones (the reference's ensemble_presets.json) plus those of plugins.

A preset names at least two models, one ensemble algorithm and optional weights (one per
model). Presets come from every ``vsep_presets`` hook implementation, the built-in ensemble
plugin first. A preset that fails validation is left out of listings with a warning, and
asking for it by id raises :class:`PresetError` with the reason.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from vsep_core.errors import UsageError

logger = logging.getLogger("vsep.presets")

PACKAGED_FILE = "ensemble_presets.json"
BUILTIN_SOURCE = "vsep_core.ensemble"


class PresetError(UsageError):
    """An unknown or invalid ensemble preset."""


@dataclass(frozen=True)
class Preset:
    """A validated ensemble preset. ``source`` is the plugin that added it."""

    id: str
    name: str
    description: str
    models: tuple[str, ...]
    algorithm: str
    weights: tuple[float, ...] | None = None
    contributor: str | None = None
    source: str = BUILTIN_SOURCE
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The reference's shape: name, description, models, algorithm, weights, contributor."""
        return {
            "name": self.name,
            "description": self.description,
            "models": list(self.models),
            "algorithm": self.algorithm,
            "weights": list(self.weights) if self.weights is not None else None,
            "contributor": self.contributor,
            **self.extra,
        }

    def __getitem__(self, key: str) -> Any:
        """Dict-style access to the reference's keys (``preset["models"]``), for code written against dicts."""
        if key == "id":
            return self.id
        return self.as_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``dict.get`` on :meth:`as_dict` (plus ``id``)."""
        try:
            return self[key]
        except KeyError:
            return default


def packaged_presets() -> list[dict[str, Any]]:
    """The presets shipped in ``vsep_core/data/ensemble_presets.json`` as dicts with an ``id``."""
    text = resources.files("vsep_core").joinpath("data", PACKAGED_FILE).read_text(encoding="utf-8")
    data = json.loads(text)
    return [{"id": preset_id, **body} for preset_id, body in data.get("presets", {}).items()]


def validate_preset(data: dict[str, Any], known_algorithms: set[str] | None = None,
                    source: str = BUILTIN_SOURCE) -> Preset:
    """Check one preset dict and return it as a :class:`Preset`.

    Raises :class:`PresetError` saying what is wrong: a missing id, name or description,
    fewer than two models, an unknown algorithm, or weights that are not one finite number
    per model.
    """
    if not isinstance(data, dict):
        raise PresetError(f"a preset from {source} is not a mapping: {data!r}")
    preset_id = data.get("id")
    where = f"ensemble preset {preset_id!r} (from {source})"
    if not isinstance(preset_id, str) or not preset_id.strip():
        raise PresetError(f"a preset from {source} has no id: {data!r}")
    for key in ("name", "description"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise PresetError(f"{where}: '{key}' must be a non-empty string")
    models = data.get("models")
    if (not isinstance(models, (list, tuple)) or len(models) < 2
            or not all(isinstance(m, str) and m.strip() for m in models)):
        raise PresetError(f"{where}: 'models' must list at least 2 model filenames, got {models!r}")
    algorithm = data.get("algorithm")
    if known_algorithms is None:
        from vsep_core.ensemble import algorithms

        known_algorithms = set(algorithms())
    if algorithm not in known_algorithms:
        raise PresetError(f"{where}: unknown algorithm {algorithm!r}; "
                          f"choose one of: {', '.join(sorted(known_algorithms))}")
    weights = data.get("weights")
    if weights is not None:
        if (not isinstance(weights, (list, tuple)) or len(weights) != len(models)
                or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w)
                           for w in weights)):
            raise PresetError(f"{where}: 'weights' must be null or {len(models)} finite numbers "
                              f"(one per model), got {weights!r}")
        if sum(weights) == 0:
            raise PresetError(f"{where}: 'weights' sum to zero")
        weights = tuple(float(w) for w in weights)
    known = {"id", "name", "description", "models", "algorithm", "weights", "contributor"}
    return Preset(
        id=preset_id, name=data["name"], description=data["description"], models=tuple(models),
        algorithm=algorithm, weights=weights, contributor=data.get("contributor"), source=source,
        extra={k: v for k, v in data.items() if k not in known},
    )


def _collect() -> tuple[dict[str, Preset], dict[str, PresetError]]:
    """All presets by id, and the errors of those that failed validation."""
    from vsep_core.ensemble import algorithms
    from vsep_core.plugins import get_plugin_manager

    known = set(algorithms())
    good: dict[str, Preset] = {}
    bad: dict[str, PresetError] = {}
    impls = get_plugin_manager().hook.vsep_presets.get_hookimpls()
    for impl in sorted(impls, key=lambda i: i.plugin_name != BUILTIN_SOURCE):
        for data in impl.function() or []:
            try:
                preset = validate_preset(data, known, impl.plugin_name)
            except PresetError as exc:
                preset_id = data.get("id") if isinstance(data, dict) else None
                if isinstance(preset_id, str) and preset_id not in good:
                    bad.setdefault(preset_id, exc)
                logger.warning("skipping %s", exc)
                continue
            if preset.id in good:
                logger.warning("ensemble preset %r from %s is ignored: %s already defines it",
                               preset.id, preset.source, good[preset.id].source)
                continue
            good[preset.id] = preset
            bad.pop(preset.id, None)
    return good, bad


def presets() -> dict[str, Preset]:
    """Every valid preset by id: the packaged ones first, then those of plugins."""
    return _collect()[0]


def get_preset(preset_id: str) -> Preset:
    """The preset called ``preset_id``; :class:`PresetError` if it is unknown (listing the ids) or invalid."""
    good, bad = _collect()
    if preset_id in good:
        return good[preset_id]
    if preset_id in bad:
        raise bad[preset_id]
    raise PresetError(f"unknown ensemble preset {preset_id!r}; available: {', '.join(good) or 'none'} "
                      "(see `vsep presets`)")


def list_ensemble_presets() -> dict[str, dict[str, Any]]:
    """``{preset_id: {name, description, models, algorithm, weights, contributor}}`` as the reference."""
    return {preset_id: p.as_dict() for preset_id, p in presets().items()}


@dataclass(frozen=True)
class EnsembleSettings:
    """What an ensemble run uses after merging a preset with explicit arguments."""

    models: tuple[str, ...]
    algorithm: str
    weights: tuple[float, ...] | None
    preset: str | None


def resolve_settings(models: list[str] | None = None, algorithm: str | None = None,
                     weights: list[float] | None = None, preset: str | None = None) -> EnsembleSettings:
    """Merge explicit arguments over a preset's (explicit wins), as the reference.

    models: explicit list > preset's models; algorithm: explicit > preset's > "avg_wave";
    weights: explicit > preset's (only when the preset's models are used, since weights are
    one per model). An unknown algorithm raises :class:`~vsep_core.errors.UsageError`.
    """
    from vsep_core.ensemble import DEFAULT_ALGORITHM, get_algorithm

    p = get_preset(preset) if preset else None
    chosen_models = tuple(models) if models else (p.models if p else ())
    chosen_algorithm = algorithm or (p.algorithm if p else DEFAULT_ALGORITHM)
    get_algorithm(chosen_algorithm)
    chosen_weights: tuple[float, ...] | None
    if weights is not None:
        chosen_weights = tuple(float(w) for w in weights)
    elif p is not None and p.weights is not None and chosen_models == p.models:
        chosen_weights = p.weights
    else:
        chosen_weights = None
    return EnsembleSettings(chosen_models, chosen_algorithm, chosen_weights, p.id if p else None)
