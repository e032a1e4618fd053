"""Hook implementations of vsep-scnet. Light imports only: torch loads in `load`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vsep_core.api import Architecture, param
from vsep_core.helpers import lazy
from vsep_core.hookspecs import hookimpl

ARCHITECTURE = "SCNet"
PACKAGE = "vsep-scnet"


@dataclass
class SCNetParams:
    """Parameters of SCNet models (MSST's yaml gives every default)."""

    model_type: str | None = param(None, "MSST model type, overriding the detection from the yaml and checkpoint",
                                   choices=("scnet", "scnet_masked", "scnet_tran"))
    overlap: int | None = param(None, "windows covering each sample; default: the yaml's inference.num_overlap",
                                min=1, max=50)
    batch_size: int | None = param(None, "chunks per forward pass (speed and memory only); default: the yaml's "
                                         "inference.batch_size", min=1)


def claims(path: Path) -> bool:
    """A ``.ckpt`` whose yaml beside it (``<stem>.yaml``/``.yml``) has SCNet's ``model:`` keys.

    The keys are ``dims``, ``band_SR``, ``band_stride``, ``band_kernel`` and ``num_dplayer``; which of
    scnet / scnet_masked / scnet_tran it is, is decided at load (``tran_*`` keys; the checkpoint's
    ``pos_embed_f`` / ``mask_layer`` tensors). No checkpoint is opened here.
    """
    path = Path(path)
    if path.suffix.lower() != ".ckpt":
        return False
    from vsep_scnet.claim import yaml_beside_is_scnet

    return yaml_beside_is_scnet(path)


@hookimpl
def vsep_architectures() -> list[Architecture]:
    """SCNet: MSST's scnet, scnet_masked and scnet_tran."""
    return [Architecture(name=ARCHITECTURE, flag_prefix="scnet", params=SCNetParams,
                         load=lazy("vsep_scnet.model", "load_model"),
                         package=PACKAGE,
                         extensions=(".ckpt",), claims=claims)]


@hookimpl
def vsep_models() -> list:
    """Catalogue records of this family (packaged data, see catalog.py)."""
    from vsep_scnet.catalog import model_records

    return model_records()
