"""Is `vsep advise`'s time estimate right on this machine? Estimated vs measured separation time.

    python benchmarks/advise_check.py                 # every case, rewrites the table in docs/advise.md
    python benchmarks/advise_check.py --only tiny --no-docs --json out.json
    python benchmarks/advise_check.py --rescore benchmarks/results/advise_check.json   # estimates only, again

Cases: the oracle's seven tiny checkpoints (../shared/reference/models) and the benchmark's six
real-size random-weight checkpoints (benchmarks/checkpoints.py builds them once). Each case is
estimated from the model's counted cost (vsep_core.cost) and a calibration made at the start
(vsep_core.calibration, "cpu" clock), then measured: ``Separator.separate()`` in a fresh process,
load excluded. The machine this runs on may be shared: both the calibration and the measured runs
use the process's CPU seconds divided by torch's threads (``vsep_core.calibration.cpu_clock``), which
other processes' load does not inflate as it does the wall clock, and every figure is a median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DOC = HERE.parent / "docs" / "advise.md"
RESULTS = HERE / "results" / "advise_check.json"

RUNNER = r"""
import json, sys, time, logging, resource
job = json.loads(sys.argv[1])
import torch
from vsep_core import Separator
from vsep_core.calibration import cpu_clock
sep = Separator(log_level=logging.WARNING, model_file_dir=job["model_dir"], output_dir=job["out"], offline=True,
                **job["kwargs"])
sep.load_model(job["model"])
c0, w0 = cpu_clock(), time.perf_counter()
sep.separate(job["input"])
cpu, wall = cpu_clock() - c0, time.perf_counter() - w0
hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "peak_rss_mb": hwm}))
"""


def cases(only: set[str]) -> list[dict[str, Any]]:
    """The cases to run: label, model dir, model name, Separator kwargs, input seconds, runs."""
    import checkpoints as ck

    out: list[dict[str, Any]] = []
    if not only or "tiny" in only:
        tiny = ck.tiny_models()
        names = [ck.BS_ROFORMER, ck.MEL_ROFORMER, ck.MDX23C, ck.MDXNET, ck.VR_HP, "UVR-De-Echo-Normal.pth",
                 ck.HTDEMUCS]
        for name in names:
            out.append({"label": f"tiny {name}", "size": "tiny", "model_dir": str(tiny.vsep_dir), "model": name,
                        "kwargs": {}, "seconds": 10.0, "runs": 3})
    if not only or "real" in only:
        keys = ["bs_roformer", "mel_roformer", "mdx23c", "mdx", "vr", "demucs"]
        real = ck.build_models(keys)
        # one window per pass, and one pass: a real-size RoFormer pass is minutes of CPU on a shared 2-core VM
        one_window = {"mdxc_params": {"overlap": 1, "override_model_segment_size": True, "segment_size": 801}}
        setup = {"bs_roformer": (one_window, 8.0, 1), "mel_roformer": (one_window, 8.0, 1),
                 "mdx23c": ({"mdxc_params": {"overlap": 1}}, 5.0, 1), "mdx": ({}, 20.0, 2), "vr": ({}, 10.0, 1),
                 "demucs": ({}, 10.0, 1)}
        for key in keys:
            kwargs, seconds, runs = setup[key]
            name = real.vsep_files.get(key, real.files[key])
            out.append({"label": f"real-size {key}", "size": "real", "model_dir": str(real.vsep_dir), "model": name,
                        "kwargs": kwargs, "seconds": seconds, "runs": runs})
    return out


def estimate(case: dict[str, Any], cal: Any) -> dict[str, Any]:
    """The advise estimate for a case: counted cost at the case's params, calibrated time."""
    from vsep_core import catalog, cost, plugins
    from vsep_core.advise import estimate_seconds
    from vsep_core.params import build_params

    record = catalog.resolve_model(case["model"], case["model_dir"])
    arch = plugins.get_architecture(record.architecture)
    params = build_params(arch, case["kwargs"].get(f"{arch.flag_prefix}_params"))
    c = cost.cost_of(record, case["model_dir"], params)
    if c is None:
        return {"architecture": record.architecture, "estimated_s": None}
    return {"architecture": record.architecture, "estimated_s": estimate_seconds(c, record.architecture, cal,
                                                                                  case["seconds"]),
            "gflop": c.flops * case["seconds"] / 1e9, "passes": c.passes * case["seconds"],
            "estimated_memory_mb": cal.peak_memory_mb(c), "cost": cost.cost_to_dict(c)}


def measure(case: dict[str, Any], audio: Path) -> dict[str, Any]:
    """Median CPU-clock and wall seconds of ``separate()`` over the case's runs (each a fresh process)."""
    runs = []
    for _ in range(case["runs"]):
        with tempfile.TemporaryDirectory() as out:
            job = {"model_dir": case["model_dir"], "model": case["model"], "kwargs": case["kwargs"],
                   "input": str(audio), "out": out}
            proc = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(job)], capture_output=True, text=True,
                                  env=dict(os.environ, VSEP_OFFLINE="1"))
            if proc.returncode:
                raise RuntimeError(f"{case['label']}: {proc.stderr.strip().splitlines()[-1]}")
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {"measured_s": statistics.median(r["cpu_s"] for r in runs),
            "wall_s": statistics.median(r["wall_s"] for r in runs),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs), "runs": len(runs)}


