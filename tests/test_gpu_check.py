"""The CPU-side pieces of benchmarks/gpu_check.py (the GPU check script): its no-CUDA exit and its
separation + parity on the oracle's tiny BS-RoFormer, run on the CPU."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORACLE = ROOT.parent / "shared" / "reference"


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_without_cuda_it_stops_with_one_line() -> None:
    """On a machine without CUDA both the script and its shell wrapper exit 3 with one line on stderr."""
    import torch

    for cmd in ([sys.executable, "benchmarks/gpu_check.py"], ["bash", "benchmarks/gpu_check.sh"]):
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"})
        if torch.cuda.is_available():
            assert proc.returncode != 3
        else:
            assert proc.returncode == 3, proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1 and "no CUDA device" in proc.stderr


@pytest.mark.slow
def test_separation_and_parity_pieces_on_cpu() -> None:
    """fp32 twice gives infinite parity; bf16 (where the CPU has it) a finite one >= 40 dB; fp16 on a CPU
    without native fp16 falls back to fp32's numbers."""
    from vsep_core.devices import cpu_has_native_bf16

    gc = _gpu_check()
    audio = gc.read_oracle_input()[:, :44100]
    model, params = gc.ORACLE_CASES["bs_roformer"]
    a = gc.separate(ORACLE / "models", model, "cpu", audio, params)
    b = gc.separate(ORACLE / "models", model, "cpu", audio, params, precision="bf16")
    assert set(a["stems"]) == {"Vocals", "Instrumental"} and a["peak_gpu_mb"] is None and a["seconds"] > 0
    same = gc.parity_per_stem(a["stems"], a["stems"])
    assert all(v == float("inf") for v in same.values())
    half = gc.parity_per_stem(b["stems"], a["stems"])
    if cpu_has_native_bf16():
        assert all(40 <= v < 200 for v in half.values()), half
    else:
        assert all(v == float("inf") for v in half.values())
