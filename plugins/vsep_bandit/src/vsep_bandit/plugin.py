"""Hook implementations of vsep-bandit. Light imports only (no torch): the network loads in `load`."""

from __future__ import annotations

from dataclasses import dataclass

from vsep_bandit import catalog
from vsep_bandit.config import claims_file
from vsep_core.api import Architecture, LoadContext, SeparationModel, param
from vsep_core.hookspecs import hookimpl
from vsep_core.msst import MsstParams

ARCHITECTURE = "BandIt"
PACKAGE = "vsep-bandit"


@dataclass
class BanditParams(MsstParams):
    """Parameters of BandIt v2 models."""

    model_type: str | None = param(None, "MSST model type of the checkpoint; only 'bandit_v2' is accepted "
                                         "(default: recognised from the yaml's keys)", choices=("bandit_v2",))


def _load(ctx: LoadContext) -> SeparationModel:
    from vsep_bandit.model import load_model

    return load_model(ctx)


@hookimpl
def vsep_architectures() -> list[Architecture]:
    """BandIt v2 (MSST ``bandit_v2``): a checkpoint with a BandIt v2 yaml beside it."""
    return [Architecture(name=ARCHITECTURE, flag_prefix="bandit", params=BanditParams, load=_load, package=PACKAGE,
                         extensions=(".ckpt", ".pth", ".pt"), claims=claims_file)]


vsep_models = hookimpl(catalog.model_records)  # catalogue records of this family (see catalog.py)
