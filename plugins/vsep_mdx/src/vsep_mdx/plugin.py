"""Hook implementations of vsep-mdx. Light imports only: onnxruntime loads in `load`."""

from __future__ import annotations

from dataclasses import dataclass

from vsep_core.api import Architecture, param
from vsep_core.helpers import lazy
from vsep_core.hookspecs import hookimpl
from vsep_mdx.catalog import CATALOGUE


@dataclass
class MDXParams:
    """Parameters of MDX-Net models."""

    hop_length: int = param(1024, "STFT hop length", min=1)
    segment_size: int = param(256, "chunk length in STFT frames", min=1)
    overlap: float = param(0.25, "fraction of each chunk shared with the next", min=0.001, max=0.999)
    batch_size: int = param(1, "chunks per ONNX Runtime call", min=1)
    enable_denoise: bool = param(False, "average f(x) and -f(-x) to cancel model noise (twice the work)")


@hookimpl
def vsep_architectures() -> list[Architecture]:
    """MDX: MDX-Net .onnx models."""
    return [Architecture(name="MDX", flag_prefix="mdx", params=MDXParams,
                         load=lazy("vsep_mdx.model", "load_model"),
                         package="vsep-mdx",
                         extensions=(".onnx",), catalogue_rank=1, cost_passes=lazy("vsep_mdx.cost", "cost_passes"),
                         calibration_passes=lazy("vsep_mdx.cost", "calibration_passes"))]


# catalogue records and hash -> parameter tables of this family (packaged data, see catalog.py)
vsep_models, vsep_hash_tables = CATALOGUE.hooks()
