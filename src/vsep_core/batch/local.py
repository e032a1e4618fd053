"""Local workers: one process per worker, each loading the model(s) once (or the driver itself, ``--workers 0``).

Each worker talks to the driver over its own pipe and holds one file at a time, so when a
worker process dies (killed, out of memory, a crash in native code) the driver knows exactly
which file it had, queues that file again and starts a replacement worker. Processes are
started with ``forkserver`` where the platform has it (fast: modules are imported once) and
``spawn`` elsewhere; the driver's ``sys.path`` and environment are handed to each worker, so
what the driver can import the workers can too. The process, its pipe, its liveness and the
restart budget are core's one worker abstraction, `vsep_core.ipc` (the server's job workers
use it too). A stop (SIGTERM, SIGHUP, Ctrl-C) reaching the driver is forwarded to every
worker: each drops its file (removing its staging folder) or, when it is already moving the
file's stems to their final names, finishes that and reports it, so the manifest records it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from vsep_core import stop
from vsep_core.batch.runner import BatchAbortedError, Completion, WorkerRef
from vsep_core.batch.worker import BatchSettings, Task, TaskResult, WorkerState, describe_error, staging_root_for
from vsep_core.ipc import RestartBudget, WorkerProcess, ready_workers, requests_until_stop, start_method_context

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


def _worker_main(conn: Connection, settings: BatchSettings, worker_id: str, staging_root: str | None,
                 device: str | None, log_level: int, sys_path: list[str], environ: dict[str, str],
                 threads: int) -> None:
    """Body of a worker process (run by `vsep_core.ipc.child_main`): load once, then answer tasks until told
    to stop (None), stopped by a signal, or the pipe closes."""
    sys.path[:] = sys_path
    os.environ.clear()
    os.environ.update(environ)
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))
    try:
        state = WorkerState(settings, worker_id, staging_root, device, log_level)
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops the batch
        conn.send(("load_error", describe_error(exc)))
        return
    conn.send(("ready", os.getpid()))
    for task in requests_until_stop(conn):
        state.process(task, report=lambda result: conn.send(("result", result)))


class _Slot:
    def __init__(self, ref: WorkerRef, worker: WorkerProcess):
        self.ref = ref
        self.worker = worker
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
        self.budget = RestartBudget(max_restarts if max_restarts is not None else 2 * self.size + 8)
        self.slots: list[_Slot] = []
        self._serial = 0
        self._ctx = start_method_context(["vsep_core.batch.local", "vsep_core.separator", "vsep_core.plugins"])
        self._threads = max(1, (os.cpu_count() or 1) // self.size)

    def _spawn(self, index: int) -> _Slot:
        self._serial += 1
        worker_id = f"w{index}.{self._serial}"
        worker = WorkerProcess(
            _worker_main, (self.settings, worker_id, self.staging_root, self.devices[index % len(self.devices)],
                           self.log_level, list(sys.path), dict(os.environ), self._threads),
            name=f"vsep-batch-{worker_id}", ctx=self._ctx)
        return _Slot(WorkerRef(worker_id, worker.pid), worker)

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
        slot.worker.send(task)

    def poll(self, timeout: float) -> list[Completion]:
        """Results and lost workers; dead workers are replaced while the restart budget lasts."""
        out: list[Completion] = []
        by_worker = {id(s.worker): s for s in self.slots}
        ready = ready_workers([s.worker for s in self.slots], timeout)
        with stop.deferred():  # a result taken off a pipe reaches the driver
            for worker in ready:
                slot = by_worker[id(worker)]
                for message in worker.receive():
                    self._message(slot, message, out)
                if worker.lost is not None:
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
        how = slot.worker.lost
        log.warning("batch worker %s (pid %s) %s%s", slot.ref.id, slot.ref.pid, how,
                    f" while separating {slot.task.key}" if slot.task else "")
        if slot.task is not None:
            out.append(Completion(slot.ref, slot.task, None, f"worker {slot.ref.id} (pid {slot.ref.pid}) {how}"))
        slot.worker.kill()
        index = self.slots.index(slot)
        if self.budget.spend():
            self.slots[index] = self._spawn(index)
            return
        self.slots.pop(index)
        if not self.slots:
            raise BatchAbortedError(f"batch workers keep dying ({self.budget.used} lost, last {how}); "
                                    f"finished files are recorded, rerun to go on")

    def stop(self, grace: float) -> list[Completion]:
        """Forward a stop to every worker (SIGTERM: each drops its file, or finishes publishing it) and wait
        up to `grace` s for them to end; returns the files they finished meanwhile."""
        out: list[Completion] = []
        for s in self.slots:
            s.worker.interrupt()
        deadline = time.monotonic() + grace
        running = list(self.slots)
        by_worker = {id(s.worker): s for s in running}
        while running and time.monotonic() < deadline:
            for worker in ready_workers([s.worker for s in running], min(0.2, max(0.0, deadline - time.monotonic()))):
                slot = by_worker[id(worker)]
                for message in worker.receive():
                    if message[0] == "result":
                        self._message(slot, message, out)
                if worker.lost is not None:
                    running.remove(slot)
        return out

    def close(self) -> None:
        """Ask every worker to stop, then end those that do not within a few seconds."""
        for s in self.slots:
            s.worker.send(None)
        for s in self.slots:
            s.worker.close(grace=5)
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
        self._finished: list[Completion] = []

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
        if self.task is not None and self.state is not None:
            task, self.task = self.task, None
            self.state.process(task, report=lambda result: self._finished.append(Completion(self.ref, task, result)))
        out, self._finished = self._finished, []
        return out

    def stop(self, grace: float) -> list[Completion]:
        """The file this process finished publishing as the stop came (the stop itself is already here)."""
        out, self._finished = self._finished, []
        return out

    def close(self) -> None:
        """Drop the model."""
        self.state = None
