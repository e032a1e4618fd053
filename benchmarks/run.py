#!/usr/bin/env python
"""vsep against the reference implementation (audio-separator), side by side, on the same checkpoints.

    python benchmarks/run.py [--quick] [--arch mdxc,mdx,vr,demucs] [--device cpu|cuda] [--json OUT]

Each case runs vsep and the reference alternately, every run in a fresh process (runners/),
on the same input and the same real-size random-weight checkpoints (checkpoints.py), and
reports the separation wall time (load excluded and included), peak RSS, the vsep/reference
ratios, and the parity of the outputs in dB (parity.py). vsep's model FLOPs per second of
audio are counted with torch.utils.flop_counter and set against a measured matmul peak.

``--json OUT`` writes one object per case with exactly the keys
``case, arch, kind, device, input_seconds, vsep_s, reference_s, time_ratio, vsep_rss_mb,
reference_rss_mb, rss_ratio, parity_db`` (null where a figure does not apply). The full
details go to benchmarks/results/ (last_run.json or quick.json); a full run (not --quick)
also rewrites the table and the two plots of docs/benchmarks.md (--no-report to skip).
The reference's environment (benchmarks/.refenv) and the checkpoints (benchmarks/.cache) are
made on first use. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import checkpoints  # noqa: E402
import parity  # noqa: E402
import refenv  # noqa: E402

ROOT = HERE.parent
RESULTS = HERE / "results"
RUNNERS = HERE / "runners"
JSON_KEYS = ("case", "arch", "kind", "device", "input_seconds", "vsep_s", "reference_s", "time_ratio",
             "vsep_rss_mb", "reference_rss_mb", "rss_ratio", "parity_db")

#: arch key -> (family for --arch, Separator params keyword, display name)
ARCHS = {
    "bs_roformer": ("mdxc", "mdxc_params", "BS-RoFormer ep_317"),
    "mel_roformer": ("mdxc", "mdxc_params", "Mel-Band-RoFormer ep_3005"),
    "mdx23c": ("mdxc", "mdxc_params", "MDX23C-8KFFT-InstVoc_HQ"),
    "mdx": ("mdx", "mdx_params", "MDX-Net Inst_HQ_3"),
    "vr": ("vr", "vr_params", "VR 2_HP-UVR"),
    "demucs": ("demucs", "demucs_params", "htdemucs"),
}

#: Settings that make both tools run the same model passes (pinned segment and overlap).
EQUAL_WORK = {
    "bs_roformer": {"segment_size": 801, "override_model_segment_size": True, "overlap": 1, "batch_size": 1},
    "mel_roformer": {"segment_size": 801, "override_model_segment_size": True, "overlap": 1, "batch_size": 1},
    "mdx23c": {"segment_size": 256, "override_model_segment_size": True, "overlap": 1, "batch_size": 1},
    "mdx": {"segment_size": 256, "overlap": 0.25, "batch_size": 1, "hop_length": 1024},
    "vr": {"window_size": 512, "aggression": 5, "batch_size": 1},
    "demucs": {"shifts": 0, "overlap": 0.25, "segment_size": "Default", "segments_enabled": True},
}

QUALITY_NOTES = {
    "demucs": "defaults: shifts=2 in both tools (random offsets: the two tools draw different ones, so "
              "parity is that of two equally good estimates, not of equal work)",
}


@dataclass
class Case:
    """One comparison: the same job for both tools."""

    name: str
    arch: str
    kind: str  # equal_work | defaults | memory | bf16
    input_seconds: float
    params: dict[str, Any]
    models: str = "real"  # real | tiny
    runs: int = 1
    parity: bool = True
    flops: bool = False
    reference: bool = True
    vsep_bf16: bool = False
    note: str = ""
    results: dict[str, Any] = field(default_factory=dict)


def log(msg: str) -> None:
    """Progress line on stderr with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# plan


