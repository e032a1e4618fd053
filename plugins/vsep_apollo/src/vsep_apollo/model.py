"""Loading an MSST ``apollo`` checkpoint and running it as MSST's inference.py does.

- the yaml beside the checkpoint (or the catalogue's) builds the network from ``model``;
- the checkpoint is read with ``torch.load(weights_only=True)``: a state dict, or one under
  ``state_dict`` as the published LQ-MP3 weights have it (MSST's loader unwraps it the same way);
- the mix (at ``audio.sample_rate``) is standardised when ``inference.normalize`` is true, cut by core's
  ``demix`` (MSST's generic mode: ``chunk_size``, ``num_overlap``, fades and reflect border) in batches
  of ``inference.batch_size``, and the one output (the restored signal) is de-standardised.
"""

from __future__ import annotations

import functools

from vsep_apollo.config import MODEL_TYPE, inference_settings, load_yaml, network_config, output_name
from vsep_apollo.network import Apollo
from vsep_core import msst
from vsep_core.api import LoadContext
from vsep_core.checkpoints import load_strict, read_state_dict


class ApolloModel(msst.MsstModel):
    """A loaded Apollo model: float32 [channels, samples] at ``sample_rate`` -> {"Restored": same shape}."""


check_model_type = functools.partial(msst.check_model_type, model_type=MODEL_TYPE, package="vsep-apollo")


def load_model(ctx: LoadContext) -> ApolloModel:
    """Build, load and wrap an Apollo checkpoint (see the module docstring)."""
    config_path = msst.required_config(ctx)
    with msst.config_errors_as_model_data(config_path.name):
        config = load_yaml(config_path)
        check_model_type(config, getattr(ctx.params, "model_type", None))
        cfg = network_config(config)
        settings = inference_settings(config)
        stem = output_name(config)
    net = Apollo(cfg)
    load_strict(net, read_state_dict(ctx.model_path), ctx.model_path.name)
    return ApolloModel(net, settings, [stem], ctx.device.torch_device, getattr(ctx.params, "overlap", None),
                       getattr(ctx.params, "batch_size", None))
