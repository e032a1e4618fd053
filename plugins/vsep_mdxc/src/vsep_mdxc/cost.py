"""What a second of audio costs an MDXC model: its network passes, from the yaml alone (no weights).

Core counts the passes (``vsep_core.cost``); this module only says which network runs on which input
how often, resolving overlap, batch size and chunk length exactly as :func:`vsep_mdxc.model.load_model`
does for the same params.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vsep_core.api import CostPass, LoadContext
from vsep_core.errors import ModelLoadError
from vsep_mdxc.config import MDX23C, detect_kind, resolve_int


def cost_passes(ctx: LoadContext) -> list[CostPass]:
    """The passes one second of audio takes at ``ctx.params``: one network on [batch, channels, chunk]."""
    from vsep_mdxc.model import (
        AUDIO_SEPARATOR,
        _build_roformer_from,
        _kind_of_type,
        _yaml_of,
        default_inference,
        explicit_model_type,
    )
    from vsep_mdxc.tfc_tdf import TFCTDFConfig, TFCTDFNet

    config = _yaml_of(ctx)
    params = ctx.params
    names = [ctx.model_path.name] + ([ctx.config_path.name] if ctx.config_path else [])
    model_type = explicit_model_type(params, config)
    try:
        kind = _kind_of_type(model_type) if model_type else detect_kind(config, names)
    except ValueError as exc:
        raise ModelLoadError(f"{ctx.model_path.name}: {exc}") from exc
    audio = config.get("audio") or {}
    inference = config.get("inference") or {}
    build: Callable[[], Any]
    if kind == MDX23C:
        training = config.get("training") or {}
        targets = 1 if training.get("target_instrument") else len(training.get("instruments") or [])
        tcfg = TFCTDFConfig.from_yaml(config, max(targets, 1))
        build, channels, hop = (lambda: TFCTDFNet(tcfg)), tcfg.num_channels, tcfg.hop_length
    else:
        build, rcfg = _build_roformer_from(config, kind, {}, model_type)
        channels = 2 if rcfg.stereo else 1
        hop = int((config.get("model") or {}).get("stft_hop_length") or audio.get("hop_length")
                  or rcfg.stft_hop_length)
    style = getattr(params, "inference", None) or default_inference(ctx.model_path)
    overlap = resolve_int(getattr(params, "overlap", None), inference, "num_overlap",
                          8 if style == AUDIO_SEPARATOR else 4)
    batch = resolve_int(getattr(params, "batch_size", None), inference, "batch_size", 1)
    dim_t = int(inference.get("dim_t") or audio.get("dim_t") or 256)
    if style == AUDIO_SEPARATOR:
        if getattr(params, "override_model_segment_size", False):
            dim_t = int(getattr(params, "segment_size", dim_t))
        chunk = hop * (dim_t - 1)
    else:
        chunk = int(getattr(params, "chunk_size", None) or inference.get("chunk_size") or audio.get("chunk_size")
                    or hop * (dim_t - 1))
    step = max(1, chunk // max(1, overlap))
    rate = int(audio.get("sample_rate") or (config.get("model") or {}).get("sample_rate") or 44100)
    # a mono network runs each channel of a stereo input as a batch item
    shape = (batch * 2, 1, chunk) if channels == 1 else (batch, channels, chunk)
    return [CostPass(build=build, input_shapes=(shape,), passes_per_second=rate / (step * batch))]


def calibration_passes() -> list[CostPass]:
    """A one-layer BS-RoFormer of the real width (Viperx 1297's yaml, depth 1) on an eighth of a second."""
    from vsep_mdxc.catalog import packaged_config
    from vsep_mdxc.config import BS_ROFORMER, load_yaml
    from vsep_mdxc.model import _build_roformer_from

    path = packaged_config("model_bs_roformer_ep_317_sdr_12.9755.yaml")
    if path is None:
        return []
    config = load_yaml(path)
    config["model"] = dict(config.get("model") or {}, depth=1)
    build, _ = _build_roformer_from(config, BS_ROFORMER, {}, None)
    return [CostPass(build=build, input_shapes=((1, 2, 5513),), passes_per_second=1.0)]
