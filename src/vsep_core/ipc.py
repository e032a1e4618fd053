"""Pipe helpers of core's worker processes (batch workers, the remote server's job workers)."""

from __future__ import annotations

from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any


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
