"""The one exception tree of vsep. Every message says what went wrong and what to do.

Every error is a :class:`VsepError` and, where the reference implementation (audio-separator)
raises a built-in for the same fault, that built-in too, so ``except ValueError:`` and the like
keep working: bad arguments and unknown models or presets are ``ValueError``, a missing input or
model file is ``FileNotFoundError``, a failed load, write or separation is ``RuntimeError``. The
reference's own exception names (``AudioExportError``, ``BatchSeparationError``,
``InvalidAudioDataError``) are bases of vsep's errors with the reference's built-in bases.
"""

from __future__ import annotations


class VsepError(Exception):
    """Base of every error vsep raises on purpose; the CLI prints it in one line."""

    exit_code = 1


class InvalidAudioDataError(VsepError, ValueError):
    """The reference's name for audio that cannot be used (empty, not finite, unreadable)."""


class AudioExportError(VsepError, RuntimeError):
    """The reference's name for an output that could not be written; `path` and `backend` when known."""

    def __init__(self, message: str = "", path: str | None = None, backend: str | None = None):
        super().__init__(message)
        self.path = path
        self.backend = backend


class BatchSeparationError(VsepError, RuntimeError):
    """The reference's name for "some inputs failed": `failures` lists (path, error) pairs in input
    order, `successful_files` the outputs of the inputs that worked."""

    def __init__(self, message: str = "", failures: list[tuple[str, BaseException]] | None = None,
                 successful_files: list[str] | None = None):
        super().__init__(message)
        self.failures = failures or []
        self.successful_files = successful_files or []


class UsageError(VsepError, ValueError):
    """A bad argument or flag value (CLI exit code 2)."""

    exit_code = 2


class AudioReadError(InvalidAudioDataError):
    """An input file is missing, empty, corrupt or not audio."""


class InputNotFoundError(AudioReadError, FileNotFoundError):
    """An input file does not exist."""


class AudioWriteError(AudioExportError):
    """An output could not be written (disk full, unwritable directory, unsupported format)."""


class ModelNotFoundError(VsepError, ValueError):
    """A model name is in no catalogue and no plugin claims a local file of that name."""


class ModelLoadError(VsepError, RuntimeError):
    """A model file exists but cannot be loaded (wrong format, mismatching weights, unsafe pickle)."""


class ModelDataError(VsepError, ValueError):
    """Parameters for a model could not be found (unknown hash, missing yaml)."""


class ModelFileNotFoundError(ModelDataError, FileNotFoundError):
    """A model file or its yaml config is not on disk."""


class ModelRunError(VsepError, RuntimeError):
    """A loaded model failed while separating an input (the network or its plugin raised)."""


class PluginMissingError(VsepError):
    """The model's architecture needs a plugin package that is not installed."""


class DownloadError(VsepError, RuntimeError):
    """A download failed after retries and fallbacks, or offline mode forbids it."""


class DeviceError(VsepError):
    """The requested compute device is not available."""


class SeparationError(BatchSeparationError):
    """One or more inputs failed; `failures` lists (path, error) pairs in input order."""

    @classmethod
    def of(cls, failures: list[tuple[str, BaseException]], successful_files: list[str], total: int
           ) -> SeparationError:
        """The error of a run over `total` inputs: one line naming each failed input and its reason (the
        exit code of the failure when there is one)."""
        def reason(path: str, exc: BaseException) -> str:
            text = " ".join(str(exc).split()) or type(exc).__name__
            return text if path in text or path.rsplit("/", 1)[-1] in text else f"{path}: {text}"

        detail = "; ".join(reason(path, exc) for path, exc in failures)
        if total > 1:
            detail = f"{len(failures)} input(s) of {total} failed: {detail}"
        error = cls(detail, failures, successful_files)
        if len(failures) == 1:
            error.exit_code = getattr(failures[0][1], "exit_code", cls.exit_code)
            error.__cause__ = failures[0][1]  # --debug shows where it came from
        return error
