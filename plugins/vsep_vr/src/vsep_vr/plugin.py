"""Hook implementations of vsep-vr. Light imports only: torch loads in `load`."""

from __future__ import annotations

from dataclasses import dataclass

from vsep_core.api import Architecture, LoadContext, SeparationModel, param
from vsep_core.hookspecs import hookimpl


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


def _load(ctx: LoadContext) -> SeparationModel:
    from vsep_vr.model import load_model

    return load_model(ctx)


@hookimpl
def vsep_architectures() -> list[Architecture]:
    """VR: vocal-remover .pth (torch) and .onnx (ONNX Runtime) models."""
    return [Architecture(name="VR", flag_prefix="vr", params=VRParams, load=_load, package="vsep-vr",
                         extensions=(".pth", ".onnx"))]


@hookimpl
def vsep_models() -> list:
    """Catalogue records of this family (packaged data, see catalog.py)."""
    from vsep_vr.catalog import model_records

    return model_records()


@hookimpl
def vsep_hash_tables() -> list:
    """Hash -> parameter tables of this family."""
    from vsep_vr.catalog import hash_tables

    return hash_tables()
