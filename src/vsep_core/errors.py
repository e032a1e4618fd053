"""The one exception tree of vsep. Every message says what went wrong and what to do."""

from __future__ import annotations


class VsepError(Exception):
    """Base of every error vsep raises on purpose; the CLI prints it in one line."""

    exit_code = 1


class UsageError(VsepError):
    """A bad argument or flag value (CLI exit code 2)."""

    exit_code = 2


class AudioReadError(VsepError):
    """An input file is missing, empty, corrupt or not audio."""


class AudioWriteError(VsepError):
    """An output could not be written (disk full, unwritable directory, unsupported format)."""


class ModelNotFoundError(VsepError):
    """A model name is in no catalogue and no plugin claims a local file of that name."""


class ModelLoadError(VsepError):
    """A model file exists but cannot be loaded (wrong format, mismatching weights, unsafe pickle)."""


class ModelDataError(VsepError):
    """Parameters for a model could not be found (unknown hash, missing yaml)."""


class PluginMissingError(VsepError):
    """The model's architecture needs a plugin package that is not installed."""


class DownloadError(VsepError):
    """A download failed after retries and fallbacks, or offline mode forbids it."""


class DeviceError(VsepError):
    """The requested compute device is not available."""


class SeparationError(VsepError):
    """One or more inputs failed; `failures` lists (path, error) pairs in input order."""

    def __init__(self, message: str, failures: list[tuple[str, BaseException]] | None = None,
                 successful_files: list[str] | None = None):
        super().__init__(message)
        self.failures = failures or []
        self.successful_files = successful_files or []
