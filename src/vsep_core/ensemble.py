"""Built-in ensemble plugin: the reference's 11 algorithms and its presets (filled in by the ensemble work)."""

from __future__ import annotations

from typing import Any

from vsep_core.hookspecs import hookimpl


@hookimpl
def vsep_ensemble_algorithms() -> dict[str, Any]:
    """The built-in algorithms."""
    return {}


@hookimpl
def vsep_presets() -> list[dict[str, Any]]:
    """The packaged presets."""
    return []
