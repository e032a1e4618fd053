"""The server's job store: one SQLite file, safe to share between threads, surviving restarts.

A job moves ``submitted -> processing -> completed | error | cancelled``; a finished job whose
result files were removed (retention time or size cap) becomes ``expired``. Status names are
the reference server's, so its clients keep working; ``cancelled`` and ``expired`` are vsep's.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SUBMITTED = "submitted"
PROCESSING = "processing"
COMPLETED = "completed"
ERROR = "error"
CANCELLED = "cancelled"
EXPIRED = "expired"
FINISHED = (COMPLETED, ERROR, CANCELLED)
"""States in which a job holds no worker and may hold result files."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    original_filename TEXT NOT NULL,
    input_name TEXT NOT NULL,
    models_used TEXT NOT NULL,
    preset TEXT,
    total_models INTEGER NOT NULL,
    current_model_index INTEGER NOT NULL DEFAULT 0,
    files TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    size_bytes INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at);
"""

_JSON_COLUMNS = ("models_used", "files", "options")


@dataclass
class Job:
    """One separation job as stored. ``files`` maps download id -> output file name."""

    task_id: str
    status: str
    original_filename: str
    input_name: str
    models_used: list[str]
    total_models: int
    options: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    progress: int = 0
    current_model_index: int = 0
    files: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    size_bytes: int = 0
    cancel_requested: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    def public(self) -> dict[str, Any]:
        """The job in the shape of the reference server's status document."""
        doc: dict[str, Any] = {
            "task_id": self.task_id,
            "status": self.status,
            "progress": self.progress,
            "original_filename": self.original_filename,
            "models_used": list(self.models_used),
            "total_models": self.total_models,
            "current_model_index": self.current_model_index,
            "files": dict(self.files),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }
        if self.preset:
            doc["preset"] = self.preset
        if self.error:
            doc["error"] = self.error
        return doc


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


class JobStore:
    """Jobs in a SQLite database at ``path``; every method is atomic and thread-safe."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        data = dict(row)
        for name in _JSON_COLUMNS:
            data[name] = json.loads(data[name])
        data["cancel_requested"] = bool(data["cancel_requested"])
        return Job(**data)

    def add(self, job: Job) -> Job:
        """Insert a new job (its timestamps are set here) and return it."""
        now = time.time()
        job.created_at = job.updated_at = now
        row = {k: v for k, v in job.__dict__.items()}
        for name in _JSON_COLUMNS:
            row[name] = json.dumps(row[name])
        row["cancel_requested"] = int(job.cancel_requested)
        names = ", ".join(row)
        with self._tx() as db:
            db.execute(f"INSERT INTO jobs ({names}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
        return job

    def get(self, task_id: str) -> Job | None:
        """The job with this id, or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else self._job(row)

    def update(self, task_id: str, *, only_if_status: tuple[str, ...] | None = None, **changes: Any) -> Job | None:
        """Change fields of a job; with ``only_if_status`` only while its status is one of those.

        Returns the updated job, or None when it does not exist or its status did not match.
        """
        changes["updated_at"] = time.time()
        for name in _JSON_COLUMNS:
            if name in changes:
                changes[name] = json.dumps(changes[name])
        if "cancel_requested" in changes:
            changes["cancel_requested"] = int(changes["cancel_requested"])
        sets = ", ".join(f"{k} = ?" for k in changes)
        sql = f"UPDATE jobs SET {sets} WHERE task_id = ?"
        args: list[Any] = [*changes.values(), task_id]
        if only_if_status:
            sql += f" AND status IN ({', '.join('?' * len(only_if_status))})"
            args.extend(only_if_status)
        with self._tx() as db:
            if db.execute(sql, args).rowcount == 0:
                return None
            row = db.execute("SELECT * FROM jobs WHERE task_id = ?", (task_id,)).fetchone()
        return self._job(row)

    def delete(self, task_id: str) -> None:
        """Remove a job record."""
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE task_id = ?", (task_id,))

    def _in_status(self, statuses: tuple[str, ...], order: str) -> list[Job]:
        marks = ", ".join("?" * len(statuses))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY {order}, rowid", statuses
            ).fetchall()
        return [self._job(r) for r in rows]

    def with_status(self, *statuses: str) -> list[Job]:
        """Jobs in any of these states, oldest first."""
        return self._in_status(statuses, "created_at")

    def count(self, *statuses: str) -> int:
        """How many jobs are in any of these states."""
        marks = ", ".join("?" * len(statuses))
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})", statuses).fetchone()[0]

    def finished_oldest_first(self) -> list[Job]:
        """Finished jobs that may still own files, by finish time, oldest first."""
        return self._in_status(tuple(FINISHED), "finished_at")

    def interrupt_running(self, reason: str) -> list[str]:
        """Mark every ``processing`` job as failed with ``reason`` (after a crash); return their ids."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT task_id FROM jobs WHERE status = ?", (PROCESSING,))]
            now = time.time()
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, progress = 0, updated_at = ?, finished_at = ? WHERE status = ?",
                (ERROR, reason, now, now, PROCESSING),
            )
        return ids
