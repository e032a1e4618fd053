"""Hook implementations of vsep-vr. Light imports only: torch loads in `load`."""

from __future__ import annotations

import mmap
import zipfile
from dataclasses import dataclass
from pathlib import Path

from vsep_core.api import Architecture, param
from vsep_core.helpers import lazy
from vsep_core.hookspecs import hookimpl
from vsep_vr.catalog import CATALOGUE


@dataclass
class VRParams:
    """Parameters of VR models."""

    batch_size: int = param(1, "windows per forward pass", min=1)
    window_size: int = param(512, "analysis window: 320 (best), 512, 1024 (fastest)", choices=(320, 512, 1024))
    aggression: int = param(5, "strength of primary stem extraction", min=-100, max=100)
    enable_tta: bool = param(False, "test-time augmentation: better quality, twice the work")
    enable_post_process: bool = param(False, "find residual artifacts in the vocal stem")
    post_process_threshold: float = param(0.2, "post-process threshold", min=0.1, max=0.3)
    high_end_process: bool = param(False, "mirror the missing high frequencies of the output")


def is_vsep_onnx(path: Path) -> bool:
    """Whether a file is an ONNX model exported by vsep-vr (its ``vsep_vr.*`` metadata carries the parameters)."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        return False
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(b"vsep_vr.offset") >= 0
    except (OSError, ValueError):
        return False


def claims(path: Path) -> bool:
    """Whether a local file is a VR model, without loading it: a torch zip whose pickled keys
    are those of UVR's VR nets, or an ONNX file exported by vsep-vr (``vsep_vr.*`` metadata)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".onnx":
            return is_vsep_onnx(path)
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            pkl = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
            if pkl is None:
                return False
            keys = zf.read(pkl)
        return b"stg1_low_band_net" in keys and (b"stg2_bridge" in keys or b"lstm_dec2" in keys)
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


@hookimpl
def vsep_architectures() -> list[Architecture]:
    """VR: vocal-remover .pth (torch) and .onnx (ONNX Runtime) models."""
    return [Architecture(name="VR", flag_prefix="vr", params=VRParams,
                         load=lazy("vsep_vr.model", "load_model"),
                         package="vsep-vr",
                         extensions=(".pth", ".onnx"), claims=claims,
                         export_onnx=lazy("vsep_vr.onnx_export", "export_onnx"),
                         self_describing=is_vsep_onnx, catalogue_rank=0,
                         cost_passes=lazy("vsep_vr.cost", "cost_passes"),
                         calibration_passes=lazy("vsep_vr.cost", "calibration_passes"))]


# catalogue records and hash -> parameter tables of this family (packaged data, see catalog.py)
vsep_models, vsep_hash_tables = CATALOGUE.hooks()
