"""Batch separation of many files: local worker processes, or Ray actors on a cluster.

    from vsep_core.batch import BatchSettings, run_batch
    settings = BatchSettings({"output_format": "FLAC"}, models=("vocal_split.gain",))
    report = run_batch("songs/", "out/", settings, workers=2)
    assert report.ok, report.failures

The work is resumable and idempotent: a manifest in ``OUT/.vsep-batch/`` records every
input's status and its outputs' checksums; a rerun skips what is finished (and still
intact), retries what failed while attempts are left, and redoes what a killed worker held.
See docs/scale-out.md.
"""

from vsep_core.batch.io import InputFile, discover_inputs
from vsep_core.batch.manifest import Entry, Manifest, OutputRecord
from vsep_core.batch.runner import (
    BatchAbortedError,
    BatchEvent,
    BatchReport,
    BatchStats,
    WorkerRef,
    make_plan,
    run_batch,
)
from vsep_core.batch.worker import BatchSettings, Task, TaskResult, WorkerState

__all__ = [
    "BatchAbortedError", "BatchEvent", "BatchReport", "BatchSettings", "BatchStats", "Entry", "InputFile",
    "Manifest", "OutputRecord", "Task", "TaskResult", "WorkerRef", "WorkerState", "discover_inputs", "make_plan",
    "run_batch",
]