def plan_cases(args: argparse.Namespace) -> list[Case]:
    """The cases of this invocation (quick or full), filtered by --arch."""
    wanted = set()
    for token in args.arch.split(","):
        token = token.strip()
        wanted |= {k for k, v in ARCHS.items() if token in (k, v[0])}
    cases: list[Case] = []
    if args.quick:
        # Small enough for 5 minutes on 2 cores: the oracle's tiny random-weight checkpoints (the
        # same code paths and file formats, far fewer FLOPs) on a 12 s input, one run each.
        for arch in ("bs_roformer", "mdx23c", "mdx", "vr", "demucs"):
            if arch in wanted:
                cases.append(Case(f"{arch}/equal_work/quick", arch, "equal_work", 12.0, EQUAL_WORK[arch],
                                  models="tiny", runs=1, flops=False))
        if not args.no_memory and "bs_roformer" in wanted:
            cases.append(Case("bs_roformer/memory/1min", "bs_roformer", "memory", 60.0, {}, models="tiny",
                              parity=False))
        return cases
    seconds = args.seconds
    for arch in ARCHS:
        if arch not in wanted:
            continue
        heavy = arch in ("bs_roformer", "mel_roformer", "mdx23c")
        runs = args.runs or (1 if heavy else 2)
        cases.append(Case(f"{arch}/equal_work", arch, "equal_work", args.mdxc_seconds if heavy else seconds,
                          EQUAL_WORK[arch], runs=runs,
                          flops=True))
        # vsep's defaults are the reference's (MDXC overlap = the yaml's, MDX overlap 0.25, VR window
        # 512, Demucs shifts 2), so "defaults" differs from "equal work" only where the pinned overlap
        # or shifts differ: Demucs (shifts 2) is run; the MDXC defaults (overlap 4/8) would cost 4-8x.
        if arch == "demucs" and not args.no_defaults:
            cases.append(Case(f"{arch}/defaults", arch, "defaults", seconds, {}, runs=1 if heavy else runs,
                              note=QUALITY_NOTES.get(arch, "")))
    if not args.no_bf16:
        for arch in ("bs_roformer", "mel_roformer"):
            if arch in wanted:  # vsep --precision bf16 against the reference's fp32, real size, equal work
                cases.append(Case(f"{arch}/bf16/equal_work", arch, "equal_work", args.mdxc_seconds, EQUAL_WORK[arch],
                                  runs=args.runs or 1, vsep_bf16=True))
    if not args.no_bf16 and "bs_roformer" in wanted:
        for arch in ("bs_roformer", "mel_roformer", "mdx23c"):
            # the oracle's settings (check_reference.py): segment 256, the yaml's overlap
            cases.append(Case(f"{arch}/bf16_vs_fp32/oracle", arch, "bf16", 6.0, {
                "segment_size": 256, "override_model_segment_size": True}, models="tiny", reference=False,
                vsep_bf16=True))
    if not args.no_memory:
        for spec in args.memory.split(";"):
            arch, _, minutes_list = spec.partition(":")
            if arch not in wanted:
                continue
            for minutes in [float(m) for m in minutes_list.split(",")]:
                # the reference grows linearly (about 1 GiB per 10 min) and runs at about 3x real time
                # even with a tiny model: above --memory-reference-max it is left out (extrapolated)
                cases.append(Case(f"{arch}/memory/{minutes:g}min", arch, "memory", minutes * 60, {}, models="tiny",
                                  parity=False, reference=minutes <= args.memory_reference_max))
    return cases


# ---------------------------------------------------------------------------------------------
# running


