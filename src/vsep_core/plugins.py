"""The plugin manager: loads entry-point group ``vsep`` plus core's built-in plugins."""

from __future__ import annotations

import functools
import importlib.metadata as md
from dataclasses import dataclass

import pluggy

from vsep_core import hookspecs
from vsep_core.api import Architecture, ModelRecord
from vsep_core.errors import PluginMissingError, VsepError

BUILTIN_PLUGINS = ("vsep_core.devices", "vsep_core.ensemble")


@dataclass(frozen=True)
class PluginInfo:
    """An installed plugin: entry-point name, distribution and version, architectures added."""

    name: str
    distribution: str
    version: str
    architectures: tuple[str, ...]


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (built-ins first, then every installed ``vsep`` entry point)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    import importlib

    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    try:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    except Exception as exc:  # a broken third-party plugin must say which one it is
        raise VsepError(f"a vsep plugin failed to load: {exc} (reinstall or uninstall it)") from exc
    pm.check_pending()
    return pm


def architectures() -> dict[str, Architecture]:
    """Every installed architecture by name; a name added twice is an error."""
    found: dict[str, Architecture] = {}
    for batch in get_plugin_manager().hook.vsep_architectures():
        for arch in batch or []:
            if arch.name in found:
                raise VsepError(f"two plugins add the architecture {arch.name!r}; uninstall one of them")
            found[arch.name] = arch
    return found


def get_architecture(name: str, record: ModelRecord | None = None) -> Architecture:
    """The architecture called `name`, or an error naming the package to install."""
    archs = architectures()
    if name in archs:
        return archs[name]
    package = (record.package if record else None) or f"vsep-{name.lower()}"
    raise PluginMissingError(f"{name} models need the plugin package {package}: pip install {package}")


def plugin_infos() -> list[PluginInfo]:
    """Installed plugins (built-ins included) with their distributions, versions and architectures."""
    pm = get_plugin_manager()
    dists = dict(pm.list_plugin_distinfo())
    infos = []
    for name, plugin in pm.list_name_plugin():
        archs: tuple[str, ...] = ()
        impl = getattr(plugin, "vsep_architectures", None)
        if impl is not None:
            archs = tuple(a.name for a in impl() or [])
        dist = dists.get(plugin)
        if dist is not None:
            dist_name, version = dist.metadata["Name"], dist.version
        else:
            dist_name, version = "vsep-core (built-in)", _core_version()
        infos.append(PluginInfo(name, dist_name, version, archs))
    return infos


def _core_version() -> str:
    try:
        return md.version("vsep-core")
    except md.PackageNotFoundError:
        return "0+unknown"
