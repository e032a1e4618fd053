"""Core's one worker-process abstraction, used by local batch workers and the remote server's job workers.

A `WorkerProcess` is a child process that answers requests sent over a pipe (spawn, pipe
protocol, liveness, stop and cancel in one place); `RestartBudget` bounds how often a pool
replaces workers that die. The child side is `child_main`: it installs the stop signals
(SIGTERM, SIGHUP and SIGINT raise `vsep_core.stop.Stopped`, so the worker's ``finally``
blocks remove its temporary files), watches its parent, and exits quietly, without a
traceback, when it is stopped or its parent has gone.

Protocol: the parent sends requests (any picklable object) and ``None`` to ask the child to
finish; the child sends tuples whose first item says what they are (``("ready", pid)``,
``("result", ...)``, ``("progress", ...)``, ...), as each pool defines.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

PARENT_GONE_GRACE_S = 5.0
"""After its parent has died, a child gets this long to stop cleanly before it exits at once."""


def requests_until_stop(conn: Connection) -> Iterator[Any]:
    """The messages the parent sends on `conn`, until it sends None or the pipe closes."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        yield message


def _parent_alive(parent_pid: int, first_ppid: int) -> bool:
    if os.getppid() != first_ppid:  # re-parented: whoever started this process (a forkserver, the pool) is gone
        return False
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _watch_parent(parent_pid: int) -> None:
    """In a child: when the parent has gone, stop like on SIGTERM; exit at once if that does not end it."""
    first_ppid = os.getppid()
    while _parent_alive(parent_pid, first_ppid):
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(PARENT_GONE_GRACE_S)
    os._exit(3)


def child_main(conn: Connection, target: Callable[..., None], args: tuple[Any, ...], parent_pid: int) -> None:
    """Body of every worker process: `target(conn, *args)` with the stop signals handled and the parent watched.

    Stopped (a signal), or cut off from the parent (a broken pipe), the child ends quietly:
    its ``finally`` blocks have run, and the parent reports the worker's end in one line.
    """
    from vsep_core import stop

    stop.install()
    try:
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="vsep-parent-watch", daemon=True).start()
        target(conn, *args)
    except (KeyboardInterrupt, BrokenPipeError, ConnectionResetError, EOFError):
        pass
    finally:
        # the child is ending: a stop signal arriving now (the parent's and the process group's SIGTERM often
        # both come) must not raise inside multiprocessing's exit finalizers and print a traceback
        for sig in stop.STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        try:
            conn.close()
        except OSError:
            pass


def start_method_context(preload: Sequence[str] = ()) -> Any:
    """``forkserver`` where the platform has it (modules in `preload` imported once), ``spawn`` elsewhere."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        if preload:
            ctx.set_forkserver_preload(list(preload))
        return ctx
    return multiprocessing.get_context("spawn")


class WorkerProcess:
    """One child process running `target(conn, *args)` (see `child_main`), and its end of the pipe."""

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...], name: str, ctx: Any = None):
        ctx = ctx or multiprocessing.get_context("spawn")
        self.name = name
        parent, child = ctx.Pipe()
        self.process = ctx.Process(target=child_main, args=(child, target, args, os.getpid()), name=name,
                                   daemon=True)
        self.process.start()
        child.close()
        self.conn = parent
        self.lost: str | None = None
        """Set by `receive` once the child is gone and its pipe is empty: how it ended, in words."""

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the child is still running."""
        return self.lost is None and self.process.is_alive()

    def send(self, message: Any) -> bool:
        """Send one message; False when the pipe is broken (the child's end shows at the next `receive`)."""
        try:
            self.conn.send(message)
            return True
        except (OSError, ValueError):
            return False

    def receive(self, timeout: float = 0.0) -> list[Any]:
        """The messages the child sent (waiting up to `timeout` s for the first); sets `lost` when it is gone."""
        out: list[Any] = []
        if self.lost is not None:
            return out
        try:
            if self.conn.poll(timeout):
                while True:
                    out.append(self.conn.recv())
                    if not self.conn.poll(0):
                        break
        except (EOFError, OSError):
            self.lost = self.describe_end()
            return out
        if not out and not self.process.is_alive():
            self.lost = self.describe_end()
        return out

    def describe_end(self) -> str:
        """How the child ended: "killed by signal 9", "exited with status 1"."""
        self.process.join(1)
        code = self.process.exitcode
        if code is None:
            return "closed its pipe"
        return f"killed by signal {-code}" if code < 0 else f"exited with status {code}"

    def interrupt(self) -> None:
        """Forward a stop: SIGTERM, which the child handles like Ctrl-C (it finishes publishing a file first)."""
        if self.process.is_alive() and self.process.pid:
            try:
                os.kill(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """End the child now (cancel) and close the pipe."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self._close_pipe()

    def close(self, grace: float = 5.0) -> None:
        """Ask the child to finish (None), wait up to `grace` s, then terminate and at last kill it."""
        self.send(None)
        self.process.join(grace)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(1)
        self._close_pipe()

    def _close_pipe(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass


def ready_workers(workers: Sequence[WorkerProcess], timeout: float) -> list[WorkerProcess]:
    """The workers with a message waiting or whose process ended, waiting up to `timeout` s for one."""
    waitables: dict[Any, WorkerProcess] = {}
    for w in workers:
        waitables[w.conn] = w
        waitables[w.process.sentinel] = w
    if not waitables:
        time.sleep(timeout)
        return []
    out: list[WorkerProcess] = []
    for obj in wait(list(waitables), timeout):
        if waitables[obj] not in out:
            out.append(waitables[obj])
    return out


class RestartBudget:
    """How many lost workers a pool replaces before it gives up."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def spend(self) -> bool:
        """Count one lost worker; True while a replacement is still allowed."""
        self.used += 1
        return self.used <= self.limit
