"""Export a VR .pth network to ONNX, for `vsep_vr.model.load_model` to run on ONNX Runtime.

The graph is the network alone: input ``input`` float32 [batch, 2, bins + 1, frames],
output ``output`` (the mask, same shape); batch and frames are dynamic. Everything
else (band split, windows, aggression, reconstruction) stays in vsep's numpy code, so the
ONNX model goes through exactly the same pre/post-processing as the torch one. The file
carries what the loader needs as metadata (``vsep_vr.*`` keys, see `ONNX_META_PREFIX`),
including the model's hash parameters, so it loads without a hash-table entry.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vsep_core.errors import ModelDataError, ModelLoadError
from vsep_vr import bands as bandlib
from vsep_vr.model import ONNX_META_PREFIX, load_torch_net

OPSET = 17


def export_onnx(pth_path: str | os.PathLike, out_path: str | os.PathLike, model_data: Mapping[str, Any],
                window_size: int | None = None) -> Path:
    """Write the VR network of `pth_path` as an ONNX file at `out_path` and return its path.

    `model_data` is the model's hash entry (``vr_model_param``, ``primary_stem``, and for
    v5.1 nets ``nout``/``nout_lstm``); it chooses the band parameters (the network's bins)
    and is stored in the file. `window_size` only sets the example input used for tracing
    (default: the smallest usable window, 2 * offset + 64 frames); the exported graph takes any
    batch and any window width the network accepts (a multiple of 32 frames).
    The file is written to a temporary name and renamed.
    """
    try:
        import onnx
    except ImportError as exc:
        raise ModelLoadError("exporting to ONNX needs the onnx package: pip install onnx") from exc
    import torch

    pth_path, out_path = Path(pth_path), Path(out_path)
    name = model_data.get("vr_model_param")
    if not name:
        raise ModelDataError(f"model data for {pth_path.name} has no 'vr_model_param' (band parameters)")
    bp = bandlib.load_band_params(str(name))
    net, config = load_torch_net(pth_path, bp.bins)
    net.eval()
    example = torch.rand(1, 2, bp.bins + 1, window_size or 2 * config.offset + 64)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for every window
            torch.onnx.export(net, (example,), tmp, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch", 3: "frames"}, "output": {0: "batch", 3: "frames"}},
                              opset_version=OPSET, dynamo=False, do_constant_folding=True)
        proto = onnx.load(tmp)
        meta = {
            "offset": str(config.offset),
            "generation": config.generation,
            "bins": str(bp.bins),
            "config": json.dumps(asdict(config)),
            "model_data": json.dumps(dict(model_data)),
            "source": pth_path.name,
        }
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = ONNX_META_PREFIX + key, value
        onnx.save(proto, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path
