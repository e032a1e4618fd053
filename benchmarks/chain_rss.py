"""Peak RSS of a 3-step chain against the peak RSS of its largest single step (each a fresh `vsep` process).

    python benchmarks/chain_rss.py [--minutes 10] [--models DIR] [--first M] [--second M] [--json OUT]

The input is the oracle's 6 s clip looped to `--minutes` (16-bit FLAC). The chain is
`first` on the song -> `second` on the first step's Vocals -> subtract (the first step's Vocals less
the second's Vocals). Each single step is `vsep separate` of that step's model on that step's input
file (the second step's input is the first step's Vocals, written as 32-bit float WAV), with the same
options. The chain runs with --no-cache (its intermediate stems go to a temporary folder on disk).
Peak RSS is the child's ru_maxrss (VmHWM) measured by a wrapper process per run.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"


def peak_rss(args: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of `vsep ARGS` in a fresh process."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "r = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t, r.returncode)")
    out = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "vsep_core.cli", *args],
                         capture_output=True, text=True, check=True)
    kib, seconds, rc = out.stdout.split()[-3:]
    if rc != "0":
        raise SystemExit(f"vsep {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return int(kib) / 1024, float(seconds)


def main() -> None:
    """Measure and print (and with --json save) the figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--models", default=str(REFERENCE / "models"))
    ap.add_argument("--first", default="UVR-MDX-NET-Inst_HQ_3.onnx")
    ap.add_argument("--second", default="UVR-MDX-NET-Inst_HQ_3.onnx")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vsep-chain-rss-"))
    clip, rate = sf.read(str(REFERENCE / "input" / "mardy20s_6s_16bit.flac"), dtype="float32")
    frames = int(a.minutes * 60 * rate)
    song = work / "song.flac"
    sf.write(str(song), np.resize(clip, (frames, clip.shape[1])) * np.float32(0.5), rate, subtype="PCM_16")
    common = ["--model_file_dir", a.models, "--output_format", "WAV", "--output_bit_depth", "32"]
    first_rss, first_s = peak_rss(["separate", str(song), "-m", a.first, "--output_dir", str(work / "one"), *common])
    vocals = next((work / "one").glob("*_(Vocals)_*.wav"))
    second_rss, second_s = peak_rss(["separate", str(vocals), "-m", a.second, "--output_dir", str(work / "two"),
                                     *common])
    chain = {"name": "rss", "steps": {"first": {"model": a.first},
                                      "second": {"model": a.second, "input": "first.Vocals"},
                                      "rest": {"subtract": ["first.Vocals", "second.Vocals"]}},
             "outputs": {"rest": "rest", "second_vocals": "second.Vocals"}}
    chain_file = work / "chain.json"
    chain_file.write_text(json.dumps(chain))
    chain_rss, chain_s = peak_rss(["chain", "run", str(chain_file), str(song), "--no-cache", "--output_dir",
                                   str(work / "chain"), *common])
    largest = max(first_rss, second_rss)
    result = {"input_minutes": a.minutes, "first": a.first, "second": a.second,
              "first_step_peak_rss_mib": round(first_rss, 1), "first_step_seconds": round(first_s, 1),
              "second_step_peak_rss_mib": round(second_rss, 1), "second_step_seconds": round(second_s, 1),
              "chain_peak_rss_mib": round(chain_rss, 1), "chain_seconds": round(chain_s, 1),
              "chain_over_largest_step": round(chain_rss / largest, 3), "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(result, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
