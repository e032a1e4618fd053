"""What a second of audio costs a VR model: its network passes (counted by ``vsep_core.cost``).

The network's shape comes from the .pth state dict (``nets.detect_config``), so a model is counted once
its file is on disk; windows per second follow from the band parameters' hop lengths and the params'
window size, batch size and TTA, as :func:`vsep_vr.inference.predict_mask` cuts them.
"""

from __future__ import annotations

from vsep_core.api import CostPass, LoadContext
from vsep_core.errors import ModelLoadError


def cost_passes(ctx: LoadContext) -> list[CostPass]:
    """One network on [batch, 2, bins + 1, window] magnitudes, (window - 2 * offset) new frames per pass
    (counted as the runner runs it: the mask of those frames only, `nets.CentreMask`)."""
    from vsep_vr import nets
    from vsep_vr.model import _band_params
    from vsep_vr.plugin import VRParams

    if ctx.model_path.suffix.lower() != ".pth" or not ctx.model_path.is_file():
        raise ModelLoadError(f"{ctx.model_path.name}: a VR model is counted from its .pth file")
    bp = _band_params(dict(ctx.model_data or {}), ctx.model_path)
    config = nets.detect_config(nets.load_state(str(ctx.model_path), map_location="meta"))
    settings = ctx.params if ctx.params is not None else VRParams()
    roi = settings.window_size - 2 * config.offset or settings.window_size
    frames_per_second = min(b.sr / b.hl for b in bp.bands)
    rate = frames_per_second / roi / settings.batch_size * (2 if settings.enable_tta else 1)
    return [CostPass(build=lambda: nets.CentreMask(nets.build_net(config, bp.bins)),
                     input_shapes=((settings.batch_size, 2, bp.bins + 1, settings.window_size),),
                     passes_per_second=rate)]


def calibration_passes() -> list[CostPass]:
    """The v5 "HP" network (32 channels) for 4band_v2 on a 32-frame window."""
    from vsep_vr import bands, nets

    bins = bands.load_band_params("4band_v2").bins
    config = nets.NetConfig("v5", channels=32, aspp_branches=5, extra_level=False)
    return [CostPass(build=lambda: nets.build_net(config, bins), input_shapes=((1, 2, bins + 1, 32),),
                     passes_per_second=1.0)]
