"""Hook implementations of vsep-demucs. Light imports only: torch loads in `load`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsep_core.api import Architecture, param
from vsep_core.errors import UsageError
from vsep_core.helpers import lazy
from vsep_core.hookspecs import hookimpl


def parse_segment(value: Any) -> int | None:
    """``"Default"`` (or None) -> None; an integer 1-100 (int or digit string) -> that many seconds."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "default"):
        return None
    try:
        seconds = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        seconds = None
    if seconds is None or not 1 <= seconds <= 100:
        raise UsageError(f"demucs segment_size must be 'Default' or a whole number of seconds from 1 to 100, "
                         f"not {value!r}")
    return seconds


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

    def __post_init__(self) -> None:
        parse_segment(self.segment_size)  # the one rule no range or choice list can say


@dataclass
class MSSTHTDemucsParams:
    """Parameters of HTDemucs checkpoints trained in MSST (the yaml gives every default)."""

    overlap: int | None = param(None, "windows covering each sample; default: the yaml's inference.num_overlap",
                                min=1, max=50)
    batch_size: int | None = param(None, "windows per forward pass (speed and memory only); default: the yaml's "
                                         "inference.batch_size", min=1)


MSST_ARCHITECTURE = "HTDemucs-MSST"


def _claims_msst(path: Path) -> bool:
    """A ``.ckpt`` whose yaml beside it has MSST's ``htdemucs:`` section (see vsep_demucs.msst)."""
    if Path(path).suffix.lower() != ".ckpt":
        return False
    from vsep_demucs.msst import claims_checkpoint

    return claims_checkpoint(Path(path))


@hookimpl
def vsep_architectures() -> list[Architecture]:
    """Demucs: v4 HTDemucs models named by their yaml; HTDemucs-MSST: HTDemucs ``.ckpt`` files trained in MSST."""
    return [Architecture(name="Demucs", flag_prefix="demucs", params=DemucsParams,
                         load=lazy("vsep_demucs.model", "load_model"),
                         package="vsep-demucs", extensions=(".yaml", ".th"), catalogue_rank=2,
                         cost_passes=lazy("vsep_demucs.cost", "cost_passes"),
                         calibration_passes=lazy("vsep_demucs.cost", "calibration_passes")),
            Architecture(name=MSST_ARCHITECTURE, flag_prefix="htdemucs_msst", params=MSSTHTDemucsParams,
                         load=lazy("vsep_demucs.msst", "load_msst_htdemucs"),
                         package="vsep-demucs", extensions=(".ckpt",), claims=_claims_msst)]


@hookimpl
def vsep_models() -> list:
    """Catalogue records of this family (packaged data, see catalog.py)."""
    from vsep_demucs.catalog import model_records

    return model_records()