def table(rows: list[dict[str, Any]], cal: Any, started: str) -> str:
    """The markdown block of docs/advise.md."""
    def f(v: Any, fmt: str = "{:.1f}") -> str:
        return "–" if v is None else fmt.format(v)

    r32 = cal.rates["float32"]
    lines = [f"- date: {started}; machine: {cal.description}, torch {cal.torch_version}",
             f"- calibration (cpu clock, median of {7} repeats): matmul {r32.matmul_gflops:.0f} GFLOP/s, conv "
             f"{r32.conv_gflops:.0f} GFLOP/s, memory-bound ops {r32.memory_gbps:.1f} GB/s, {r32.op_us:.1f} us/op; "
             "family checks (measured / estimated on the small network): "
             + ", ".join(f"{k} {v['ratio']:.2f}" for k, v in sorted(cal.families.items())),
             "", "| case | input | passes | GFLOP | estimated s | measured s (cpu clock) | error | wall s | "
             "estimated MiB | peak RSS MiB |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        err = (r["estimated_s"] / r["measured_s"] - 1) * 100 if r.get("estimated_s") and r.get("measured_s") else None
        lines.append(f"| {r['label']} | {r['seconds']:g} s | {f(r.get('passes'), '{:.0f}')} | "
                     f"{f(r.get('gflop'), '{:.0f}')} | {f(r.get('estimated_s'), '{:.2f}')} | "
                     f"{f(r.get('measured_s'), '{:.2f}')} | {f(err, '{:+.0f}%')} | {f(r.get('wall_s'), '{:.2f}')} | "
                     f"{f(r.get('estimated_memory_mb'), '{:.0f}')} | {f(r.get('peak_rss_mb'), '{:.0f}')} |")
    real = [r for r in rows if r["size"] == "real" and r.get("estimated_s") and r.get("measured_s")]
    within = sum(abs(r["estimated_s"] / r["measured_s"] - 1) <= 0.35 for r in real)
    lines += ["", f"Real-size checkpoints within ±35%: **{within} of {len(real)}**."]
    return "\n".join(lines)


def rescore(paths: list[Path], calibration_type: Any, given: Any = None) -> tuple[list[dict[str, Any]], Any, str]:
    """Rows of earlier results files estimated again from their saved costs and calibrations (or `given`)."""
    from vsep_core.advise import estimate_seconds
    from vsep_core.cost import cost_from_dict

    rows, cal, started = [], None, ""
    for path in paths:
        data = json.loads(path.read_text())
        cal, started = given or calibration_type.from_dict(data["calibration"]), data["started"]
        for row in data["rows"]:
            if row.get("cost"):
                row["estimated_s"] = estimate_seconds(cost_from_dict(row["cost"]), row["architecture"], cal,
                                                      row["seconds"])
                row["estimated_memory_mb"] = cal.peak_memory_mb(cost_from_dict(row["cost"]))
            rows.append(row)
    return rows, cal, started


def write_doc(block: str) -> None:
    """Replace the block between the advise-check markers of docs/advise.md."""
    text = DOC.read_text(encoding="utf-8")
    start, end = "<!-- advise-check:start -->", "<!-- advise-check:end -->"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(f"{head}{start}\n\n{block}\n\n{end}{tail}", encoding="utf-8")


def main() -> int:
    """Run the check (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="tiny, real, or both (default)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--rescore", type=Path, nargs="+", default=None,
                        help="results files of earlier runs: their measurements and calibrations, estimated again "
                             "with the current time model (nothing is run)")
    parser.add_argument("--calibration", type=Path, default=None,
                        help="with --rescore: estimate with this calibration file instead of each run's own")
    args = parser.parse_args()
    import checkpoints as ck

    from vsep_core.calibration import Calibration, calibrate, save_calibration

    if args.rescore:
        given = Calibration.from_dict(json.loads(args.calibration.read_text())) if args.calibration else None
        rows, cal, started = rescore(args.rescore, Calibration, given)
        block = table(rows, cal, started)
        print(block)
        if not args.no_docs:
            write_doc(block)
        return 0

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()) + \
        f" (load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())})"
    cal = calibrate("cpu", clock="cpu", log=print)
    save_calibration(cal, args.json.with_name("advise_calibration.json"))
    rows = []
    for case in cases({s.strip() for s in args.only.split(",") if s.strip()}):
        audio = ck.make_input(case["seconds"])
        row = {**case, **estimate(case, cal)}
        row.update(measure(case, audio))
        rows.append(row)
        err = (row["estimated_s"] / row["measured_s"] - 1) * 100 if row.get("estimated_s") else float("nan")
        print(f"{case['label']}: estimated {row.get('estimated_s') or float('nan'):.2f} s, measured "
              f"{row['measured_s']:.2f} s (cpu clock; wall {row['wall_s']:.2f} s): {err:+.0f}%", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"started": started, "calibration": cal.to_dict(), "rows": rows}, indent=1))
    block = table(rows, cal, started)
    print(block)
    if not args.no_docs:
        write_doc(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
