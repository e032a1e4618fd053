"""A stand-in ``audio_separator`` package that only renames modules to vsep's.

Put its parent folder first on ``PYTHONPATH`` and ``import audio_separator.separator`` gives
``vsep_core``, ``audio_separator.utils.cli`` gives ``vsep_core.cli``, and so on (the table
below). The module objects are vsep's own, so a test that patches
``audio_separator.separator.Separator.separate`` patches vsep's method. A module with no
counterpart in vsep (the reference's internals: ``common_separator``, ``audio_chunking``,
``roformer.*``, ...) is not found, as it would not be after ``pip uninstall audio-separator``.
Used by benchmarks/upstream/run.py; not part of vsep.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

ALIASES = {
    "audio_separator.separator": "vsep_core",
    "audio_separator.separator.separator": "vsep_core.separator",
    "audio_separator.separator.ensembler": "vsep_core.ensembler",
    "audio_separator.separator.exceptions": "vsep_core.errors",
    "audio_separator.utils": "vsep_core",
    "audio_separator.utils.cli": "vsep_core.cli",
    "audio_separator.remote": "vsep_core.remote",
    "audio_separator.remote.api_client": "vsep_core.remote.api_client",
    "audio_separator.remote.cli": "vsep_core.cli.remote",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):  # the target module itself takes the alias's place
        module = importlib.import_module(self.target)
        self.real_spec = module.__spec__
        return module

    def exec_module(self, module):  # already executed under its own name; keep its own spec
        module.__spec__ = self.real_spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in ALIASES:
            return None
        real = importlib.import_module(ALIASES[fullname])
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(ALIASES[fullname]),
                                              is_package=hasattr(real, "__path__"))


if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _AliasFinder())
