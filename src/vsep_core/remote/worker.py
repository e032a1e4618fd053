"""The bounded worker pool: N worker processes fed by one queue, plus the retention sweeper.

Each pool slot is a thread that owns one long-lived worker *process* (core's one worker
abstraction, `vsep_core.ipc.WorkerProcess`, spawned, so a model crash, an out-of-memory
kill or a cancelled job never takes the server down, and a model stays loaded between jobs
of the same settings). A worker whose server is gone (even killed with SIGKILL) stops like on
SIGTERM and exits without a traceback. The thread hands the process one job at a
time over a pipe and writes its progress to the job store. Cancelling a running job kills
its process; the slot starts a fresh one for the next job.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from vsep_core.ipc import WorkerProcess, requests_until_stop
from vsep_core.remote.files import Storage, file_hash
from vsep_core.remote.store import (
    CANCELLED,
    COMPLETED,
    ERROR,
    EXPIRED,
    FINISHED,
    PROCESSING,
    SUBMITTED,
    JobStore,
)

log = logging.getLogger("vsep.remote")

ProgressFn = Callable[[int, "int | None"], None]
"""progress(percent 0-100, current model index or None)."""

INTERRUPTED = "the server stopped while this job was running; submit it again"


@dataclass
class JobRequest:
    """Everything a worker process needs to run one job (plain data, so it crosses the pipe)."""

    task_id: str
    input_path: str
    output_dir: str
    model_file_dir: str | None
    models: list[str]
    preset: str | None = None
    separator_kwargs: dict[str, Any] = field(default_factory=dict)
    custom_output_names: dict[str, str] | None = None
    device: str | None = None
    chain: dict[str, Any] | None = None


def import_object(path: str) -> Any:
    """``"package.module:attribute"`` -> the attribute."""
    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _job_worker(conn: Connection, runner_path: str, env: dict[str, str]) -> None:
    """Worker process (run by `vsep_core.ipc.child_main`): run jobs from ``conn`` with the runner until told to
    stop. A stop signal or a lost server ends it quietly (`child_main`), after the job's ``finally`` blocks."""
    os.environ.update(env)
    runner = import_object(runner_path)
    warm_up = getattr(runner, "warm_up", None)
    if callable(warm_up):
        try:
            warm_up()
        except Exception:  # the job itself will report the problem
            pass
    for request in requests_until_stop(conn):

        def progress(percent: int, model_index: int | None = None) -> None:
            conn.send(("progress", int(percent), model_index))

        try:
            reply: tuple[str, Any] = ("done", [str(p) for p in runner(request, progress)])
        except Exception as exc:  # reported to the client as the job's error
            from vsep_core.errors import VsepError

            message = str(exc) if isinstance(exc, VsepError) else f"{type(exc).__name__}: {exc}"
            reply = ("error", message or type(exc).__name__)
        conn.send(reply)


def public_error(message: str, input_path: str, original_name: str, server_dirs: list[str]) -> str:
    """A job's error as the client may see it: the uploaded file's own name for the server's copy, and any other
    path inside the server's data folders cut to its file name."""
    message = message.replace(input_path, original_name)
    for folder in server_dirs:
        message = re.sub(re.escape(folder.rstrip(os.sep)) + r"[^\s'\"]*", lambda m: Path(m.group()).name, message)
    return message


class _Cancelled(Exception):
    pass


