"""The plugin manager: core's built-in plugins plus every entry point of group ``vsep``.

Entry points are loaded one by one. A plugin that fails to import, or that implements a hook
vsep does not have (a misspelt name), is skipped with one warning naming its distribution and
listed by `vsep plugins` as failed; the other plugins keep working. ``VSEP_LOAD_PLUGINS``
(only these) and ``VSEP_DISABLE_PLUGINS`` (all but these) take comma-separated entry-point or
distribution names.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata as md
import logging
import os
from dataclasses import dataclass

import pluggy

from vsep_core import __version__, hookspecs
from vsep_core.api import Architecture, ModelRecord
from vsep_core.errors import PluginMissingError, UsageError, VsepError

BUILTIN_PLUGINS = ("vsep_core.devices", "vsep_core.ensemble")
LOAD_ENV = "VSEP_LOAD_PLUGINS"
DISABLE_ENV = "VSEP_DISABLE_PLUGINS"
log = logging.getLogger("vsep")


@dataclass(frozen=True)
class PluginInfo:
    """A plugin: entry-point name, distribution and version, architectures added, and why it failed."""

    name: str
    distribution: str
    version: str
    architectures: tuple[str, ...]
    error: str | None = None


def _names(env: str) -> set[str] | None:
    value = os.environ.get(env, "").strip()
    return {n.strip().lower() for n in value.split(",") if n.strip()} if value else None


def _selected(ep: md.EntryPoint) -> bool:
    dist = (ep.dist.metadata["Name"] if ep.dist else "").lower()
    keys = {ep.name.lower(), dist, dist.replace("_", "-")}
    wanted, disabled = _names(LOAD_ENV), _names(DISABLE_ENV)
    if wanted is not None and not keys & wanted:
        return False
    return not (disabled and keys & disabled)


def _unknown_hooks(plugin: object) -> list[str]:
    """Names of `plugin`'s hook implementations that no vsep hook spec has."""
    specs = {n for n in dir(hookspecs) if n.startswith("vsep_")}
    found = []
    for attr in dir(plugin):
        obj = getattr(plugin, attr, None)
        if callable(obj) and hasattr(obj, f"{hookspecs.PROJECT}_impl") and attr not in specs:
            found.append(attr)
    return found


def _hint(name: str) -> str:
    specs = [n for n in dir(hookspecs) if n.startswith("vsep_")]
    close = difflib.get_close_matches(name, specs, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


@functools.cache
def _manager() -> tuple[pluggy.PluginManager, tuple[PluginInfo, ...], dict[str, tuple[str, str]]]:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    failures: list[PluginInfo] = []
    dists: dict[str, tuple[str, str]] = {}
    seen: set[str] = set()
    for ep in md.entry_points(group=hookspecs.PROJECT):
        if ep.name in seen or not _selected(ep):
            continue
        seen.add(ep.name)
        dist = ep.dist.metadata["Name"] if ep.dist else ep.name
        version = ep.dist.version if ep.dist else "?"
        try:
            plugin = ep.load()
            unknown = _unknown_hooks(plugin)
            if unknown:
                raise VsepError("implements no vsep hook named " + ", ".join(f"{u}{_hint(u)}" for u in unknown))
            pm.register(plugin, name=ep.name)
            dists[ep.name] = (dist, version)
        except Exception as exc:  # any failure of a third party's code must not take vsep down
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            failures.append(PluginInfo(ep.name, dist, version, (), reason))
            log.warning("vsep plugin %s (%s %s) skipped: %s", ep.name, dist, version, reason)
    return pm, tuple(failures), dists


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (built-ins first, then every usable ``vsep`` entry point)."""
    return _manager()[0]


def plugin_failures() -> tuple[PluginInfo, ...]:
    """Entry points that were skipped, each with the reason in ``error``."""
    return _manager()[1]


def reset() -> None:
    """Forget the loaded plugins (tests; after installing a plugin in a running process)."""
    _manager.cache_clear()


def architectures() -> dict[str, Architecture]:
    """Every installed architecture by name; a name added twice is an error."""
    found: dict[str, Architecture] = {}
    for batch in get_plugin_manager().hook.vsep_architectures():
        for arch in batch or []:
            if arch.name in found:
                raise VsepError(f"two plugins add the architecture {arch.name!r}; uninstall one of them")
            found[arch.name] = arch
    return found


def architecture_for_prefix(prefix: str) -> Architecture:
    """The installed architecture whose params prefix is `prefix` (``mdxc`` for ``mdxc_params``)."""
    for arch in architectures().values():
        if arch.flag_prefix == prefix:
            return arch
    known = ", ".join(f"{a.flag_prefix}_params" for a in architectures().values()) or "none"
    raise UsageError(f"{prefix}_params: no installed plugin owns the prefix {prefix!r} (installed: {known})")


def get_architecture(name: str, record: ModelRecord | None = None) -> Architecture:
    """The architecture called `name`, or an error naming the package to install."""
    archs = architectures()
    if name in archs:
        return archs[name]
    package = (record.package if record else None) or f"vsep-{name.lower()}"
    raise PluginMissingError(f"{name} models need the plugin package {package}: pip install {package}")


def plugin_infos() -> list[PluginInfo]:
    """Plugins (built-ins included) with their distributions, versions, architectures; failed ones last."""
    pm, _, dists = _manager()
    infos = []
    for name, plugin in pm.list_name_plugin():
        archs: tuple[str, ...] = ()
        impl = getattr(plugin, "vsep_architectures", None)
        if impl is not None:
            archs = tuple(a.name for a in impl() or [])
        dist_name, version = dists.get(name, ("vsep-core (built-in)", __version__))
        infos.append(PluginInfo(name, dist_name, version, archs))
    infos += list(plugin_failures())
    return infos
