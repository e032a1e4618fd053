"""vsep-core: the Separator facade, the plugin host and the `vsep` CLI.

Attributes are imported lazily so that `vsep --help` stays fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Separator", "AudioSeparatorAPIClient", "Ensembler", "AudioExportError", "BatchSeparationError",
           "InvalidAudioDataError", "__version__"]
_ERROR_NAMES = ("AudioExportError", "BatchSeparationError", "InvalidAudioDataError")


def _version() -> str:
    import importlib.metadata as md

    try:
        return md.version("vsep-core")
    except md.PackageNotFoundError:
        return "0+unknown"


__version__ = _version()


def __getattr__(name: str) -> Any:
    if name == "Separator":
        from vsep_core.separator import Separator

        return Separator
    if name == "AudioSeparatorAPIClient":
        from vsep_core.remote import AudioSeparatorAPIClient

        return AudioSeparatorAPIClient
    if name == "Ensembler":
        from vsep_core.ensembler import Ensembler

        return Ensembler
    if name in _ERROR_NAMES:  # the reference exports these beside Separator
        from vsep_core import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'vsep_core' has no attribute {name!r}")
