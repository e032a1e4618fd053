"""The batch driver: plan from the manifest, stream files to workers largest first, record every outcome.

The driver is the only writer of the manifest. Workers (local processes, Ray actors, or the
driver itself) hold one file at a time, so the driver always knows which file a worker had
when it died: that file goes back to the front of the queue. Every finished attempt (done,
failed, or lost with its worker) counts; a file is tried at most ``1 + max_retries`` times in
all, across runs, and the count starts again when the input file or the settings change.
Within a run only failures that another attempt could cure (a lost worker, out of memory,
disk full: `vsep_core.batch.worker.is_environmental`) are tried again; a file that fails the
same way every time (cannot be decoded, bad parameters) fails at once.

A stop (SIGTERM, SIGHUP, Ctrl-C) is forwarded to the workers (`WorkerPool.stop`): the driver
waits, up to ``STOP_GRACE_S``, for them to drop their files or finish publishing them, and
records the finished ones, so that every file under its final name has its manifest record;
files dropped stay ``running`` in the manifest and are done by the next run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from vsep_core import stop
from vsep_core.batch import io
from vsep_core.batch.manifest import DONE, FAILED, RUNNING, STATE_DIR, Entry, Manifest
from vsep_core.batch.worker import BatchSettings, Task, TaskResult
from vsep_core.errors import UsageError, VsepError

log = logging.getLogger("vsep")

VERIFY_MODES = ("checksum", "size", "exists")
STOP_GRACE_S = 20.0
"""How long a stopped batch waits for its workers to drop or publish the files they hold."""


class BatchAbortedError(VsepError):
    """The batch could not go on (workers cannot load the model, or keep dying); finished files stay recorded."""


@dataclass
class WorkerRef:
    """A worker as the driver and event listeners see it: an id, its process id, and for Ray the actor handle."""

    id: str
    pid: int | None = None
    node: str | None = None
    handle: Any = None


@dataclass
class Completion:
    """A worker finished its task (`result`), or died holding it (`result` None, `error` says how)."""

    worker: WorkerRef
    task: Task
    result: TaskResult | None
    error: str | None = None


class WorkerPool(Protocol):
    """What the driver needs from a set of workers (local processes, Ray actors, or in-process)."""

    size: int

    def start(self) -> None:
        """Start the workers (they load the model(s) in the background)."""

    def idle(self) -> list[WorkerRef]:
        """Workers that are ready and hold no task."""

    def submit(self, worker: WorkerRef, task: Task) -> None:
        """Give an idle worker one task."""

    def poll(self, timeout: float) -> list[Completion]:
        """Finished or lost tasks (waits at most `timeout` seconds); raises BatchAbortedError when workers
        cannot start or keep dying."""

    def stop(self, grace: float) -> list[Completion]:
        """Forward a stop (SIGTERM, Ctrl-C) to the workers, wait up to `grace` s for them to end, and return
        the files they finished meanwhile (so the manifest records every file that reached its final name)."""

    def close(self) -> None:
        """Stop every worker."""


@dataclass
class BatchStats:
    """Counts over the files of one run, updated as it goes (what the progress bar shows)."""

    total: int = 0
    skipped: int = 0
    queued: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    retries: int = 0
    workers_lost: int = 0
    audio_seconds: float = 0.0
    busy_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    @property
    def files_per_worker_hour(self) -> float:
        """Files one worker separates per hour of work (model loading and idle time left out)."""
        return self.done * 3600 / self.busy_seconds if self.busy_seconds > 0 else 0.0

    @property
    def throughput(self) -> float:
        """Audio seconds separated per wall-clock second in this run."""
        return self.audio_seconds / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class BatchEvent:
    """Something happened: ``plan``, ``started``, ``done``, ``retry``, ``failed``,
    ``worker_lost`` or ``tick`` (periodic). `stats` is the live count."""

    kind: str
    stats: BatchStats
    key: str | None = None
    worker: WorkerRef | None = None
    result: TaskResult | None = None
    error: str | None = None


@dataclass
class BatchReport:
    """The outcome of a run: counts, failures (input, error) in input order, and the manifest's path."""

    stats: BatchStats
    failures: list[tuple[str, str]]
    manifest_path: str
    workers: int = 0
    processed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failures


