"""The batch manifest: one JSON line per change of an input's status, kept in the output directory.

``OUT/.vsep-batch/manifest.jsonl`` holds, for every input (keyed by its absolute path or URL),
its status (``running``, ``done``, ``failed``), how many attempts have finished, the input's
signature (size and modification time or ETag) and settings fingerprint at that time, and for
``done`` the outputs with their sizes and SHA-256 checksums. The last line of an input wins.

Only the driver (the ``vsep batch`` process) writes it. On a local output directory every
change is appended and flushed to disk at once, under a lock that keeps a second batch off
the same directory; a line cut short by a crash is ignored when the file is read back. On a
URL the whole file is rewritten (atomically, as objects are) every `flush_interval` seconds
and at the end. Each run starts by rewriting the file with one line per input (compaction).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from vsep_core.batch import io
from vsep_core.errors import UsageError

log = logging.getLogger("vsep")

STATE_DIR = ".vsep-batch"
MANIFEST_NAME = "manifest.jsonl"
FORMAT_VERSION = 1

RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass
class OutputRecord:
    """One written stem: path relative to the output directory (posix), size and SHA-256."""

    path: str
    sha256: str
    size: int


@dataclass
class Entry:
    """What the manifest knows about one input."""

    key: str
    status: str
    attempts: int = 0
    input_sig: str = ""
    settings: str = ""
    outputs: list[OutputRecord] = field(default_factory=list)
    audio_seconds: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    worker: str | None = None
    updated: float = 0.0

    def to_json(self) -> str:
        """One manifest line (no newline)."""
        data = asdict(self)
        data["v"] = FORMAT_VERSION
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        """An entry from a parsed manifest line (unknown keys ignored)."""
        outputs = [OutputRecord(**o) for o in data.get("outputs") or []]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "outputs"}
        return cls(outputs=outputs, **known)


def parse_lines(text: str, source: str = "manifest") -> dict[str, Entry]:
    """Fold manifest lines into the latest entry per input; broken lines (a crash mid-write) are skipped."""
    entries: dict[str, Entry] = {}
    bad = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = Entry.from_dict(json.loads(line))
        except (ValueError, TypeError):
            bad += 1
            continue
        entries[entry.key] = entry
    if bad:
        log.warning("%s: skipped %d unreadable line(s) (a run was probably interrupted while writing)", source, bad)
    return entries


class Manifest:
    """The manifest of one output directory (a local path or a URL)."""

    def __init__(self, out_dir: str, flush_interval: float = 10.0):
        self.out_dir = out_dir
        self.state_dir = io.join(out_dir, STATE_DIR)
        self.path = io.join(self.state_dir, MANIFEST_NAME)
        self.remote = io.is_url(out_dir)
        self.flush_interval = flush_interval
        self.entries: dict[str, Entry] = {}
        self._file: IO[str] | None = None
        self._lock: Any = None
        self._dirty = False
        self._last_flush = 0.0

    def open(self) -> dict[str, Entry]:
        """Lock (local), read the entries, compact the file; returns the entries by input key."""
        if not self.remote:
            Path(self.state_dir).mkdir(parents=True, exist_ok=True)
            from filelock import FileLock, Timeout

            self._lock = FileLock(str(Path(self.state_dir) / "lock"))
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                raise UsageError(f"another vsep batch is writing to {self.out_dir}: wait for it to finish "
                                 f"(two batches must not share an output directory)") from None
        data = io.read_bytes(self.path)
        self.entries = parse_lines(data.decode("utf-8", "replace"), self.path) if data else {}
        self._rewrite()
        if not self.remote:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        return dict(self.entries)

    def _rewrite(self) -> None:
        text = "".join(e.to_json() + "\n" for e in self.entries.values())
        io.write_bytes_atomic(self.path, text.encode("utf-8"))
        self._dirty = False
        self._last_flush = time.monotonic()

    def record(self, entry: Entry) -> None:
        """Store the new state of one input (appended and flushed locally; batched for URLs)."""
        entry.updated = time.time()
        self.entries[entry.key] = entry
        if self._file is not None:
            self._file.write(entry.to_json() + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        else:
            self._dirty = True
            if time.monotonic() - self._last_flush >= self.flush_interval:
                self._rewrite()

    def close(self) -> None:
        """Write what is pending and release the lock."""
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._dirty:
            self._rewrite()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
