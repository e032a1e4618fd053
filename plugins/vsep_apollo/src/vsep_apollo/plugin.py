"""Hook implementations of vsep-apollo. Light imports only (no torch): the network loads in `load`."""

from __future__ import annotations

from dataclasses import dataclass

from vsep_apollo import catalog
from vsep_apollo.config import claims_file
from vsep_core.api import Architecture, LoadContext, SeparationModel, param
from vsep_core.hookspecs import hookimpl
from vsep_core.msst import MsstParams

ARCHITECTURE = "Apollo"
PACKAGE = "vsep-apollo"


@dataclass
class ApolloParams(MsstParams):
    """Parameters of Apollo restoration models."""

    model_type: str | None = param(None, "MSST model type of the checkpoint; only 'apollo' is accepted "
                                         "(default: recognised from the yaml's keys)", choices=("apollo",))


def _load(ctx: LoadContext) -> SeparationModel:
    from vsep_apollo.model import load_model

    return load_model(ctx)


@hookimpl
def vsep_architectures() -> list[Architecture]:
    """Apollo (MSST ``apollo``): a checkpoint with an Apollo yaml beside it."""
    return [Architecture(name=ARCHITECTURE, flag_prefix="apollo", params=ApolloParams, load=_load, package=PACKAGE,
                         extensions=(".ckpt", ".bin", ".pth", ".pt"), claims=claims_file)]


vsep_models = hookimpl(catalog.model_records)  # catalogue records of this family (see catalog.py)
