"""Time networks against each other in one process, alternating their order run by run (used by the profile scripts)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any


def time_alternating(nets: Mapping[str, Callable[[Any], Any]], x: Any, runs: int) -> tuple[dict, dict]:
    """Call every net on `x` `runs` times, the order reversed on odd runs; print one JSON line per call.

    Returns the best wall and best process-CPU seconds per net (on a shared machine, CPU time with one
    torch thread is the steadier figure).
    """
    times: dict[str, list[float]] = {name: [] for name in nets}
    cpu: dict[str, list[float]] = {name: [] for name in nets}
    for i in range(runs):
        order = list(nets) if i % 2 == 0 else list(nets)[::-1]
        for name in order:
            started, started_cpu = time.perf_counter(), time.process_time()
            nets[name](x)
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
            print(json.dumps({"run": i, "net": name, "wall_s": round(times[name][-1], 3),
                              "cpu_s": round(cpu[name][-1], 3)}), flush=True)
    best = {name: round(min(t), 3) for name, t in times.items()}
    best_cpu = {name: round(min(t), 3) for name, t in cpu.items()}
    return best, best_cpu


def ratios(best: dict, best_cpu: dict) -> dict:
    """vsep / reference of the best wall and CPU times (empty without a reference)."""
    if "reference" not in best:
        return {}
    return {"wall_ratio": round(best["vsep"] / best["reference"], 3),
            "cpu_ratio": round(best_cpu["vsep"] / best_cpu["reference"], 3)}
