"""Hook specifications: the whole contract between vsep core and its plugins.

A plugin is a module (or object) registered under the entry-point group ``vsep`` whose
functions are decorated with :data:`hookimpl` and named like the specs below. Core never
imports a plugin by name. Module-level imports of a plugin must stay light (no torch).
"""

from __future__ import annotations

from typing import Any

import pluggy

from vsep_core.api import Architecture, Device, HashTable, ModelRecord

PROJECT = "vsep"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def vsep_architectures() -> list[Architecture]:
    """Return the architectures this plugin adds.

    Each name must be unique across installed plugins ("MDXC", "MDX", "VR", "Demucs");
    its params dataclass generates the ``--<prefix>_<field>`` CLI flags and the
    ``<prefix>_params`` dict of :class:`vsep_core.Separator`.
    """


@hookspec
def vsep_models() -> list[ModelRecord]:
    """Return catalogue records of models of this plugin's families.

    Core merges them (later plugins do not replace earlier filenames), adds scores,
    filters, sorts and resolves user names against them. A record of an architecture
    whose plugin is not installed is listed only by ``vsep models --all``.
    """


@hookspec
def vsep_hash_tables() -> list[HashTable]:
    """Return model-file-hash -> parameter tables (UVR's model_data_new.json shape).

    :func:`vsep_core.modeldata.load_model_data_using_hash` searches them in the
    order returned (MDX before VR, as the reference does), each merged with its
    ``model_dir_filename`` JSON from the model directory when present.
    """


@hookspec(firstresult=True)
def vsep_select_device(request: str | None, use_directml: bool) -> Device | None:
    """Choose where models run. ``request`` is None (automatic) or "cpu", "cuda",
    "cuda:N", "mps". Return None to let the next implementation decide; raise
    :class:`vsep_core.errors.DeviceError` when an explicit request cannot be met.
    """


@hookspec
def vsep_ensemble_algorithms() -> dict[str, Any]:
    """Return ``{name: fn(waves: list[np.ndarray], weights: list[float] | None) -> np.ndarray}``.

    Every wave is float32 [channels, samples]; inputs may differ in length and the
    result must be as long as the longest.
    """


@hookspec
def vsep_presets() -> list[dict[str, Any]]:
    """Return ensemble presets: dicts with id, name, description, models (>= 2),
    algorithm, and optional weights (one per model)."""
