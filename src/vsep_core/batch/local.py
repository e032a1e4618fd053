"""Local workers: one process per worker, each loading the model(s) once (or the driver itself, ``--workers 0``).

Each worker talks to the driver over its own pipe and holds one file at a time, so when a
worker process dies (killed, out of memory, a crash in native code) the driver knows exactly
which file it had, queues that file again and starts a replacement worker. Processes are
started with ``forkserver`` where the platform has it (fast: modules are imported once) and
``spawn`` elsewhere; the driver's ``sys.path`` and environment are handed to each worker, so
what the driver can import the workers can too.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from multiprocessing.connection import Connection, wait
from typing import Any

from vsep_core.batch.runner import BatchAbortedError, Completion, WorkerRef, replace_lost_worker
from vsep_core.batch.worker import BatchSettings, Task, TaskResult, WorkerState, describe_error, staging_root_for
from vsep_core.ipc import requests_until_stop

log = logging.getLogger("vsep")

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
CPU_THREADS_PER_WORKER = 4


def _gpu_count() -> int:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_local_workers(workers: int | None, device: str | None,
                          num_gpus_per_worker: float | None = None) -> tuple[int, list[str | None]]:
    """(number of workers, device of each) for this machine.

    With CUDA GPUs (and no ``--device`` other than cuda): one worker per GPU, or
    ``1 / num_gpus_per_worker`` workers per GPU when that is below 1 (e.g. 0.5 -> two), each
    pinned to ``cuda:N`` in turn. On CPU: one worker per 4 cores (at least one), each using
    its share of the cores. ``workers`` overrides the count; devices still go round the GPUs.
    """
    gpus = 0
    if device in (None, "", "auto", "cuda"):
        gpus = _gpu_count()
    if gpus:
        per_gpu = max(1, int(round(1 / num_gpus_per_worker))) if num_gpus_per_worker and num_gpus_per_worker < 1 \
            else 1
        count = workers if workers else gpus * per_gpu
        return count, [f"cuda:{i % gpus}" for i in range(count)]
    cores = os.cpu_count() or 1
    count = workers if workers else max(1, cores // CPU_THREADS_PER_WORKER)
    return count, [None] * count


def _worker_main(settings: BatchSettings, worker_id: str, staging_root: str | None, device: str | None,
                 log_level: int, conn: Connection, sys_path: list[str], environ: dict[str, str],
                 threads: int) -> None:
    """Body of a worker process: load once, then answer tasks until told to stop (None) or the pipe closes."""
    sys.path[:] = sys_path
    os.environ.clear()
    os.environ.update(environ)
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    try:
        state = WorkerState(settings, worker_id, staging_root, device, log_level)
    except BaseException as exc:  # noqa: BLE001 - reported to the driver, which stops the batch
        conn.send(("load_error", describe_error(exc)))
        return
    conn.send(("ready", os.getpid()))
    try:
        for task in requests_until_stop(conn):
            conn.send(("result", state.process(task)))
    except (KeyboardInterrupt, BrokenPipeError):
        return  # Ctrl-C reaches the whole process group: the driver records the file as not finished


class _Slot:
    def __init__(self, ref: WorkerRef, process: Any, conn: Connection):
        self.ref = ref
        self.process = process
        self.conn = conn
        self.ready = False
        self.task: Task | None = None


class ProcessPool:
    """`size` local worker processes; a dead one is replaced (within a budget) and its file re-queued."""

    def __init__(self, settings: BatchSettings, out_root: str, size: int, devices: list[str | None] | None = None,
                 log_level: int = logging.WARNING, max_restarts: int | None = None):
        self.settings = settings
        self.size = max(1, size)
        self.devices = devices or [None] * self.size
        self.staging_root = staging_root_for(out_root)
        self.log_level = log_level
        self.max_restarts = max_restarts if max_restarts is not None else 2 * self.size + 8
        self.restarts = 0
        self.slots: list[_Slot] = []
        self._serial = 0
        methods = multiprocessing.get_all_start_methods()
        self._ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            self._ctx.set_forkserver_preload(["vsep_core.batch.local", "vsep_core.separator", "vsep_core.plugins"])
        self._threads = max(1, (os.cpu_count() or 1) // self.size)

    def _spawn(self, index: int) -> _Slot:
        self._serial += 1
        worker_id = f"w{index}.{self._serial}"
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main, name=f"vsep-batch-{worker_id}", daemon=True,
            args=(self.settings, worker_id, self.staging_root, self.devices[index % len(self.devices)],
                  self.log_level, child, list(sys.path), dict(os.environ), self._threads))
        process.start()
        child.close()
        return _Slot(WorkerRef(worker_id, process.pid), process, parent)

    def start(self) -> None:
        """Start every worker process; each reports "ready" once its model is loaded."""
        self.slots = [self._spawn(i) for i in range(self.size)]

    def idle(self) -> list[WorkerRef]:
        """Ready workers without a task."""
        return [s.ref for s in self.slots if s.ready and s.task is None]

    def submit(self, worker: WorkerRef, task: Task) -> None:
        """Send one task to a worker (a broken pipe shows up as a lost worker at the next poll)."""
        slot = next(s for s in self.slots if s.ref is worker)
        slot.task = task
        try:
            slot.conn.send(task)
        except OSError:
            pass

    def poll(self, timeout: float) -> list[Completion]:
        """Results and lost workers; dead workers are replaced while the restart budget lasts."""
        waitables: dict[Any, _Slot] = {}
        for s in self.slots:
            waitables[s.conn] = s
            waitables[s.process.sentinel] = s
        ready = wait(list(waitables), timeout) if waitables else []
        out: list[Completion] = []
        dead: list[_Slot] = []
        for obj in ready:
            slot = waitables[obj]
            if obj is slot.conn:
                try:
                    while slot.conn.poll():
                        self._message(slot, slot.conn.recv(), out)
                except (EOFError, OSError):
                    if slot not in dead:
                        dead.append(slot)
            elif slot not in dead:
                dead.append(slot)
        for slot in dead:
            self._lost(slot, out)
        return out

    def _message(self, slot: _Slot, message: tuple[str, Any], out: list[Completion]) -> None:
        kind, payload = message
        if kind == "ready":
            slot.ready = True
        elif kind == "load_error":
            raise BatchAbortedError(f"a worker could not load the model: {payload}")
        elif kind == "result" and slot.task is not None:
            result: TaskResult = payload
            out.append(Completion(slot.ref, slot.task, result))
            slot.task = None

    def _lost(self, slot: _Slot, out: list[Completion]) -> None:
        if slot not in self.slots:
            return
        slot.process.join(1)
        code = slot.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with status {code}"
        log.warning("batch worker %s (pid %s) %s%s", slot.ref.id, slot.ref.pid, how,
                    f" while separating {slot.task.key}" if slot.task else "")
        if slot.task is not None:
            out.append(Completion(slot.ref, slot.task, None, f"worker {slot.ref.id} (pid {slot.ref.pid}) {how}"))
        slot.conn.close()
        index = self.slots.index(slot)
        self.restarts += 1
        replace_lost_worker(self.slots, index, self._spawn, self.restarts, self.max_restarts,
                            f"batch workers keep dying ({self.restarts} lost, last {how})")

    def close(self) -> None:
        """Ask every worker to stop, then end those that do not within a few seconds."""
        for s in self.slots:
            try:
                s.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        for s in self.slots:
            s.process.join(max(0.0, deadline - time.monotonic()))
            if s.process.is_alive():
                s.process.terminate()
                s.process.join(2)
            if s.process.is_alive():
                s.process.kill()
                s.process.join(1)
            s.conn.close()
        self.slots = []


class InlinePool:
    """One worker inside the driver process (``--workers 0``): for debugging and for ``memory://`` tests."""

    size = 1

    def __init__(self, settings: BatchSettings, out_root: str, log_level: int = logging.WARNING):
        self.settings = settings
        self.staging_root = staging_root_for(out_root)
        self.log_level = log_level
        self.ref = WorkerRef("inline", os.getpid())
        self.state: WorkerState | None = None
        self.task: Task | None = None

    def start(self) -> None:
        """Load the model(s) in this process."""
        from vsep_core.batch.runner import keep_log_level

        try:
            with keep_log_level():
                self.state = WorkerState(self.settings, self.ref.id, self.staging_root, None, self.log_level)
        except Exception as exc:
            raise BatchAbortedError(f"could not load the model: {describe_error(exc)}") from exc

    def idle(self) -> list[WorkerRef]:
        """The one worker, when it holds no task."""
        return [self.ref] if self.state is not None and self.task is None else []

    def submit(self, worker: WorkerRef, task: Task) -> None:
        """Hold the task; it runs at the next poll."""
        self.task = task

    def poll(self, timeout: float) -> list[Completion]:
        """Run the held task now."""
        if self.task is None or self.state is None:
            return []
        task, self.task = self.task, None
        return [Completion(self.ref, task, self.state.process(task))]

    def close(self) -> None:
        """Drop the model."""
        self.state = None
