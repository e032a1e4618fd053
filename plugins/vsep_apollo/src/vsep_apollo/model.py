"""Loading an MSST ``apollo`` checkpoint and running it as MSST's inference.py does.

- the yaml beside the checkpoint (or the catalogue's) builds the network from ``model``;
- the checkpoint is read with ``torch.load(weights_only=True)``: a state dict, or one under
  ``state_dict`` as the published LQ-MP3 weights have it (MSST's loader unwraps it the same way);
- the mix (at ``audio.sample_rate``) is standardised when ``inference.normalize`` is true, cut by core's
  ``demix`` (MSST's generic mode: ``chunk_size``, ``num_overlap``, fades and reflect border) in batches
  of ``inference.batch_size``, and the one output (the restored signal) is de-standardised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vsep_apollo.config import MODEL_TYPE, InferenceSettings, inference_settings, network_config, output_name
from vsep_apollo.network import Apollo
from vsep_core import msst
from vsep_core.api import LoadContext
from vsep_core.checkpoints import read_state_dict  # noqa: F401 - the plugin's checkpoint reader


class ApolloModel(msst.MsstModel):
    """A loaded Apollo model: float32 [channels, samples] at ``sample_rate`` -> {"Restored": same shape}."""


def build(config: Mapping[str, Any]) -> tuple[Apollo, InferenceSettings, list[str]]:
    """The network (random weights), inference settings and output name of an Apollo yaml."""
    cfg = network_config(config)
    settings = inference_settings(config)
    stem = output_name(config)
    return Apollo(cfg), settings, [stem]


def load_model(ctx: LoadContext) -> ApolloModel:
    """Build, load and wrap an Apollo checkpoint (see the module docstring)."""
    return msst.load_checkpoint(ctx, MODEL_TYPE, "vsep-apollo", build, model_class=ApolloModel)