class _Slot:
    """One pool slot: a supervising thread and its worker process (a `vsep_core.ipc.WorkerProcess`)."""

    def __init__(self, pool: WorkerPool, index: int, env: dict[str, str]):
        self.pool = pool
        self.index = index
        self.env = env
        self.worker: WorkerProcess | None = None
        self.task_id: str | None = None
        self.thread = threading.Thread(target=self._loop, name=f"vsep-worker-{index}", daemon=True)

    def _ensure_process(self) -> WorkerProcess:
        if self.worker is not None and self.worker.alive():
            return self.worker
        self._kill()
        self.worker = WorkerProcess(_job_worker, (self.pool.runner, self.env), name=f"vsep-worker-{self.index}",
                                    ctx=multiprocessing.get_context("spawn"))
        return self.worker

    def _kill(self) -> None:
        if self.worker is not None:
            self.worker.kill()
        self.worker = None

    def _loop(self) -> None:
        while True:
            if not self.pool._stopping.is_set():
                try:  # start (or restart) the worker before the next job arrives
                    self._ensure_process()
                except Exception:
                    log.exception("worker %d: cannot start a worker process", self.index)
            task_id = self.pool._queue.get()
            if task_id is None or self.pool._stopping.is_set():
                break
            try:
                self._run(task_id)
            except Exception:  # never let one job kill the slot
                log.exception("worker %d: job %s failed unexpectedly", self.index, task_id)
                self.pool._finish_failed(task_id, "internal server error while running the job; see the server log")
            finally:
                self.task_id = None
        self.stop_process()

    def stop_process(self) -> None:
        """Ask the worker process to exit, then make sure it has."""
        if self.worker is not None:
            self.worker.close(grace=2)
        self.worker = None

    def _run(self, task_id: str) -> None:
        pool = self.pool
        job = pool.store.update(task_id, only_if_status=(SUBMITTED,), status=PROCESSING, progress=5,
                                started_at=time.time())
        if job is None:  # cancelled while queued, or already handled
            return
        self.task_id = task_id
        request = JobRequest(
            task_id=task_id,
            input_path=str(pool.storage.input_path(task_id, job.input_name)),
            output_dir=str(pool.storage.output_dir(task_id)),
            model_file_dir=pool.model_file_dir,
            models=list(job.models_used),
            preset=job.preset,
            separator_kwargs=dict(job.options.get("separator", {})),
            custom_output_names=job.options.get("custom_output_names"),
            device=pool.device,
            chain=job.options.get("chain"),
        )
        Path(request.output_dir).mkdir(parents=True, exist_ok=True)
        try:
            worker = self._ensure_process()
            worker.send(request)
            kind, payload = self._wait(task_id, worker)
        except _Cancelled:
            self._kill()
            pool._cancel.discard(task_id)
            pool.storage.clear_output(task_id)
            pool.storage.remove_input(task_id)
            pool.store.update(task_id, status=CANCELLED, error="cancelled by request", finished_at=time.time())
            return
        if kind == "done":
            pool._finish_completed(task_id, payload)
        else:
            server_dirs = [str(pool.storage.root.resolve()), str(pool.storage.root)]
            pool._finish_failed(task_id, public_error(str(payload), request.input_path, job.original_filename,
                                                      server_dirs))

    def _wait(self, task_id: str, worker: WorkerProcess) -> tuple[str, Any]:
        pool = self.pool
        last: tuple[int, int | None] = (5, None)
        while True:
            if task_id in pool._cancel:
                raise _Cancelled
            if pool._stopping.is_set():
                self._kill()
                return "error", INTERRUPTED
            for message in worker.receive(0.2):
                if message[0] != "progress":
                    return message[0], message[1]
                percent, index = max(5, min(99, message[1])), message[2]
                if (percent, index) != last:
                    last = (percent, index)
                    changes: dict[str, Any] = {"progress": percent}
                    if index is not None:
                        changes["current_model_index"] = index
                    pool.store.update(task_id, only_if_status=(PROCESSING,), **changes)
            if worker.lost is not None:
                how = worker.lost
                self._kill()
                return "error", f"the worker process died ({how}) while running this job; see the server log, " \
                                "and check the input and the server's free memory"


