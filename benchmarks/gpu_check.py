"""The GPU checks of one session lent a CUDA device, in one go (under 8 minutes on one H100/H200).

    bash benchmarks/gpu_check.sh                 # the same, with a time limit and the results file named
    python benchmarks/gpu_check.py --json benchmarks/results/gpu_check.json [--reference-python PY]

Stages (each row of the output is one JSON object; `--json` writes them all):

1. ``cuda_fp32_vs_cpu``: the oracle's MDXC, Demucs and VR models (../shared/reference, tiny random
   weights, its 6 s input and settings) on CUDA in fp32 against the same on the CPU: parity per stem.
2. ``precision``: the same models on CUDA in fp16 and bf16 (``--precision``) against CUDA fp32.
3. ``compile``: BS-RoFormer with ``--use_torch_compile`` on and off (CUDA fp32): parity and time
   (the first call compiles; the time is of the second).
4. ``speed``: real-size BS-RoFormer ep_317 (random weights, benchmarks/checkpoints.py) on 16 s at equal
   overlap (segment 801, overlap 2: three 8 s windows) in fp32, fp16, bf16: separate() time and peak GPU
   memory (``torch.cuda.max_memory_allocated``), and the reference's fp32 on the same GPU when
   ``--reference-python`` names a Python with audio-separator 0.47.1 and a CUDA torch.

Without CUDA it stops at once with exit status 3 and a one-line message (``--device cpu`` runs every
stage on the CPU instead: how its pieces are tested here, on machines without a GPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from parity import compare  # noqa: E402

ORACLE = HERE.parent.parent / "shared" / "reference"
NO_CUDA_EXIT = 3

# model file, core settings, plugin params: the oracle's cases (manifest.json's settings)
ORACLE_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "bs_roformer": ("model_bs_roformer_ep_317_sdr_12.9755.ckpt", {"mdxc": {"segment_size": 256}}),
    "mel_roformer": ("model_mel_band_roformer_ep_3005_sdr_11.4360.ckpt", {"mdxc": {"segment_size": 256}}),
    "mdx23c": ("MDX23C-8KFFT-InstVoc_HQ.ckpt", {"mdxc": {"segment_size": 256}}),
    "demucs": ("htdemucs.yaml", {"demucs": {"shifts": 0}}),
    "vr": ("2_HP-UVR.pth", {"vr": {"window_size": 512}}),
}


class NoCuda(SystemExit):
    """Raised when CUDA is asked for and there is none (exit status 3, one line)."""


def require_cuda(device: str) -> None:
    """Stop with a one-line message (exit 3) when `device` is CUDA and torch sees no CUDA device."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device here (torch {torch.__version__}, torch.cuda.is_available() is False): "
              "run it where an NVIDIA GPU and a CUDA build of torch are, or pass --device cpu", file=sys.stderr)
        raise NoCuda(NO_CUDA_EXIT)


