"""One shutdown path: SIGTERM and SIGHUP stop a vsep process the way Ctrl-C (SIGINT) does.

`install()` makes each of these signals raise `Stopped` (a `KeyboardInterrupt`) in the main
thread, so the same ``finally`` blocks run whichever way a run is stopped: temporary files
are removed, worker processes are told to stop, and the command says one line and exits
with ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP), the status a
shell, systemd or Kubernetes expects from a process that a signal ended.

`deferred()` marks a short step that must not be cut in the middle (moving a finished file
to its final name and reporting it): a stop signal that arrives inside it is raised when it
ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""The signals that stop a run (SIGHUP only where the platform has it)."""


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = signum


_depth = 0
_pending: int | None = None
_last: int | None = None
"""The last stop signal received: some libraries (Ray) turn `Stopped` into a bare KeyboardInterrupt."""


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def signal_of(exc: BaseException) -> int:
    """The signal that stopped a run with `exc` (a KeyboardInterrupt): its own, the last one received, or SIGINT."""
    if isinstance(exc, Stopped):
        return exc.signum
    return _last or signal.SIGINT


def exit_status(exc: BaseException) -> int:
    """The exit status of a run that `exc` stopped: 128 + the signal number (130 for Ctrl-C)."""
    return 128 + signal_of(exc)


def stop_message(exc: BaseException) -> str:
    """The one line a stopped command prints."""
    signum = signal_of(exc)
    return "error: cancelled" if signum == signal.SIGINT else f"error: cancelled ({signal_name(signum)})"


def _handler(signum: int, frame: FrameType | None) -> None:
    global _pending, _last
    _last = signum
    if _depth:
        _pending = signum
        return
    raise Stopped(signum)


def install() -> dict[int, object]:
    """Make SIGINT, SIGTERM and SIGHUP raise `Stopped` in this process (main thread only; a signal that
    is ignored, e.g. SIGHUP under ``nohup``, stays ignored). Returns the handlers it replaced."""
    replaced: dict[int, object] = {}
    if threading.current_thread() is not threading.main_thread():
        return replaced
    for sig in STOP_SIGNALS:
        previous = signal.getsignal(sig)
        if previous is signal.SIG_IGN or previous is _handler:
            continue
        replaced[sig] = previous
        signal.signal(sig, _handler)
    return replaced


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """`install()` for the block, the previous handlers back afterwards (for a command run inside a
    longer-lived process, such as a test)."""
    global _last
    _last = None
    replaced = install()
    try:
        yield
    except KeyboardInterrupt as exc:
        if not isinstance(exc, Stopped) and _last is not None:  # a library re-raised it bare: say which signal
            raise Stopped(_last) from exc
        raise
    finally:
        for sig, previous in replaced.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        _last = None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold back a stop signal until the block ends (then `Stopped` is raised there)."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if _depth == 0 and _pending is not None:
        signum, _pending = _pending, None
        raise Stopped(signum)


def raise_if_pending() -> None:
    """Raise `Stopped` now when a stop signal was held back (outside any `deferred` block)."""
    global _pending
    if _depth == 0 and _pending is not None:
        signum, _pending = _pending, None
        raise Stopped(signum)
