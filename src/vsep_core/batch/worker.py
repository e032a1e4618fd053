"""What a batch worker does: load the model(s) once, then separate one file after another.

The same `WorkerState` runs inside a local worker process, inside a Ray actor, and in the
driver itself (``--workers 0``). Each file is separated into a private staging folder; only
when every stem of the file is written are the stems checksummed and moved (or uploaded) to
their final names, so a worker that dies mid-file leaves nothing under a final name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsep_core.batch import io
from vsep_core.batch.manifest import OutputRecord
from vsep_core.errors import VsepError

log = logging.getLogger("vsep")

NOT_FINGERPRINTED = {"log_level", "log_formatter", "device", "offline", "use_directml", "model_file_dir", "info_only"}
"""Separator arguments that do not change what is written (left out of the settings fingerprint)."""


@dataclass(frozen=True)
class BatchSettings:
    """How every file of a batch is separated: `Separator` arguments (without `output_dir`) and the model(s).

    `models` is what `Separator.load_model` gets: one name, several names (an ensemble), or
    empty for the default model (or the ensemble preset's models).
    """

    separator_kwargs: dict[str, Any] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    chain: str | None = None
    """A chain document as JSON (docs/chains.md): every file runs that chain instead of `models`."""

    def fingerprint(self) -> str:
        """A short hash of everything that changes the outputs; a finished file is redone when it changes."""
        import inspect

        from vsep_core.separator import Separator

        defaults = {name: p.default for name, p in inspect.signature(Separator.__init__).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        merged = {**defaults, **self.separator_kwargs}
        if isinstance(merged.get("output_format"), str):
            merged["output_format"] = merged["output_format"].upper()
        kept = {k: v for k, v in merged.items()
                if k not in NOT_FINGERPRINTED and not (k.endswith("_params") and not v)}
        kept.update(_normalized_arch_params(kept))
        parts = {"models": list(self.models), "kwargs": kept}
        if self.chain:
            parts["chain"] = json.loads(self.chain)
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def load_argument(self) -> str | list[str] | None:
        """The argument for `Separator.load_model` (None: its default)."""
        if not self.models:
            return None
        return self.models[0] if len(self.models) == 1 else list(self.models)


def _normalized_arch_params(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Given ``<prefix>_params`` dicts as full typed dicts (so "0.5" and 0.5 match), for installed plugins."""
    from vsep_core import plugins
    from vsep_core.errors import VsepError
    from vsep_core.params import build_params, params_dict

    out: dict[str, Any] = {}
    try:
        archs = {a.flag_prefix: a for a in plugins.architectures().values()}
    except VsepError:
        return out
    for key, value in kwargs.items():
        prefix = key[: -len("_params")] if key.endswith("_params") else None
        if prefix in archs and isinstance(value, dict):
            try:
                out[key] = params_dict(build_params(archs[prefix], value))
            except VsepError:
                pass
    return out


@dataclass(frozen=True)
class Task:
    """One file to separate: the input (path or URL) and the output folder (path or URL) of its stems."""

    key: str
    src: str
    out_root: str
    rel_dir: str
    attempt: int = 1

    @property
    def out_dir(self) -> str:
        """The folder the stems are written to."""
        return io.join(self.out_root, self.rel_dir)


@dataclass
class TaskResult:
    """What a worker reports for one task: outputs (relative to the output directory) or an error."""

    key: str
    ok: bool
    outputs: list[OutputRecord] = field(default_factory=list)
    audio_seconds: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    worker: str | None = None
    retryable: bool = False
    """For a failure: whether another attempt could succeed (see `is_environmental`)."""


def audio_duration(path: Path) -> float:
    """Length of an audio file in seconds from its header (0.0 when unknown)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate if info.samplerate else 0.0
    except Exception:  # noqa: BLE001 - not libsndfile-readable: ask the container
        pass
    try:
        import av

        with av.open(str(path)) as container:
            return float(container.duration or 0) / 1_000_000
    except Exception:  # noqa: BLE001 - duration only feeds the throughput figure
        return 0.0


def describe_error(exc: BaseException) -> str:
    """One line: the message of a VsepError, the type and message of anything else."""
    if isinstance(exc, VsepError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".strip()


def is_environmental(exc: BaseException) -> bool:
    """Whether a failure comes from the machine rather than the file or the settings (out of memory, disk
    full, network, I/O), so that another attempt, perhaps on another worker, could succeed. A decode error,
    bad parameters or a missing model fail the same way every time: they are not retried."""
    import errno

    if isinstance(exc, VsepError):
        return False
    if isinstance(exc, (MemoryError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.ENOMEM, errno.EIO, errno.EAGAIN, errno.EBUSY,
                             errno.ESTALE, errno.ETIMEDOUT, errno.ECONNRESET, errno.ENETUNREACH, errno.EHOSTUNREACH)
    return "out of memory" in str(exc).lower()  # torch's CUDA/MPS out-of-memory errors


class WorkerState:
    """A loaded `Separator` and the staging folder one worker separates into."""

    def __init__(self, settings: BatchSettings, worker_id: str, staging_root: str | None = None,
                 device: str | None = None, log_level: int = logging.WARNING):
        from vsep_core.separator import Separator

        self.worker_id = worker_id
        self.staging_root = staging_root
        kwargs = dict(settings.separator_kwargs)
        kwargs["log_level"] = log_level
        if device is not None:
            kwargs["device"] = device
        started = time.perf_counter()
        self.separator = Separator(output_dir=tempfile.gettempdir(), **kwargs)
        self.chain = json.loads(settings.chain) if settings.chain else None
        model = settings.load_argument()
        if self.chain is not None:
            pass  # a chain loads each model when its step runs
        elif model is None:
            self.separator.load_model()
        else:
            self.separator.load_model(model)
        self.load_seconds = time.perf_counter() - started

    def process(self, task: Task, report: Callable[[TaskResult], None] | None = None) -> TaskResult:
        """Separate one file and put its stems in place; errors come back in the result, never raised.

        `report` is called with the result before this returns. Moving the stems to their final
        names and reporting them is one step that a stop signal does not cut (`vsep_core.stop.deferred`):
        a stop that arrives during the separation drops the file, one that arrives while it is being
        published takes effect once the result is reported.
        """
        from vsep_core import stop

        started = time.perf_counter()
        if self.staging_root:
            Path(self.staging_root).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{self.worker_id}-", dir=self.staging_root))
        try:
            local_in = io.download(task.src, staging / "in") if io.is_url(task.src) else Path(task.src)
            self.separator.output_dir = str(staging / "out")
            written = [Path(p) for p in self.separator.separate(str(local_in), chain=self.chain)]
            if not written:  # Separator returns [] when --single_stem names no stem: a failure in a batch
                from vsep_core.errors import UsageError

                single = self.separator.output_single_stem
                raise UsageError("separation produced no output files"
                                 + (f": --single_stem {single!r} matches no stem of the model" if single else ""))
            duration = audio_duration(local_in)
            outputs = []
            for path in written:
                rel = "/".join(p for p in (task.rel_dir, path.name) if p)
                outputs.append(OutputRecord(rel, io.sha256_file(path), path.stat().st_size))
            with stop.deferred():
                io.place_all([(path, io.join(task.out_dir, path.name)) for path in written])  # the whole set, or none
                result = TaskResult(task.key, True, outputs, duration, time.perf_counter() - started, None,
                                    self.worker_id)
                if report is not None:
                    report(result)
            return result
        except Exception as exc:  # noqa: BLE001 - every failure is reported for this file alone
            if not isinstance(exc, VsepError):
                log.debug("%s failed:\n%s", task.key, traceback.format_exc())
            result = TaskResult(task.key, False, [], 0.0, time.perf_counter() - started, describe_error(exc),
                                self.worker_id, is_environmental(exc))
            if report is not None:
                report(result)
            return result
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def staging_root_for(out_root: str) -> str | None:
    """Where workers stage files: inside the output directory when it is local (same filesystem, so the
    final move is a rename), the system temp folder (None) when it is a URL."""
    from vsep_core.batch.manifest import STATE_DIR

    return None if io.is_url(out_root) else os.path.join(out_root, STATE_DIR, "staging")
