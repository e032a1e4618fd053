"""Hook implementations of vsep-apollo. Light imports only: torch loads in `load`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vsep_core.api import Architecture, LoadContext, SeparationModel, param
from vsep_core.hookspecs import hookimpl

ARCHITECTURE = "Apollo"
PACKAGE = "vsep-apollo"


@dataclass
class ApolloParams:
    """Parameters of Apollo restoration models."""

    overlap: int | None = param(None, "windows covering each sample (MSST's num_overlap); default: the yaml's "
                                      "inference.num_overlap", min=1, max=50)
    batch_size: int | None = param(None, "chunks per forward pass (speed and memory only); default: the yaml's "
                                         "inference.batch_size", min=1)
    model_type: str | None = param(None, "MSST model type of the checkpoint; only 'apollo' is accepted "
                                         "(default: recognised from the yaml's keys)", choices=("apollo",))


def _load(ctx: LoadContext) -> SeparationModel:
    from vsep_apollo.model import load_model

    return load_model(ctx)


def _claims(path: Path) -> bool:
    from vsep_apollo.config import claims_file

    return claims_file(path)


@hookimpl
def vsep_architectures() -> list[Architecture]:
    """Apollo (MSST ``apollo``): a checkpoint with an Apollo yaml beside it."""
    return [Architecture(name=ARCHITECTURE, flag_prefix="apollo", params=ApolloParams, load=_load, package=PACKAGE,
                         extensions=(".ckpt", ".bin", ".pth", ".pt"), claims=_claims)]


@hookimpl
def vsep_models() -> list:
    """Catalogue records of this family (see catalog.py)."""
    from vsep_apollo.catalog import model_records

    return model_records()
