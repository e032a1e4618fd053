"""Where a server keeps its jobs on disk, and the rules for names that come from clients."""

from __future__ import annotations

import hashlib
import re
import shutil
import unicodedata
from pathlib import Path

_UNSAFE = re.compile(r'[<>:"|?*\x00-\x1f\x7f]')
_MAX_NAME_BYTES = 180


def safe_filename(name: str | None, default: str = "input") -> str:
    """A client-supplied file name made safe to create inside a job's directory.

    Keeps only the last path component (``/`` and ``\\`` both count), drops control and
    Windows-reserved characters, leading dots and spaces (no hidden files, no ``..``) and
    trims it to 180 UTF-8 bytes, keeping the extension. An empty result becomes ``default``.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C" or ch == " ")
    name = _UNSAFE.sub("_", name).strip().lstrip(".").strip().rstrip(". ")
    if not name:
        return default
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        if not dot or len(ext) > 10:
            stem, ext = name, ""
        budget = _MAX_NAME_BYTES - len(ext.encode("utf-8")) - (1 if ext else 0)
        stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(". ")
        name = f"{stem}.{ext}" if ext else stem
    return name or default


def is_plain_name(name: str) -> bool:
    """True when ``name`` is already a safe single file name (what custom output names must be)."""
    return bool(name) and safe_filename(name, default="") == name


def file_hash(filename: str) -> str:
    """The download id of an output file: the reference's first 16 hex digits of sha256(name).

    Names are unique within a job's output directory, so ids never collide inside a job.
    """
    return hashlib.sha256(filename.encode("utf-8")).hexdigest()[:16]


class Storage:
    """``<root>/<task_id>/input/<name>`` for the upload and ``<root>/<task_id>/output/`` for results."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def job_dir(self, task_id: str) -> Path:
        """The directory that holds everything of one job."""
        return self.root / task_id

    def input_path(self, task_id: str, input_name: str) -> Path:
        """Where a job's upload is kept until the job has run."""
        return self.job_dir(task_id) / "input" / input_name

    def output_dir(self, task_id: str) -> Path:
        """Where a job's results are written."""
        return self.job_dir(task_id) / "output"

    def output_file(self, task_id: str, filename: str) -> Path | None:
        """The result file ``filename`` of a job, or None if it is not a plain file inside its output dir."""
        out = self.output_dir(task_id).resolve()
        path = (out / filename).resolve()
        if path.parent != out or not path.is_file():
            return None
        return path

    def remove_input(self, task_id: str) -> None:
        """Delete a job's upload (after the job ran or was cancelled)."""
        shutil.rmtree(self.job_dir(task_id) / "input", ignore_errors=True)

    def clear_output(self, task_id: str) -> None:
        """Delete a job's results (after it failed, was cancelled or expired)."""
        shutil.rmtree(self.output_dir(task_id), ignore_errors=True)

    def remove(self, task_id: str) -> None:
        """Delete everything a job has on disk."""
        shutil.rmtree(self.job_dir(task_id), ignore_errors=True)

    def size_of(self, task_id: str) -> int:
        """Bytes used by a job's files."""
        return sum(p.stat().st_size for p in self.job_dir(task_id).rglob("*") if p.is_file())
