"""Hook implementations of vsep-bandit. Light imports only: torch loads in `load`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vsep_core.api import Architecture, LoadContext, SeparationModel, param
from vsep_core.hookspecs import hookimpl

ARCHITECTURE = "BandIt"
PACKAGE = "vsep-bandit"


@dataclass
class BanditParams:
    """Parameters of BandIt v2 models."""

    overlap: int | None = param(None, "windows covering each sample (MSST's num_overlap); default: the yaml's "
                                      "inference.num_overlap", min=1, max=50)
    batch_size: int | None = param(None, "chunks per forward pass (speed and memory only); default: the yaml's "
                                         "inference.batch_size", min=1)
    model_type: str | None = param(None, "MSST model type of the checkpoint; only 'bandit_v2' is accepted "
                                         "(default: recognised from the yaml's keys)", choices=("bandit_v2",))


def _load(ctx: LoadContext) -> SeparationModel:
    from vsep_bandit.model import load_model

    return load_model(ctx)


def _claims(path: Path) -> bool:
    from vsep_bandit.config import claims_file

    return claims_file(path)


@hookimpl
def vsep_architectures() -> list[Architecture]:
    """BandIt v2 (MSST ``bandit_v2``): a checkpoint with a BandIt v2 yaml beside it."""
    return [Architecture(name=ARCHITECTURE, flag_prefix="bandit", params=BanditParams, load=_load, package=PACKAGE,
                         extensions=(".ckpt", ".pth", ".pt"), claims=_claims)]


@hookimpl
def vsep_models() -> list:
    """Catalogue records of this family (see catalog.py)."""
    from vsep_bandit.catalog import model_records

    return model_records()