def run_child(python: Path, runner: Path, job: dict[str, Any], work: Path, timeout: float) -> dict[str, Any]:
    """Run one tool once in a fresh process; its result JSON plus the process's wall time and maxrss."""
    job_path = work / f"job_{time.monotonic_ns()}.json"
    job["result"] = str(job_path.with_suffix(".result.json"))
    job_path.write_text(json.dumps(job))
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(python), str(runner), str(job_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=str(work))
    deadline = t0 + timeout
    out = ""
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, rusage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    if proc.stdout:
        out = proc.stdout.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    result: dict[str, Any] = {"ok": False}
    if Path(job["result"]).exists():
        result = json.loads(Path(job["result"]).read_text())
    result["process_s"] = wall
    result["maxrss_mb"] = rusage.ru_maxrss / 1024.0
    result["exit"] = proc.returncode
    if not result.get("ok"):
        result["log_tail"] = out[-3000:]
    return result


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run_case(case: Case, models: checkpoints.ModelSet, tiny: checkpoints.ModelSet, ref_python: Path | None,
             device: str, work_root: Path, timeout: float) -> None:
    """Run every repetition of `case` (alternating the tools) and store figures in case.results."""
    _, params_key, _ = ARCHS[case.arch]
    mset = tiny if case.models == "tiny" else models
    ref_model = mset.files[case.arch]
    vsep_model = mset.vsep_files.get(case.arch, ref_model)
    input_path = checkpoints.make_input(case.input_seconds) if case.kind != "bf16" else \
        checkpoints.ORACLE / "input" / "mardy20s_6s_16bit.flac"
    kwargs = {params_key: dict(case.params)} if case.params else {}
    runs: dict[str, list[dict[str, Any]]] = {"vsep": [], "reference": [], "vsep_fp32": []}
    for i in range(case.runs):
        order = ["vsep", "reference"] if i % 2 == 0 else ["reference", "vsep"]
        if case.kind == "bf16":
            order = ["vsep_fp32", "vsep"]
        for tool in order:
            if tool == "reference" and (not case.reference or ref_python is None):
                continue
            work = Path(tempfile.mkdtemp(prefix=f"bench-{tool}-", dir=work_root))
            capture = str(work / "stems") if case.parity and i == 0 else None
            is_ref = tool == "reference"
            job = {"model": ref_model if is_ref else vsep_model,
                   "model_dir": str(mset.ref_dir if is_ref else mset.vsep_dir),
                   "input": str(input_path), "output_dir": str(work / "out"), "separator_kwargs": kwargs,
                   "capture": capture, "device": device if device != "cpu" else "cpu",
                   "flops": case.flops and tool == "vsep" and i == 0,
                   "bf16": case.vsep_bf16 and tool == "vsep",
                   # the harness's MDX-Net ONNX file is a ConvTDFNet export: its FLOPs are counted on the torch twin
                   "onnx_torch_twin": "mdxnet" if case.arch == "mdx" and case.models == "real" else None}
            if tool == "reference":
                job.pop("device")
                res = run_child(ref_python, RUNNERS / "ref_runner.py", job, work, timeout)
            else:
                res = run_child(Path(sys.executable), RUNNERS / "vsep_runner.py", job, work, timeout)
            status = "ok" if res.get("ok") else f"FAILED (exit {res.get('exit')})"
            log(f"  {case.name} run {i + 1}/{case.runs} {tool}: {status} separate "
                f"{res.get('separate_s', float('nan')):.2f} s, load {res.get('load_s', float('nan')):.2f} s, "
                f"peak RSS {res.get('peak_rss_mb', float('nan')):.0f} MiB")
            if not res.get("ok"):
                log("    " + res.get("log_tail", "").strip().replace("\n", "\n    ")[-2000:])
            res["work"] = str(work)
            runs[tool].append(res)
            shutil.rmtree(work / "out", ignore_errors=True)
    case.results = summarize(case, runs, input_path)
    for tool_runs in runs.values():
        for res in tool_runs:
            shutil.rmtree(res["work"], ignore_errors=True)


