"""Time the stem-file writer alone: five stereo tracks of S seconds encoded and muxed into a .stem.mp4.

    python benchmarks/stemfile_write.py --seconds 60 --runs 3

Prints, per codec (AAC 256k, ALAC 16-bit), the best wall time, the CPU time of that run and the
file size. The separation itself is not included (that is benchmarks/run.py's job).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from vsep_core import stemfile


def measure(seconds: float, runs: int, rate: int = 44100) -> list[tuple[str, float, float, int]]:
    """(codec, best wall s, CPU s of that run, bytes) for AAC and ALAC."""
    n = int(seconds * rate)
    noise = (0.2 * np.random.default_rng(0).standard_normal((2, n))).astype(np.float32)
    slots = stemfile.parse_layout(None)
    results = []
    for encoding in (stemfile.StemEncoding("aac", 256_000), stemfile.StemEncoding("alac", 0, 16)):
        best = (float("inf"), 0.0, 0)
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "bench.stem.mp4"
                tracks = [(noise[:, a:a + 262144] for a in range(0, n, 262144)) for _ in range(5)]
                wall, cpu = time.perf_counter(), time.process_time()
                stemfile.write_stem_file(path, tracks, rate, n, slots, encoding)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                best = min(best, (wall, cpu, path.stat().st_size))
        results.append((encoding.codec, *best))
    return results


def main() -> None:
    """Command line: --seconds, --runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.seconds:g} s of stereo audio x 5 tracks, best of {args.runs}")
    for codec, wall, cpu, size in measure(args.seconds, args.runs):
        print(f"{codec:5s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  ({args.seconds * 5 / cpu:5.0f}x real time "
              f"per CPU second)  {size / 2**20:6.1f} MiB")


if __name__ == "__main__":
    main()