class WorkerPool:
    """Runs queued jobs on ``workers`` worker processes; see the module docstring."""

    def __init__(self, store: JobStore, storage: Storage, runner: str, workers: int = 1,
                 model_file_dir: str | None = None, worker_env: list[dict[str, str]] | None = None,
                 on_job_finished: Callable[[], None] | None = None, device: str | None = None):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.store = store
        self.storage = storage
        self.runner = runner
        self.model_file_dir = model_file_dir
        self.on_job_finished = on_job_finished
        self.device = device
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancel: set[str] = set()
        self._stopping = threading.Event()
        envs = worker_env or [{} for _ in range(workers)]
        self.slots = [_Slot(self, i, envs[i % len(envs)]) for i in range(workers)]

    def start(self) -> list[str]:
        """Recover from a previous run, queue the jobs it left queued, start the slots.

        Returns the ids of jobs that were running when the previous server stopped (now failed).
        """
        interrupted = self.store.interrupt_running(INTERRUPTED)
        for task_id in interrupted:
            self.storage.clear_output(task_id)
            self.storage.remove_input(task_id)
        for job in self.store.with_status(SUBMITTED):
            self._queue.put(job.task_id)
        for slot in self.slots:
            slot.thread.start()
        return interrupted

    def submit(self, task_id: str) -> None:
        """Queue a job that is already in the store with status ``submitted``."""
        self._queue.put(task_id)

    def queued(self) -> int:
        """Jobs waiting for a worker."""
        return self.store.count(SUBMITTED)

    def cancel(self, task_id: str) -> bool:
        """Cancel a queued or running job; False when it is unknown or already finished."""
        job = self.store.update(task_id, only_if_status=(SUBMITTED,), status=CANCELLED,
                                error="cancelled by request", finished_at=time.time())
        if job is not None:
            self.storage.remove_input(task_id)
            return True
        job = self.store.get(task_id)
        if job is None or job.status != PROCESSING:
            return False
        self.store.update(task_id, cancel_requested=True)
        self._cancel.add(task_id)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the slots; a running job is failed with a reason, queued jobs stay queued."""
        self._stopping.set()
        for _ in self.slots:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for slot in self.slots:
            slot.thread.join(max(0.1, deadline - time.monotonic()))
        for slot in self.slots:
            slot._kill()

    def _finish_completed(self, task_id: str, outputs: list[str]) -> None:
        out_dir = self.storage.output_dir(task_id).resolve()
        files: dict[str, str] = {}
        size = 0
        for name in outputs:
            path = Path(name)
            path = (path if path.is_absolute() else out_dir / path).resolve()
            if path.parent != out_dir or not path.is_file():
                log.warning("job %s: ignoring output %s (not a file in the job's output directory)", task_id, name)
                continue
            files[file_hash(path.name)] = path.name
            size += path.stat().st_size
        self.storage.remove_input(task_id)
        self._cancel.discard(task_id)
        if not files:
            self._finish_failed(task_id, "separation produced no output files")
            return
        self.store.update(task_id, status=COMPLETED, progress=100, files=files, size_bytes=size,
                          finished_at=time.time())
        if self.on_job_finished:
            self.on_job_finished()

    def _finish_failed(self, task_id: str, reason: str) -> None:
        self.storage.clear_output(task_id)
        self.storage.remove_input(task_id)
        self.store.update(task_id, status=ERROR, progress=0, error=reason, finished_at=time.time())
        self._cancel.discard(task_id)


class Sweeper:
    """Removes results older than ``retention_s`` and the oldest results beyond ``max_bytes``.

    A swept job keeps its record with status ``expired`` (so a late client learns why its
    download is gone); expired records are deleted after ``forget_after_s``.
    """

    def __init__(self, store: JobStore, storage: Storage, retention_s: float, max_bytes: int,
                 interval_s: float = 60.0, forget_after_s: float = 7 * 24 * 3600):
        self.store = store
        self.storage = storage
        self.retention_s = retention_s
        self.max_bytes = max_bytes
        self.interval_s = interval_s
        self.forget_after_s = forget_after_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="vsep-sweeper", daemon=True)

    def start(self) -> None:
        """Sweep now and then every ``interval_s`` seconds (or when poked)."""
        self._thread.start()

    def poke(self) -> None:
        """Sweep soon (called when a job finishes)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop sweeping."""
        self._stop.set()
        self._wake.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception:
                log.exception("result sweep failed")
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def _expire(self, task_id: str, why: str) -> None:
        self.storage.remove(task_id)
        self.store.update(task_id, only_if_status=FINISHED, status=EXPIRED, files={}, size_bytes=0,
                          error=f"the results were removed ({why}); submit the job again")

    def sweep(self, now: float | None = None) -> list[str]:
        """Apply the retention time and the size cap once; return the ids of jobs expired."""
        with self._lock:
            now = time.time() if now is None else now
            expired = []
            finished = self.store.finished_oldest_first()
            kept = []
            for job in finished:
                if (job.finished_at or job.updated_at) < now - self.retention_s:
                    self._expire(job.task_id, f"older than the retention time of {self.retention_s / 3600:g} h")
                    expired.append(job.task_id)
                else:
                    kept.append(job)
            total = sum(j.size_bytes for j in kept)
            for job in kept:
                if total <= self.max_bytes:
                    break
                self._expire(job.task_id, f"the server's storage cap of {self.max_bytes // 2**20} MiB was reached")
                expired.append(job.task_id)
                total -= job.size_bytes
            for job in self.store.with_status(EXPIRED):
                if job.updated_at < now - self.forget_after_s:
                    self.store.delete(job.task_id)
            return expired