def summarize(case: Case, runs: dict[str, list[dict[str, Any]]], input_path: Path) -> dict[str, Any]:
    """Medians per tool, ratios, parity and FLOPs of one case."""
    out: dict[str, Any] = {"runs": {}}
    for tool, tool_runs in runs.items():
        good = [r for r in tool_runs if r.get("ok")]
        if not tool_runs:
            continue
        out["runs"][tool] = [{k: r.get(k) for k in ("separate_s", "separate_cpu_s", "load_s", "import_s", "process_s",
                                                      "peak_rss_mb", "maxrss_mb", "rss_after_load_mb", "peak_gpu_mb",
                                                      "exit")}
                             for r in tool_runs]
        out[tool] = {
            "separate_s": _median([r.get("separate_s") for r in good]),
            "separate_cpu_s": _median([r.get("separate_cpu_s") for r in good]),
            "load_s": _median([r.get("load_s") for r in good]),
            "with_load_s": _median([r.get("separate_s", 0) + r.get("load_s", 0) for r in good]) if good else None,
            "peak_rss_mb": _median([r.get("peak_rss_mb") for r in good]),
            "peak_gpu_mb": _median([r.get("peak_gpu_mb") for r in good]),
            "ok_runs": len(good),
        }
    vs, rf = out.get("vsep", {}), out.get("reference", {})
    if vs.get("separate_s") and rf.get("separate_s"):
        out["time_ratio"] = vs["separate_s"] / rf["separate_s"]
        out["time_ratio_with_load"] = vs["with_load_s"] / rf["with_load_s"]
    if vs.get("separate_cpu_s") and rf.get("separate_cpu_s"):
        out["cpu_time_ratio"] = vs["separate_cpu_s"] / rf["separate_cpu_s"]
    if vs.get("peak_rss_mb") and rf.get("peak_rss_mb"):
        out["rss_ratio"] = vs["peak_rss_mb"] / rf["peak_rss_mb"]
    first_vsep = next((r for r in runs.get("vsep", []) if r.get("ok")), None)
    other = next((r for r in runs.get("vsep_fp32" if case.kind == "bf16" else "reference", []) if r.get("ok")), None)
    if case.parity and first_vsep and other and first_vsep.get("stems") and other.get("stems"):
        mdx = None
        if case.arch == "mdx" and case.kind != "bf16":
            mdx = (input_path, checkpoints.MDXNET_PARAMS["primary_stem"], checkpoints.MDXNET_PARAMS["compensate"])
        per_stem = parity.stems_parity({k: Path(v) for k, v in first_vsep["stems"].items()},
                                       {k: Path(v) for k, v in other["stems"].items()}, mdx=mdx)
        out["parity_per_stem_db"] = per_stem
        out["parity_db"] = min(per_stem.values()) if per_stem else None
    if first_vsep and first_vsep.get("flops"):
        out["flops_total"] = first_vsep["flops"]["total"]
        out["flops_detail"] = first_vsep["flops"]["per_shape"]
        out["calls"] = first_vsep.get("calls")
        out["flops_per_audio_second"] = first_vsep["flops"]["total"] / case.input_seconds
    return out


# ---------------------------------------------------------------------------------------------
# machine


