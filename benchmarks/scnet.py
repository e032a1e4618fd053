#!/usr/bin/env python3
"""SCNet speed and memory on this CPU: seconds and peak RSS per minute of audio (vsep-scnet).

Builds real-size random-weight SCNet checkpoints from MSST's own configs (the packaged copies in
vsep_scnet/data/configs: Small = config_musdb18_scnet.yaml, Large = config_musdb18_scnet_large.yaml,
Tran Small = config_musdb18_scnet_tran.yaml; scnet_masked from the Small config) into
benchmarks/.cache/scnet (git-ignored), makes a looped input from ../shared/audio/mardy20s.flac, and
runs each case in a fresh process through vsep's library facade (``vsep_core.Separator``), as
``vsep separate`` would. Reports load and separate seconds, seconds per minute of audio, the process's
CPU seconds (user + system: what a shared, loaded machine distorts least) and its peak RSS (VmHWM).

    python benchmarks/scnet.py [--seconds 60] [--cases large,small,masked,tran] [--threads N] [--json OUT]

MSST's own inference.py side by side: ``--msst DIR`` (a checkout of MSST whose dependencies
``--msst-python`` imports; default this interpreter) runs ``inference.py --force_cpu`` on the same
checkpoint, yaml and input in a fresh process and reports its wall time and VmHWM the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache" / "scnet"
CLIP = ROOT.parent / "shared" / "audio" / "mardy20s.flac"
CASES = {  # name: (MSST model type, packaged config)
    "large": ("scnet", "config_musdb18_scnet_large.yaml"),
    "small": ("scnet", "config_musdb18_scnet.yaml"),
    "masked": ("scnet_masked", "config_musdb18_scnet.yaml"),
    "tran": ("scnet_tran", "config_musdb18_scnet_tran.yaml"),
}

RUNNER = r"""
import json, logging, sys, time, resource
import torch
job = json.loads(sys.argv[1])
torch.set_num_threads(job["threads"])
t0 = time.perf_counter()
from vsep_core.separator import Separator
sep = Separator(model_file_dir=job["model_dir"], output_dir=job["out"], output_format="WAV", log_level=logging.WARNING)
sep.load_model(job["model"])
t1 = time.perf_counter()
sep.separate(job["input"])
t2 = time.perf_counter()
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"load_s": t1 - t0, "separate_s": t2 - t1, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": hwm}))
"""


def build(case: str) -> Path:
    """The case's checkpoint (random weights, MSST's state_dict format) with its yaml beside it."""
    import torch
    import yaml
    from vsep_scnet.catalog import packaged_config
    from vsep_scnet.model import scnet_config
    from vsep_scnet.msst_yaml import read_msst_yaml
    from vsep_scnet.network import SCNet

    model_type, config_name = CASES[case]
    ckpt = CACHE / f"bench_{case}.ckpt"
    if not ckpt.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        config = read_msst_yaml(packaged_config(config_name))
        torch.manual_seed(0)
        torch.save(SCNet(scnet_config(config), model_type).state_dict(), ckpt)
        ckpt.with_suffix(".yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return ckpt


def make_input(seconds: float) -> Path:
    """The clip looped to `seconds`, 44.1 kHz stereo 16-bit WAV."""
    import numpy as np
    import soundfile as sf

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"input_{int(seconds)}s.wav"
    if not path.is_file():
        audio, rate = sf.read(CLIP, dtype="float32", always_2d=True)
        n = int(seconds * rate)
        sf.write(path, audio[np.arange(n) % audio.shape[0]], rate, subtype="PCM_16")
    return path


def run_vsep(ckpt: Path, audio: Path, threads: int) -> dict:
    """One vsep run in a fresh process."""
    out = CACHE / "out"
    shutil.rmtree(out, ignore_errors=True)
    job = {"model_dir": str(ckpt.parent), "model": ckpt.name, "input": str(audio), "out": str(out),
           "threads": threads}
    proc = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(job)], capture_output=True, text=True,
                          env=dict(os.environ, VSEP_OFFLINE="1"), check=False)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_msst(msst: Path, python: Path, ckpt: Path, model_type: str, audio: Path, threads: int) -> dict:
    """MSST's inference.py (--force_cpu) on the same files in a fresh process: wall seconds and VmHWM."""
    folder = CACHE / "msst_in"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(audio, folder / audio.name)
    store = CACHE / "msst_out"
    shutil.rmtree(store, ignore_errors=True)
    code = ("import resource, runpy, sys, time; t0 = time.perf_counter(); sys.argv = sys.argv[1:]; "
            f"import torch; torch.set_num_threads({threads})\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "finally:\n    hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))"
            "/1024; ru = resource.getrusage(resource.RUSAGE_SELF)\n"
            "    print('BENCH', time.perf_counter() - t0, ru.ru_utime + ru.ru_stime, hwm)")
    cmd = [str(python), "-c", code, str(msst / "inference.py"), "--model_type", model_type, "--config_path",
           str(ckpt.with_suffix(".yaml")), "--start_check_point", str(ckpt), "--input_folder", str(folder),
           "--store_dir", str(store), "--force_cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=msst, check=False,
                          env=dict(os.environ, PYTHONPATH=str(msst)))
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH")), None)
    if proc.returncode or line is None:
        raise RuntimeError((proc.stderr or proc.stdout)[-2000:])
    _, wall, cpu, hwm = line.split()
    return {"total_s": float(wall), "cpu_s": float(cpu), "peak_rss_mb": float(hwm)}


def main() -> None:
    """Run the cases and print one line per case (and --json)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--msst", type=Path, default=None, help="MSST checkout to run side by side")
    ap.add_argument("--msst-python", type=Path, default=Path(sys.executable),
                    help="interpreter with MSST's dependencies (default: this one)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    audio = make_input(a.seconds)
    minutes = a.seconds / 60
    results = []
    for case in a.cases.split(","):
        ckpt = build(case)
        r = run_vsep(ckpt, audio, a.threads)
        row = {"case": case, "model_type": CASES[case][0], "input_seconds": a.seconds, "threads": a.threads, **r,
               "separate_s_per_min": r["separate_s"] / minutes}
        if a.msst:
            m = run_msst(a.msst, a.msst_python, ckpt, CASES[case][0], audio, a.threads)
            row.update(msst_total_s=m["total_s"], msst_cpu_s=m["cpu_s"], msst_peak_rss_mb=m["peak_rss_mb"])
        results.append(row)
        print(json.dumps(row), flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t:.0f} s", file=sys.stderr)