def read_oracle_input(seconds: float | None = None) -> np.ndarray:
    """The oracle's 6 s input at 44.1 kHz, [channels, samples] float32 (looped to `seconds`)."""
    from vsep_core import audio as audio_io

    data, info = audio_io.read_audio(ORACLE / "input" / "mardy20s_6s_16bit.flac")
    if info.sample_rate != 44100:
        data = audio_io.resample(data, info.sample_rate, 44100)
    if seconds:
        n = int(seconds * 44100)
        data = np.tile(data, (1, -(-n // data.shape[-1])))[:, :n]
    return np.ascontiguousarray(data, dtype=np.float32)


def separate(model_dir: Path, model: str, device: str, audio: np.ndarray, params: dict[str, Any],
             precision: str = "fp32", compile_net: bool = False, repeat: int = 1) -> dict[str, Any]:
    """Load `model` through core's loader on `device` and separate `audio` `repeat` times (the last is timed).

    Returns {"stems", "seconds", "peak_gpu_mb"} (peak_gpu_mb None off CUDA). The model runs as core runs it
    (`vsep_core.pipeline.run_model`: its channel policy and input normalisation).
    """
    import torch

    from vsep_core.devices import vsep_select_device
    from vsep_core.loader import ModelLoader
    from vsep_core.options import Settings
    from vsep_core.pipeline import OutputOptions, input_gain, run_model

    settings = Settings.create(model_file_dir=str(model_dir), offline=True, device=device, precision=precision,
                               use_torch_compile=compile_net, arch_params=params)
    loaded = ModelLoader(settings, vsep_select_device(device, False)).load(model)
    opts = OutputOptions(output_dir=Path(tempfile.gettempdir()))
    gain = input_gain(loaded.model, float(np.max(np.abs(audio))), opts)
    cuda = device.startswith("cuda")
    stems: dict[str, np.ndarray] = {}
    seconds = 0.0
    for _ in range(repeat):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        stems = run_model(loaded.model, audio, opts, None, gain, loaded.channels)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return {"stems": stems, "seconds": seconds, "peak_gpu_mb": peak}


def parity_per_stem(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
    """Parity in dB (`parity.compare`) of every stem both have."""
    return {stem: round(compare(ours[stem], ref[stem])[0], 1) for stem in ref if stem in ours}


def stage_cuda_vs_cpu(device: str, archs: list[str], emit: Callable[[dict[str, Any]], None]) -> None:
    """Stage 1 and 2: each oracle model on `device` in fp32 against the CPU, then fp16 and bf16 against fp32."""
    audio = read_oracle_input()
    for arch in archs:
        model, params = ORACLE_CASES[arch]
        cpu = separate(ORACLE / "models", model, "cpu", audio, params)
        fp32 = separate(ORACLE / "models", model, device, audio, params)
        emit({"stage": "cuda_fp32_vs_cpu", "arch": arch, "device": device, "parity_db": parity_per_stem(
            fp32["stems"], cpu["stems"]), "cpu_s": round(cpu["seconds"], 3), "device_s": round(fp32["seconds"], 3)})
        for precision in ("fp16", "bf16"):
            half = separate(ORACLE / "models", model, device, audio, params, precision=precision)
            emit({"stage": "precision", "arch": arch, "device": device, "precision": precision,
                  "parity_db": parity_per_stem(half["stems"], fp32["stems"]), "seconds": round(half["seconds"], 3),
                  "fp32_s": round(fp32["seconds"], 3)})


def stage_compile(device: str, emit: Callable[[dict[str, Any]], None]) -> None:
    """Stage 3: BS-RoFormer (oracle) with torch.compile on and off."""
    audio = read_oracle_input()
    model, params = ORACLE_CASES["bs_roformer"]
    eager = separate(ORACLE / "models", model, device, audio, params, repeat=2)
    compiled = separate(ORACLE / "models", model, device, audio, params, compile_net=True, repeat=2)
    emit({"stage": "compile", "arch": "bs_roformer", "device": device,
          "parity_db": parity_per_stem(compiled["stems"], eager["stems"]), "eager_s": round(eager["seconds"], 3),
          "compiled_s": round(compiled["seconds"], 3)})


def reference_time(python: str, model_dir: Path, model: str, audio_path: Path, params: dict[str, Any]) -> dict:
    """The reference's separate() time and peak GPU memory (benchmarks/runners/ref_runner.py) in `python`."""
    with tempfile.TemporaryDirectory(prefix="gpu-ref-") as tmp:
        job = {"model": model, "model_dir": str(model_dir), "input": str(audio_path), "output_dir": tmp + "/out",
               "separator_kwargs": {"mdxc_params": params}, "capture": None, "result": tmp + "/result.json"}
        Path(tmp, "job.json").write_text(json.dumps(job))
        subprocess.run([python, str(HERE / "runners" / "ref_runner.py"), tmp + "/job.json"], check=False,
                       capture_output=True, timeout=300)
        result = Path(tmp, "result.json")
        return json.loads(result.read_text()) if result.is_file() else {"ok": False}


def stage_speed(device: str, seconds: float, reference_python: str | None,
                emit: Callable[[dict[str, Any]], None]) -> None:
    """Stage 4: real-size BS-RoFormer at equal overlap in each precision (and the reference's fp32)."""
    import checkpoints

    models = checkpoints.build_models(["bs_roformer"], log=lambda m: print(m, file=sys.stderr))
    model = models.files["bs_roformer"]
    params = {"segment_size": 801, "override_model_segment_size": True, "overlap": 2}
    audio = read_oracle_input(seconds)
    runs = {p: separate(models.vsep_dir, model, device, audio, {"mdxc": params}, precision=p, repeat=2)
            for p in ("fp32", "fp16", "bf16")}
    row: dict[str, Any] = {"stage": "speed", "arch": "bs_roformer", "device": device, "input_seconds": seconds,
                           "vsep_s": {p: round(r["seconds"], 3) for p, r in runs.items()},
                           "peak_gpu_mb": {p: r["peak_gpu_mb"] for p, r in runs.items()},
                           "parity_db_vs_fp32": {p: parity_per_stem(runs[p]["stems"], runs["fp32"]["stems"])
                                                 for p in ("fp16", "bf16")}}
    if reference_python:
        path = checkpoints.make_input(seconds)
        ref = reference_time(reference_python, models.ref_dir, model, path, params)
        row["reference_fp32_s"] = ref.get("separate_s")
        row["reference_peak_gpu_mb"] = ref.get("peak_gpu_mb")
        if ref.get("separate_s"):
            row["ratio_fp32"] = round(runs["fp32"]["seconds"] / ref["separate_s"], 3)
    else:
        row["reference_fp32_s"] = None  # no --reference-python with a CUDA torch and audio-separator 0.47.1
    emit(row)


def main(argv: list[str] | None = None) -> int:
    """Run the stages; print one JSON line per result."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to test the pieces")
    ap.add_argument("--stages", default="parity,compile,speed", help="comma list of parity, compile, speed")
    ap.add_argument("--archs", default=",".join(ORACLE_CASES), help="oracle models of the parity stages")
    ap.add_argument("--seconds", type=float, default=16.0, help="input of the speed stage")
    ap.add_argument("--reference-python", default=None, help="a Python with audio-separator 0.47.1 and CUDA torch")
    ap.add_argument("--json", dest="json_out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    require_cuda(args.device)
    rows: list[dict[str, Any]] = []

    def emit(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)

    import torch

    emit({"stage": "machine", "device": args.device, "torch": torch.__version__,
          "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
          "bf16_supported": bool(args.device.startswith("cuda") and torch.cuda.is_bf16_supported())})
    stages = args.stages.split(",")
    if "parity" in stages:
        stage_cuda_vs_cpu(args.device, args.archs.split(","), emit)
    if "compile" in stages:
        stage_compile(args.device, emit)
    if "speed" in stages:
        stage_speed(args.device, args.seconds, args.reference_python, emit)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
