"""Hook implementations of vsep-apollo. Light imports only (no torch): the network loads in `load`."""

from __future__ import annotations

from vsep_apollo import catalog
from vsep_apollo.config import MODEL_TYPE, claims_file
from vsep_core.hookspecs import hookimpl
from vsep_core.msst import architecture_hook, params_class

ApolloParams = params_class("ApolloParams", MODEL_TYPE, "Parameters of Apollo restoration models.", __name__)
# Apollo: a checkpoint with an MSST Apollo yaml beside it (config.claims_file); the network loads in model.py
vsep_architectures = architecture_hook("Apollo", "apollo", ApolloParams, "vsep-apollo", "vsep_apollo.model",
                                       claims_file, (".ckpt", ".bin", ".pth", ".pt"))
vsep_models = hookimpl(catalog.model_records)  # catalogue records of this family (see catalog.py)