EventListener = Callable[[BatchEvent], None]


# -- planning -------------------------------------------------------------------------------------------------

def check_collisions(inputs: list[io.InputFile]) -> None:
    """Fail before any work when two inputs would write stems under the same names (same folder, same stem)."""
    from vsep_core.pipeline import sanitize_filename

    seen: dict[tuple[str, str], str] = {}
    clashes = []
    for item in inputs:
        slot = (item.rel_dir, sanitize_filename(PurePosixPath(item.name).stem).lower())
        if slot in seen:
            clashes.append(f"{seen[slot]} and {item.key}")
        else:
            seen[slot] = item.key
    if clashes:
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise UsageError(f"inputs would write stems under the same names: {'; '.join(clashes[:5])}{more}; "
                         f"rename one of each pair or separate them into different output directories")


def outputs_intact(entry: Entry, out_root: str, verify: str) -> bool:
    """Whether every output recorded for a finished input is still there (and unchanged, for "checksum")."""
    if not entry.outputs:
        return False
    for out in entry.outputs:
        location = io.join(out_root, *out.path.split("/"))
        size = io.size_of(location)
        if size is None or (verify != "exists" and size != out.size):
            return False
        if verify == "checksum" and io.sha256_of(location) != out.sha256:
            return False
    return True


@dataclass
class Plan:
    """Which inputs run (largest first), which are finished, and which have used up their attempts."""

    queue: list[tuple[io.InputFile, Entry | None]]
    finished: list[io.InputFile]
    given_up: list[tuple[io.InputFile, Entry]]
    missing: list[io.InputFile]


def make_plan(inputs: list[io.InputFile], entries: dict[str, Entry], settings_fp: str, out_root: str,
              max_retries: int, verify: str) -> Plan:
    """Sort the inputs into finished (outputs verified), given up, missing and to-do (largest first)."""
    current: dict[str, Entry | None] = {}
    for item in inputs:
        entry = entries.get(item.key)
        if entry is not None and (entry.input_sig != item.sig or entry.settings != settings_fp):
            entry = None  # the input or the settings changed: start afresh
        current[item.key] = entry
    candidates = [i for i in inputs if (e := current[i.key]) is not None and e.status == DONE]
    with ThreadPoolExecutor(8) as pool:
        checks = pool.map(lambda i: outputs_intact(current[i.key], out_root, verify), candidates)
        intact = dict(zip([i.key for i in candidates], checks, strict=True))
    plan = Plan([], [], [], [])
    for item in inputs:
        entry = current[item.key]
        if item.missing:
            plan.missing.append(item)
        elif entry is not None and entry.status == DONE and intact.get(item.key):
            plan.finished.append(item)
        elif entry is not None and entry.status == FAILED and entry.attempts > max_retries:
            plan.given_up.append((item, entry))
        else:
            plan.queue.append((item, entry))
    plan.queue.sort(key=lambda pair: -pair[0].size)
    return plan


# -- running --------------------------------------------------------------------------------------------------

def _validate(settings: BatchSettings) -> None:
    """Check the Separator arguments here (fast, no model, no device) before starting any worker."""
    from vsep_core.separator import Separator

    kwargs = {k: v for k, v in settings.separator_kwargs.items() if k not in ("log_level", "info_only")}
    with keep_log_level():
        Separator(info_only=True, log_level=logging.WARNING, **kwargs)
    if settings.chain:
        from vsep_core.chain import parse_chain

        parse_chain(json.loads(settings.chain))


@contextlib.contextmanager
def keep_log_level() -> Iterator[None]:
    """Restore the "vsep" logger's level afterwards (a `Separator` sets it to its `log_level`)."""
    logger = logging.getLogger("vsep")
    level = logger.level
    try:
        yield
    finally:
        logger.setLevel(level)


