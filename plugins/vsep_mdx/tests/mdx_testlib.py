"""Helpers of the vsep-mdx tests: oracle paths, hand-built LoadContexts, the parity metric, tiny ONNX networks.

A uniquely named module (tests run with --import-mode=importlib; conftest.py puts this folder on sys.path).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from vsep_mdx.plugin import MDXParams

from vsep_core.api import Device, LoadContext, ModelRecord

REPO_ROOT = Path(__file__).resolve().parents[3]
REFERENCE = REPO_ROOT.parent / "shared" / "reference"
CHECKER = REPO_ROOT.parent / "shared" / "tools" / "check_reference.py"
ORACLE_MODEL = "UVR-MDX-NET-Inst_HQ_3.onnx"

# Tiny networks: n_fft 1024, dim_f 512 bins, dim_t 2**5 = 32 frames; run with hop 256 and segment 32.
TINY_DATA = {"compensate": 1.0, "mdx_dim_f_set": 512, "mdx_dim_t_set": 5, "mdx_n_fft_scale_set": 1024,
             "primary_stem": "Vocals"}
TINY_PARAMS = {"hop_length": 256, "segment_size": 32}


def make_ctx(model_path: Path, model_data: dict[str, Any], *, invert_using_spec: bool = False,
             normalization_threshold: float = 0.9, amplification_threshold: float = 0.0,
             **params: Any) -> LoadContext:
    """A LoadContext as core builds it, on CPU."""
    return LoadContext(
        record=ModelRecord(filename=model_path.name, architecture="MDX", friendly_name=model_path.stem, files=[]),
        model_path=model_path, model_dir=model_path.parent, config_path=None, params=MDXParams(**params),
        device=Device("cpu", ("CPUExecutionProvider",)), normalization_threshold=normalization_threshold,
        amplification_threshold=amplification_threshold, invert_using_spec=invert_using_spec,
        model_data=dict(model_data))


def parity_db(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(parity dB, gain dB) exactly as check_reference.py computes them."""
    ours, ref = ours.astype(np.float64), ref.astype(np.float64)
    g = float(np.sum(ours * ref)) / float(np.sum(ref**2))
    err = float(np.sum((ours - g * ref) ** 2))
    gain = 20 * math.log10(abs(g)) if g else -math.inf
    return (math.inf if err == 0 else 10 * math.log10(g * g * float(np.sum(ref**2)) / err)), gain


def write_tiny_onnx(path: Path, *, expression: str = "identity", batch: int | str = "batch",
                    frames: int | str = "frames", dim_f: int = 512) -> Path:
    """A small ONNX network [batch, 4, dim_f, frames] -> same shape.

    expression: "identity" (output = input), "half" (0.5 * input), "square" (input + 0.5 * input**2,
    whose even part enable_denoise cancels) or "per_frame" (input times a [frames] vector of ones: a graph
    that hard-codes its frame count inside, so only `frames` frames can run).
    """
    import onnx
    from onnx import TensorProto, helper

    shape = [batch, 4, dim_f, frames]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)
    half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
    if expression == "identity":
        nodes = [helper.make_node("Identity", ["input"], ["output"])]
    elif expression == "half":
        nodes = [helper.make_node("Mul", ["input", "half"], ["output"])]
    elif expression == "square":
        nodes = [helper.make_node("Mul", ["input", "input"], ["sq"]),
                 helper.make_node("Mul", ["sq", "half"], ["sq_half"]),
                 helper.make_node("Add", ["input", "sq_half"], ["output"])]
    elif expression == "per_frame":
        ones = helper.make_tensor("per_frame", TensorProto.FLOAT, [int(frames)], [1.0] * int(frames))
        nodes = [helper.make_node("Mul", ["input", "per_frame"], ["output"])]
    else:
        raise ValueError(expression)
    inits = [half] + ([ones] if expression == "per_frame" else [])
    graph = helper.make_graph(nodes, f"tiny_{expression}", [inp], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tones(seconds: float = 1.0, channels: int = 2, peak: float = 0.5, sr: int = 44100) -> np.ndarray:
    """A band-limited test mix (tones between 600 Hz and 9 kHz, different per channel, 20 ms fades) at `peak`.

    Nothing below the three bins the network never sees, so an identity network must give it back.
    """
    t = np.arange(int(seconds * sr)) / sr
    rows = []
    for c in range(channels):
        x = sum(np.sin(2 * np.pi * f * (1 + 0.01 * c) * t + c) / (i + 1)
                for i, f in enumerate((600.0, 1300.0, 2700.0, 9000.0)))
        rows.append(x * (1 + 0.3 * np.sin(2 * np.pi * 2 * t)))
    mix = np.stack(rows)
    fade = min(int(0.02 * sr), mix.shape[1] // 2)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    mix[:, :fade] *= ramp
    mix[:, mix.shape[1] - fade:] *= ramp[::-1]
    return (mix * (peak / np.max(np.abs(mix)))).astype(np.float32)
