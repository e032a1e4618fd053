"""Measuring one run, shared by ref_runner.py and vsep_runner.py (stdlib and numpy only: it also runs
with the reference environment's python)."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def vm_hwm_mb() -> float:
    """Peak resident set of this process in MiB (VmHWM)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def timed_separate(sep: Any, path: str, result: dict[str, Any]) -> None:
    """``sep.separate(path)`` with its wall time, the peak RSS (and CUDA memory) after it and the output
    paths recorded in `result`."""
    t1, c1 = time.perf_counter(), time.process_time()
    outputs = sep.separate(path)
    result["separate_s"] = time.perf_counter() - t1
    result["separate_cpu_s"] = time.process_time() - c1  # all threads; steadier than wall time on a shared machine
    result["peak_rss_mb"] = vm_hwm_mb()
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        result["peak_gpu_mb"] = sys.modules["torch"].cuda.max_memory_allocated() / 2**20
    result["outputs"] = [str(o) for o in outputs]


def save_stems(captured: dict[str, Any], directory: str, prefix: str, transpose_long: bool = False) -> dict[str, str]:
    """Each captured stem as float32 ``<directory>/<prefix>_<name>.npy`` ([channels, samples]: with
    `transpose_long`, a [samples, channels] array is turned round); {name: path}."""
    import numpy as np  # not at import: the runners time their own imports

    os.makedirs(directory, exist_ok=True)
    stems = {}
    for name, source in captured.items():
        arr = np.asarray(source, dtype=np.float32)
        if transpose_long and arr.ndim == 2 and arr.shape[0] > arr.shape[1]:
            arr = arr.T
        path = os.path.join(directory, f"{prefix}_{name}.npy")
        np.save(path, np.ascontiguousarray(arr))
        stems[name] = path
    return stems


def write_result(job: dict[str, Any], result: dict[str, Any]) -> int:
    """Mark `result` ok and write it to ``job["result"]``; the exit status 0."""
    result["ok"] = True
    with open(job["result"], "w") as fh:
        json.dump(result, fh)
    return 0