def make_pool(settings: BatchSettings, out_root: str, *, workers: int | None, ray_address: str | None,
              num_gpus_per_worker: float | None, num_cpus_per_worker: float | None,
              log_level: int, files: int | None = None) -> WorkerPool:
    """The pool for the mode asked for: Ray actors with an address, else local processes (in-process for 0).

    No more workers are started than there are `files` to separate.
    """
    if ray_address:
        from vsep_core.batch.ray_runner import RayPool

        return RayPool(settings, out_root, address=ray_address, workers=workers,
                       num_gpus_per_worker=num_gpus_per_worker, num_cpus_per_worker=num_cpus_per_worker,
                       log_level=log_level, limit=files)
    from vsep_core.batch.local import InlinePool, ProcessPool, default_local_workers

    if workers == 0:
        return InlinePool(settings, out_root, log_level=log_level)
    device = settings.separator_kwargs.get("device")
    count, devices = default_local_workers(workers, device, num_gpus_per_worker)
    if files is not None:
        count = max(1, min(count, files))
    return ProcessPool(settings, out_root, count, devices=devices, log_level=log_level)


def run_batch(inputs: str, output_dir: str, settings: BatchSettings, *, workers: int | None = None,
              ray_address: str | None = None, num_gpus_per_worker: float | None = None,
              num_cpus_per_worker: float | None = None, max_retries: int = 2, verify: str = "checksum",
              on_event: EventListener | None = None, log_level: int = logging.WARNING,
              pool: WorkerPool | None = None) -> BatchReport:
    """Separate every input of `inputs` (directory, audio file or list file; path or URL) into `output_dir`.

    Resumable: finished inputs whose outputs pass `verify` are skipped, failed ones are retried
    while they have attempts left (``1 + max_retries`` in all), and inputs left ``running`` by
    an interrupted run are queued again. Without `ray_address` the work runs in `workers` local
    processes (default: sized to the machine; 0 = in this process); with it on Ray actors.
    `on_event` is called in this thread for every change (see `BatchEvent`). Returns the report;
    it does not raise for failed files (see `BatchReport.failures`).
    """
    if max_retries < 0:
        raise UsageError(f"--max-retries must be 0 or more, not {max_retries}")
    if verify not in VERIFY_MODES:
        raise UsageError(f"--verify must be one of {', '.join(VERIFY_MODES)}, not {verify!r}")
    if workers is not None and workers < 0:
        raise UsageError(f"--workers must be 0 or more, not {workers}")
    if workers == 0 and ray_address:
        raise UsageError("--workers 0 (in-process) cannot be combined with --ray-address")
    out_root = io.normalize(output_dir)
    _validate(settings)
    found = io.discover_inputs(inputs, exclude=out_root)
    if not found:
        raise UsageError(f"no audio files in {inputs}")
    check_collisions(found)
    fingerprint = settings.fingerprint()
    manifest = Manifest(out_root)
    entries = manifest.open()
    stats = BatchStats(total=len(found))
    failures: dict[str, str] = {}
    processed: list[str] = []
    workers_used = 0

    def emit(kind: str, **kw: Any) -> None:
        if on_event is not None:
            on_event(BatchEvent(kind, stats, **kw))

    try:
        plan = make_plan(found, entries, fingerprint, out_root, max_retries, verify)
        stats.skipped = len(plan.finished)
        for item in plan.missing:
            entry = Entry(item.key, FAILED, (entries.get(item.key).attempts if item.key in entries else 0) + 1,
                          "", fingerprint, error=f"input not found: {item.key}")
            manifest.record(entry)
            failures[item.key] = entry.error or ""
        for item, entry in plan.given_up:
            failures[item.key] = (f"{entry.error} (gave up after {entry.attempts} attempt(s); rerun with a higher "
                                  f"--max-retries, or change the file, to try again)")
        stats.failed = len(failures)
        stats.queued = len(plan.queue)
        emit("plan")
        if plan.queue:
            _clean_staging(out_root)
            pool = pool or make_pool(settings, out_root, workers=workers, ray_address=ray_address,
                                     num_gpus_per_worker=num_gpus_per_worker, num_cpus_per_worker=num_cpus_per_worker,
                                     log_level=log_level, files=len(plan.queue))
            workers_used = pool.size
            try:
                _drive(pool, plan, out_root, fingerprint, max_retries, manifest, stats, failures, processed, emit)
            finally:
                pool.close()
                _clean_staging(out_root)
    finally:
        manifest.close()
    order = {item.key: i for i, item in enumerate(found)}
    ordered = sorted(failures.items(), key=lambda kv: order.get(kv[0], 0))
    return BatchReport(stats, ordered, manifest.path, workers_used, processed)


