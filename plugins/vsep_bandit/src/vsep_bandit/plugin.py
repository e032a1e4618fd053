"""Hook implementations of vsep-bandit. Light imports only (no torch): the network loads in `load`."""

from __future__ import annotations

from vsep_bandit import catalog
from vsep_bandit.config import MODEL_TYPE, claims_file
from vsep_core.hookspecs import hookimpl
from vsep_core.msst import architecture_hook, params_class

BanditParams = params_class("BanditParams", MODEL_TYPE, "Parameters of BandIt v2 models.", __name__)
# BandIt: a checkpoint with an MSST BandIt yaml beside it (config.claims_file); the network loads in model.py
vsep_architectures = architecture_hook("BandIt", "bandit", BanditParams, "vsep-bandit", "vsep_bandit.model",
                                       claims_file, (".ckpt", ".pth", ".pt"))
vsep_models = hookimpl(catalog.model_records)  # catalogue records of this family (see catalog.py)
