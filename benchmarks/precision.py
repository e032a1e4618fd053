"""Parity and speed of vsep's precisions against its own fp32, on the oracle's models or any model files.

    python benchmarks/precision.py                                   # the oracle's MDXC models, 6 s input
    python benchmarks/precision.py --models model_bs_roformer_ep_317_sdr_12.9755.ckpt --precisions bf16,autocast
    python benchmarks/precision.py --model-dir benchmarks/.cache/models/vsep --seconds 8 --json out.json

Each model runs in this process once per precision (fp32 first): the figures to read are parity (the
gain-fitted signal-to-difference ratio of `parity.compare`, per stem, in dB) and the time ratio to fp32
measured one after the other, in wall and process CPU time (`--threads 1` makes CPU time the steady
figure on a shared machine). ``autocast`` is plain
``torch.autocast`` around the whole separation (what the reference's ``--use_autocast`` does), kept to
show what vsep's precision modes gain over it. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from parity import compare  # noqa: E402

ORACLE = HERE.parent.parent / "shared" / "reference"
ORACLE_MODELS = ("model_bs_roformer_ep_317_sdr_12.9755.ckpt", "model_mel_band_roformer_ep_3005_sdr_11.4360.ckpt",
                 "MDX23C-8KFFT-InstVoc_HQ.ckpt")


def load_input(path: Path, seconds: float | None) -> np.ndarray:
    """[channels, samples] float32 at 44.1 kHz (cut to `seconds`, or looped up to it)."""
    from vsep_core import audio as audio_io

    data, info = audio_io.read_audio(path)
    if info.sample_rate != 44100:
        data = audio_io.resample(data, info.sample_rate, 44100)
    if seconds:
        n = int(seconds * 44100)
        reps = -(-n // data.shape[-1])
        data = np.tile(data, (1, reps))[:, :n]
    return np.ascontiguousarray(data, dtype=np.float32)


def separate(model_dir: Path, model: str, precision: str, audio: np.ndarray, extra: dict[str, Any],
             threads: int | None) -> tuple[dict[str, np.ndarray], float, float]:
    """Stems of one separation (the plugin's model, core's loader), its wall time and its process CPU time."""
    import torch

    from vsep_core.devices import vsep_select_device
    from vsep_core.loader import ModelLoader
    from vsep_core.options import Settings

    if threads:
        torch.set_num_threads(threads)
    plain_autocast = precision == "autocast"
    settings = Settings.create(model_file_dir=str(model_dir), offline=True, device="cpu",
                               precision="fp32" if plain_autocast else precision, arch_params=extra)
    loaded = ModelLoader(settings, vsep_select_device("cpu", False)).load(model)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if plain_autocast else contextlib.nullcontext()
    started, started_cpu = time.perf_counter(), time.process_time()
    with context:
        stems = loaded.model.separate(audio)
    return stems, time.perf_counter() - started, time.process_time() - started_cpu


def main(argv: list[str] | None = None) -> int:
    """Run every model in fp32 and the asked precisions; print (and optionally write) the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=ORACLE / "models")
    ap.add_argument("--models", default=",".join(ORACLE_MODELS))
    ap.add_argument("--input", type=Path, default=ORACLE / "input" / "mardy20s_6s_16bit.flac")
    ap.add_argument("--seconds", type=float, default=None, help="cut or loop the input to this length")
    ap.add_argument("--precisions", default="bf16,autocast", help="compared with fp32: bf16, fp16, auto, autocast")
    ap.add_argument("--segment-size", type=int, default=256, help="MDXC segment_size (the oracle's: 256)")
    ap.add_argument("--overlap", type=int, default=None, help="MDXC overlap (default: the yaml's)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", dest="json_out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from vsep_core.devices import cpu_has_native_bf16

    audio = load_input(args.input, args.seconds)
    mdxc = {"segment_size": args.segment_size, "override_model_segment_size": True}
    if args.overlap:
        mdxc["overlap"] = args.overlap
    rows = []
    for model in args.models.split(","):
        fp32, fp32_s, fp32_cpu = separate(args.model_dir, model, "fp32", audio, {"mdxc": mdxc}, args.threads)
        for precision in args.precisions.split(","):
            stems, seconds, cpu = separate(args.model_dir, model, precision, audio, {"mdxc": mdxc}, args.threads)
            parity = {stem: round(compare(stems[stem], fp32[stem])[0], 1) for stem in fp32}
            row = {"model": model, "precision": precision, "input_seconds": audio.shape[-1] / 44100,
                   "fp32_s": round(fp32_s, 2), "seconds": round(seconds, 2), "speedup": round(fp32_s / seconds, 2),
                   "fp32_cpu_s": round(fp32_cpu, 2), "cpu_s": round(cpu, 2), "cpu_speedup": round(fp32_cpu / cpu, 2),
                   "parity_db": parity, "cpu_native_bf16": cpu_has_native_bf16()}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