def measure_matmul_peak(size: int = 4096, quick: bool = False) -> dict[str, float]:
    """GFLOP/s of an n x n matmul (fp32 and bf16) on this process's torch threads, in a fresh process; fp32 is
    the faster of BLAS (``fp32_blas_gflops``) and oneDNN (``fp32_onednn_gflops``), the two paths vsep chooses
    between (vsep_core.matmul)."""
    code = f"""
import json, time, torch
out = {{"threads": torch.get_num_threads()}}
for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
    n = 512  # probe first: without native kernels (e.g. bf16 on AVX2) a big matmul takes minutes
    a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
    a @ b
    t = time.perf_counter(); a @ b; probe = 2 * n ** 3 / (time.perf_counter() - t) / 1e9
    if probe > 5:
        n = {size}
        a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
        a @ b
    best = 1e9
    for _ in range({1 if quick else 3}):
        t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
    out[name + "_gflops"] = 2 * n ** 3 / best / 1e9
    out[name + "_size"] = n
    if dt == torch.float32 and hasattr(torch.ops.mkldnn, "_linear_pointwise"):  # vsep's other fp32 path
        out["fp32_blas_gflops"] = out["fp32_gflops"]
        bt = b.t().contiguous()
        linear = lambda: torch.ops.mkldnn._linear_pointwise(a, bt, None, "none", [], "")
        linear()
        best = 1e9
        for _ in range({1 if quick else 3}):
            t = time.perf_counter(); linear(); best = min(best, time.perf_counter() - t)
        out["fp32_onednn_gflops"] = 2 * n ** 3 / best / 1e9
        out["fp32_gflops"] = max(out["fp32_blas_gflops"], out["fp32_onednn_gflops"])
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {}


def machine_info(ref_python: Path | None) -> dict[str, Any]:
    """CPU, cores, memory, load, and the versions of both tools."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        pass
    import torch

    import vsep_core

    info = {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1) if mem else None,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "python": platform.python_version(),
            "loadavg_start": os.getloadavg(), "vsep": getattr(vsep_core, "__version__", "?"),
            "vsep_torch": torch.__version__, "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    try:
        import onnxruntime

        info["vsep_onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    try:
        info["vsep_commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                             capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    if ref_python:
        info["reference"] = refenv.versions(ref_python)
    return info


# ---------------------------------------------------------------------------------------------
# output


def json_rows(cases: list[Case], device: str) -> list[dict[str, Any]]:
    """One object per case with exactly JSON_KEYS."""
    rows = []
    for c in cases:
        r = c.results
        vs, rf = r.get("vsep", {}), r.get("reference", {})
        ref_s = rf.get("separate_s")
        if c.kind == "bf16":  # the "reference" of a bf16 case is vsep in fp32
            ref_s = r.get("vsep_fp32", {}).get("separate_s")
        row = {"case": c.name, "arch": c.arch, "kind": c.kind if c.kind != "bf16" else "equal_work",
               "device": device, "input_seconds": c.input_seconds, "vsep_s": _round(vs.get("separate_s")),
               "reference_s": _round(ref_s), "time_ratio": _round(r.get("time_ratio"), 3),
               "vsep_rss_mb": _round(vs.get("peak_rss_mb"), 1), "reference_rss_mb": _round(rf.get("peak_rss_mb"), 1),
               "rss_ratio": _round(r.get("rss_ratio"), 3), "parity_db": _round(r.get("parity_db"), 2)}
        if c.kind == "bf16" and vs.get("separate_s") and ref_s:
            row["time_ratio"] = _round(vs["separate_s"] / ref_s, 3)
        rows.append({k: row[k] for k in JSON_KEYS})
    return rows


def merge_update(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`old` run details with the cases of `new` replacing those of the same name (or appended)."""
    fresh = {c["name"]: c for c in new["cases"]}
    cases = [fresh.pop(c["name"], c) for c in old["cases"]] + list(fresh.values())
    machine = dict(old["machine"])
    updates = list(machine.get("updates", []))
    updates.append({"date": new["machine"]["date"], "cases": [c["name"] for c in new["cases"]],
                    "loadavg_start": new["machine"]["loadavg_start"], "loadavg_end": new["machine"]["loadavg_end"],
                    "matmul_peak": new["machine"].get("matmul_peak"),
                    "vsep_commit": new["machine"].get("vsep_commit")})
    machine["updates"] = updates
    return {"machine": machine, "args": old.get("args"), "cases": cases}


def _round(x: float | None, nd: int = 2) -> float | None:
    if x is None:
        return None
    if isinstance(x, float) and x != x:  # NaN
        return None
    if isinstance(x, float) and x in (float("inf"), float("-inf")):
        return None
    return round(float(x), nd)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small cases, one run each (< 5 min on 2 cores)")
    ap.add_argument("--arch", default="mdxc,mdx,vr,demucs",
                    help="families (mdxc, mdx, vr, demucs) or arch keys (bs_roformer, mel_roformer, mdx23c, ...)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--json", dest="json_out", default=None, help="write the per-case ratios here")
    ap.add_argument("--runs", type=int, default=0, help="runs per tool and case (default: 2; 1 for real-size MDXC)")
    ap.add_argument("--seconds", type=float, default=30.0, help="input length of the timing cases")
    ap.add_argument("--memory", default="mdx:1,10,60;bs_roformer:1,10",
                    help="memory-scaling cases, tiny models: 'arch:minutes,...;arch:minutes,...'")
    ap.add_argument("--mdxc-seconds", type=float, default=16.0,
                    help="input length of the real-size MDXC timing cases (two 8 s Roformer chunks at overlap 1: "
                         "the reference needs minutes per chunk on a CPU)")
    ap.add_argument("--memory-reference-max", type=float, default=10.0,
                    help="longest memory-scaling input (minutes) the reference is run on")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-defaults", action="store_true")
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--no-reference", action="store_true", help="run vsep only")
    ap.add_argument("--no-report", action="store_true", help="do not rewrite docs/benchmarks.md and the plots")
    ap.add_argument("--timeout", type=float, default=7200.0, help="seconds per run before it is killed")
    ap.add_argument("--update", action="store_true",
                    help="re-measure the selected cases and replace them in results/last_run.json (others kept)")
    args = ap.parse_args(argv)

    started = time.perf_counter()
    cases = plan_cases(args)
    if not cases:
        log("no case selected")
        return 2
    ref_python = None
    if not args.no_reference:
        refenv.ensure_ffmpeg(log)
        ref_python = refenv.ensure_refenv(log=log)
    real_archs = sorted({c.arch for c in cases if c.models == "real"})
    models = checkpoints.build_models(real_archs, log) if real_archs else checkpoints.ModelSet(Path(), Path())
    tiny = checkpoints.tiny_models()
    info = machine_info(ref_python)
    log(f"machine: {info['cpu']}, {info['cores']} cores, load {info['loadavg_start']}")
    info["matmul_peak"] = measure_matmul_peak(quick=args.quick)
    log(f"matmul peak: {info['matmul_peak']}")
    work_root = Path(tempfile.mkdtemp(prefix="vsep-bench-"))
    try:
        for case in cases:
            log(f"case {case.name} ({case.input_seconds:g} s input, {case.models} checkpoints, {case.runs} run(s))")
            run_case(case, models, tiny, ref_python, args.device, work_root, args.timeout)
            r = case.results
            log(f"  -> time ratio {r.get('time_ratio')}, rss ratio {r.get('rss_ratio')}, "
                f"parity {r.get('parity_db')} dB")
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    peak = info.get("matmul_peak", {}).get("fp32_gflops")
    for case in cases:
        r = case.results
        vs = r.get("vsep", {})
        if r.get("flops_total") and vs.get("separate_s") and peak:
            achieved = r["flops_total"] / vs["separate_s"] / 1e9
            r["achieved_gflops"] = achieved
            r["peak_fraction"] = achieved / peak
    info["loadavg_end"] = os.getloadavg()
    info["total_s"] = time.perf_counter() - started
    RESULTS.mkdir(exist_ok=True)
    detail = {"machine": info, "args": vars(args), "cases": [asdict(c) for c in cases]}
    if args.update and not args.quick and (RESULTS / "last_run.json").exists():
        detail = merge_update(json.loads((RESULTS / "last_run.json").read_text()), detail)
        cases = [Case(**c) for c in detail["cases"]]
    rows = json_rows(cases, args.device)
    detail["rows"] = rows
    detail_path = RESULTS / ("quick.json" if args.quick else "last_run.json")
    detail_path.write_text(json.dumps(detail, indent=1, default=str))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1))
    import report

    print(report.table(detail))
    if not args.quick and not args.no_report:
        report.write_all(detail)
    log(f"done in {info['total_s']:.0f} s; details in {detail_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
