"""Hook implementations of vsep-demucs. Light imports only: torch loads in `load`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vsep_core.api import Architecture, LoadContext, SeparationModel, param
from vsep_core.hookspecs import hookimpl


@dataclass
class DemucsParams:
    """Parameters of Demucs models."""

    segment_size: str = param("Default", "segment length in seconds (1-100) or Default (the model's own); "
                                            "capped at what a Hybrid Transformer model was trained on")
    shifts: int = param(2, "random time shifts averaged (0 = none); more is better and slower", min=0, max=20)
    overlap: float = param(0.25, "fraction of each segment shared with the next", min=0.001, max=0.999)
    segments_enabled: bool = param(True, "process in overlapping segments (False: one pass over the whole "
                                         "input, much memory; Hybrid Transformer models still use segments "
                                         "past their training length)")
    seed: int = param(0, "seed of the random shift offsets (the same seed gives the same output)",
                      min=0, max=2**31 - 1)


def _load(ctx: LoadContext) -> SeparationModel:
    if ctx.model_path.suffix.lower() == ".ckpt":  # MSST-format HTDemucs (yaml + state_dict)
        from vsep_demucs.msst import load_msst_htdemucs

        return load_msst_htdemucs(ctx)
    from vsep_demucs.model import load_model

    return load_model(ctx)


def _claims(path: Path) -> bool:
    """Demucs bags (``.yaml``) and ``.th`` packages; a ``.ckpt`` only with an MSST ``htdemucs:`` yaml beside it."""
    if path.suffix.lower() != ".ckpt":
        return True
    from vsep_demucs.msst import claims_checkpoint

    return claims_checkpoint(path)


@hookimpl
def vsep_architectures() -> list[Architecture]:
    """Demucs: v4 HTDemucs models named by their yaml, and MSST-trained HTDemucs ``.ckpt`` files."""
    return [Architecture(name="Demucs", flag_prefix="demucs", params=DemucsParams, load=_load,
                         package="vsep-demucs", extensions=(".yaml", ".th", ".ckpt"), claims=_claims,
                         catalogue_rank=2)]


@hookimpl
def vsep_models() -> list:
    """Catalogue records of this family (packaged data, see catalog.py)."""
    from vsep_demucs.catalog import model_records

    return model_records()