def _clean_staging(out_root: str) -> None:
    if not io.is_url(out_root):
        shutil.rmtree(Path(out_root) / STATE_DIR / "staging", ignore_errors=True)


def _drive(pool: WorkerPool, plan: Plan, out_root: str, fingerprint: str, max_retries: int, manifest: Manifest,
           stats: BatchStats, failures: dict[str, str], processed: list[str],
           emit: Callable[..., None]) -> None:
    queue: deque[tuple[io.InputFile, int]] = deque()
    for item, entry in plan.queue:
        queue.append((item, entry.attempts if entry is not None else 0))
    inputs = {item.key: item for item, _ in plan.queue}
    attempts = {item.key: n for item, n in queue}
    running: dict[str, WorkerRef] = {}

    def finished(done: Completion) -> None:
        """Record one outcome (under `stop.deferred`: a stop never cuts a manifest line or loses a result)."""
        key = done.task.key
        item = inputs[key]
        running.pop(key, None)
        stats.running = len(running)
        attempts[key] += 1
        result = done.result
        if result is not None and result.ok:
            manifest.record(Entry(key, DONE, attempts[key], item.sig, fingerprint, result.outputs,
                                  result.audio_seconds, result.seconds, None, done.worker.id))
            stats.done += 1
            stats.audio_seconds += result.audio_seconds
            stats.busy_seconds += result.seconds
            processed.append(key)
            emit("done", key=key, worker=done.worker, result=result)
            return
        error = result.error if result is not None else done.error or "worker lost"
        if result is None:
            stats.workers_lost += 1
            emit("worker_lost", key=key, worker=done.worker, error=error)
        manifest.record(Entry(key, FAILED, attempts[key], item.sig, fingerprint, error=error,
                              seconds=result.seconds if result else 0.0, worker=done.worker.id))
        retryable = result is None or result.retryable
        if retryable and attempts[key] <= max_retries:
            stats.retries += 1
            if result is None:
                queue.appendleft((item, attempts[key]))  # lost with its worker: first in line again
            else:
                queue.append((item, attempts[key]))
            emit("retry", key=key, worker=done.worker, error=error)
        else:
            failures[key] = error
            stats.failed += 1
            emit("failed", key=key, worker=done.worker, error=error)

    try:
        _run_queue(pool, queue, running, attempts, out_root, fingerprint, manifest, stats, emit, finished)
    except KeyboardInterrupt:  # a stop signal: let the workers drop or publish their files, record the published
        with stop.deferred():  # a second signal does not cut this short
            for done in pool.stop(STOP_GRACE_S):
                if done.result is not None and done.result.ok:
                    finished(done)
        raise


def _run_queue(pool: WorkerPool, queue: deque[tuple[io.InputFile, int]], running: dict[str, WorkerRef],
               attempts: dict[str, int], out_root: str, fingerprint: str, manifest: Manifest, stats: BatchStats,
               emit: Callable[..., None], finished: Callable[[Completion], None]) -> None:
    pool.start()
    last_tick = 0.0
    while queue or running:
        for worker in pool.idle():
            if not queue:
                break
            item, _ = queue.popleft()
            task = Task(item.key, item.key, out_root, item.rel_dir, attempts[item.key] + 1)
            with stop.deferred():
                manifest.record(Entry(item.key, RUNNING, attempts[item.key], item.sig, fingerprint,
                                      worker=worker.id))
            running[item.key] = worker
            stats.running = len(running)
            pool.submit(worker, task)
            emit("started", key=item.key, worker=worker)
        completions = pool.poll(0.25)
        with stop.deferred():
            for done in completions:
                finished(done)
        if time.monotonic() - last_tick > 0.5:
            last_tick = time.monotonic()
            emit("tick")
