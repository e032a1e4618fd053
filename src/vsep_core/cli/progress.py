"""Progress for long work: a Rich bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import atexit
import logging
import sys
from collections.abc import Callable

log = logging.getLogger("vsep")

ProgressFn = Callable[[int, int], None]


def progress_factory() -> Callable[[str], ProgressFn | None]:
    """A function that makes one progress callback per (file, model) job."""
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from vsep_core.cli.app import err_console

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       console=err_console, transient=False)
        bar.start()
        atexit.register(bar.stop)

        def make(description: str) -> ProgressFn:
            task = bar.add_task(description, total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return update

        return make

    def make_plain(description: str) -> ProgressFn:
        last = [-1]

        def update(done: int, total: int) -> None:
            pct = int(100 * done / total) if total else 100
            if pct // 25 != last[0] // 25 or done == total:
                last[0] = pct
                log.info("%s: %d%% (%d/%d)", description, pct, done, total)

        return update

    return make_plain
