"""Ray workers: one actor per device, each loading the model(s) once and separating many files.

Ray is imported here only, and only when a batch runs with ``--ray-address``. The driver
keeps the queue (largest files first) and gives each actor one file at a time. An actor that
dies (node lost, out of memory, a crash) is restarted by Ray itself (the actor's
``max_restarts``; its task is not retried by Ray, ``max_task_retries=0``, so the driver knows
the file was lost): its file goes back to the front of the queue and the actor gets work again
once Ray has restarted it; an actor that Ray will not restart any more leaves the pool. On a
stop (SIGTERM, Ctrl-C) the driver waits, up to its grace time, for the files the actors hold
(a running Ray actor task cannot be interrupted), records them, then kills the actors.

Every node needs vsep-core and the plugins of the model installed, and must reach the
inputs, the output directory (a shared mount or a URL such as ``s3://``) and the models (a
shared ``--model_file_dir``, or the download cache of each node).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from vsep_core.batch.runner import BatchAbortedError, Completion, WorkerRef
from vsep_core.batch.worker import BatchSettings, Task, TaskResult, WorkerState, describe_error, staging_root_for
from vsep_core.errors import UsageError

log = logging.getLogger("vsep")

RESTARTS_PER_ACTOR = 3
"""How often Ray restarts one actor that died (its ``max_restarts``) before it leaves the pool."""


class RayWorker:
    """The body of a Ray actor (turned into one with ``ray.remote`` by `RayPool`)."""

    def __init__(self, settings: BatchSettings, worker_id: str, staging_root: str | None, device: str | None,
                 log_level: int):
        self.error: str | None = None
        self.state: WorkerState | None = None
        try:
            self.state = WorkerState(settings, worker_id, staging_root, device, log_level)
        except Exception as exc:  # noqa: BLE001 - reported by ready(), the driver stops the batch
            self.error = describe_error(exc)

    def ready(self) -> tuple[int, str, str | None]:
        """(process id, host name, load error or None)."""
        return os.getpid(), socket.gethostname(), self.error

    def process(self, task: Task) -> TaskResult:
        """Separate one file (see `WorkerState.process`)."""
        if self.state is None:
            return TaskResult(task.key, False, error=f"worker could not load the model: {self.error}")
        return self.state.process(task)


class _Slot:
    def __init__(self, ref: WorkerRef, ready_ref: Any):
        self.ref = ref
        self.ready_ref: Any = ready_ref
        self.task: Task | None = None
        self.task_ref: Any = None


class RayPool:
    """Ray actors on the cluster at `address` ("auto", "ray://host:port", or "local" to start one here).

    When this process is already connected to Ray (``ray.init`` was called), that connection
    is used and left open. Actors ask for `num_gpus_per_worker` GPUs (default: 1 when the
    cluster has GPUs, else 0) and `num_cpus_per_worker` CPUs (default 1); their number is
    `workers`, or as many as the cluster's resources hold at the start (but not more than `limit`,
    the number of files to separate).
    """

    def __init__(self, settings: BatchSettings, out_root: str, *, address: str, workers: int | None = None,
                 num_gpus_per_worker: float | None = None, num_cpus_per_worker: float | None = None,
                 log_level: int = logging.WARNING, max_restarts: int | None = None, limit: int | None = None):
        self.settings = settings
        self.out_root = out_root
        self.address = address
        self.requested = workers
        self.num_gpus = num_gpus_per_worker
        self.num_cpus = num_cpus_per_worker
        self.log_level = log_level
        self.staging_root = staging_root_for(out_root)
        self.max_restarts = max_restarts
        self.limit = limit
        self.restarts = 0
        self.size = workers or 0
        self.slots: list[_Slot] = []
        self._serial = 0
        self._owns_ray = False
        self._actor_cls: Any = None
        self._ray: Any = None
        self._started = 0.0
        self._warned_slow = False

    def _connect(self) -> Any:
        try:
            import ray
        except ImportError:
            raise UsageError("--ray-address needs Ray: pip install 'vsep-core[ray]'") from None
        if not ray.is_initialized():
            try:
                ray.init(address=None if self.address == "local" else self.address, log_to_driver=True,
                         logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UsageError(f"cannot connect to Ray at {self.address!r}: {exc} (start a cluster with "
                                 f"`ray start --head`, or use --ray-address local)") from exc
            self._owns_ray = True
        return ray

    def start(self) -> None:
        """Connect, size the pool from the cluster's resources, and create the actors."""
        ray = self._ray = self._connect()
        resources = ray.cluster_resources()
        gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 0))
        if self.num_gpus is None:
            self.num_gpus = 1.0 if gpus else 0.0
        if self.num_gpus > 0 and not gpus:
            raise UsageError("the Ray cluster has no GPUs: pass --num-gpus-per-worker 0 to run on its CPUs")
        if self.num_cpus is None:
            self.num_cpus = 1.0
        if not self.size:
            self.size = int(gpus // self.num_gpus) if self.num_gpus else int(cpus // max(self.num_cpus, 1e-3))
            self.size = max(1, self.size)
            if self.limit:
                self.size = min(self.size, self.limit)
        if self.max_restarts is None:
            self.max_restarts = RESTARTS_PER_ACTOR
        device = self.settings.separator_kwargs.get("device")
        self._device = device if device or self.num_gpus else "cpu"
        self._actor_cls = ray.remote(RayWorker)
        self._started = time.monotonic()
        self.slots = [self._spawn(i) for i in range(self.size)]
        log.info("Ray: %d worker(s), %g GPU and %g CPU each (cluster: %g GPU, %g CPU)", self.size, self.num_gpus,
                 self.num_cpus, gpus, cpus)

    def _spawn(self, index: int) -> _Slot:
        self._serial += 1
        worker_id = f"r{index}.{self._serial}"
        actor = self._actor_cls.options(num_gpus=self.num_gpus, num_cpus=self.num_cpus,
                                        max_restarts=self.max_restarts, max_task_retries=0,
                                        name=None).remote(self.settings, worker_id, self.staging_root, self._device,
                                                          self.log_level)
        return _Slot(WorkerRef(worker_id, None, None, actor), actor.ready.remote())

    def idle(self) -> list[WorkerRef]:
        """Actors that have loaded the model and hold no file."""
        return [s.ref for s in self.slots if s.ready_ref is None and s.task is None]

    def submit(self, worker: WorkerRef, task: Task) -> None:
        """Start one file on an actor."""
        slot = next(s for s in self.slots if s.ref is worker)
        slot.task = task
        slot.task_ref = worker.handle.process.remote(task)

    def poll(self, timeout: float) -> list[Completion]:
        """Finished files, and files whose actor died (the actor is replaced while the budget lasts)."""
        ray = self._ray
        owners: dict[Any, _Slot] = {}
        for s in self.slots:
            if s.ready_ref is not None:
                owners[s.ready_ref] = s
            elif s.task_ref is not None:
                owners[s.task_ref] = s
        if not owners:
            time.sleep(timeout)
            return []
        refs = list(owners)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out: list[Completion] = []
        for ref in ready:
            slot = owners[ref]
            if ref is slot.ready_ref:
                self._on_ready(slot, out)
            else:
                self._on_result(slot, out)
        if not self._warned_slow and any(s.ready_ref is not None for s in self.slots) \
                and time.monotonic() - self._started > 120:
            self._warned_slow = True
            log.warning("Ray actors are still starting after 2 minutes: does the cluster have the resources asked "
                        "for (%g GPU, %g CPU per worker)?", self.num_gpus, self.num_cpus)
        return out

    def _on_ready(self, slot: _Slot, out: list[Completion]) -> None:
        from ray.exceptions import RayError

        try:
            pid, node, error = self._ray.get(slot.ready_ref)
        except RayError as exc:  # Ray will not (or could not) restart it
            self._drop(slot, f"worker {slot.ref.id} died while starting: {describe_error(exc)}")
            return
        if error:
            raise BatchAbortedError(f"a Ray worker could not load the model: {error}")
        slot.ref.pid, slot.ref.node = pid, node
        slot.ready_ref = None

    def _on_result(self, slot: _Slot, out: list[Completion]) -> None:
        from ray.exceptions import RayActorError, RayError

        task = slot.task
        assert task is not None
        try:
            result = self._ray.get(slot.task_ref)
        except RayActorError as exc:
            reason = (f"worker {slot.ref.id} (pid {slot.ref.pid} on {slot.ref.node}) died: "
                      f"{type(exc).__name__}")
            log.warning("%s", reason)
            slot.task, slot.task_ref = None, None
            out.append(Completion(slot.ref, task, None, reason))
            self.restarts += 1
            slot.ready_ref = slot.ref.handle.ready.remote()  # back once Ray has restarted it, an error if not
            return
        except RayError as exc:
            result = TaskResult(task.key, False, error=describe_error(exc), worker=slot.ref.id)
        slot.task, slot.task_ref = None, None
        out.append(Completion(slot.ref, task, result))

    def _drop(self, slot: _Slot, reason: str) -> None:
        log.warning("%s", reason)
        self.slots.remove(slot)
        if not self.slots:
            raise BatchAbortedError(f"Ray workers keep dying ({self.restarts} lost, last: {reason}); "
                                    "finished files are recorded, rerun to go on")

    def stop(self, grace: float) -> list[Completion]:
        """Wait up to `grace` s for the files the actors hold (a running actor task cannot be interrupted) and
        return those that finished; `close` then kills the actors."""
        from ray.exceptions import RayError

        out: list[Completion] = []
        if self._ray is None:
            return out
        owners = {s.task_ref: s for s in self.slots if s.task_ref is not None}
        if owners:
            ready, _ = self._ray.wait(list(owners), num_returns=len(owners), timeout=grace)
            for ref in ready:
                slot = owners[ref]
                try:
                    out.append(Completion(slot.ref, slot.task, self._ray.get(ref)))  # type: ignore[arg-type]
                except RayError:
                    pass
        return out

    def close(self) -> None:
        """Kill the actors; disconnect when this pool connected."""
        if self._ray is None:
            return
        for s in self.slots:
            try:
                self._ray.kill(s.ref.handle, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.slots = []
        if self._owns_ray:
            self._ray.shutdown()
            self._owns_ray = False
