"""What a second of audio costs a Demucs model (a bag of networks): its passes, counted by ``vsep_core.cost``.

Each network's constructor arguments come from its ``.th`` package (read with the allow-listed
unpickler; the weights are not loaded into the network), so a bag is counted once its files are on
disk. Segments per second and shifts follow the params as :class:`vsep_demucs.apply.BagRunner` runs them.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from vsep_core.api import CostPass, LoadContext
from vsep_core.errors import ModelLoadError


def _builder(package: dict[str, Any]) -> Any:
    from vsep_demucs.checkpoint import SUPPORTED_CLASSES

    klass = SUPPORTED_CLASSES.get(package["klass"])
    if klass is None:
        raise ModelLoadError(f"{package['klass']} is not a network vsep-demucs can build")
    accepted = inspect.signature(klass).parameters
    kwargs = {k: v for k, v in (package.get("kwargs") or {}).items() if k in accepted}
    args = list(package.get("args") or ())
    return lambda: klass(*args, **kwargs).eval()


def cost_passes(ctx: LoadContext) -> list[CostPass]:
    """One pass per segment of each network of the bag, times the shifts."""
    from vsep_demucs.checkpoint import find_signature_file, read_bag, read_package
    from vsep_demucs.model import _yaml_data
    from vsep_demucs.plugin import DemucsParams, parse_segment

    path = Path(ctx.model_path)
    if path.suffix == ".th":
        files, bag_segment = [path], None
    else:
        bag = read_bag(path, _yaml_data(ctx))
        files, bag_segment = [find_signature_file(Path(ctx.model_dir), s) for s in bag["models"]], bag["segment"]
    params = ctx.params if ctx.params is not None else DemucsParams()
    asked = parse_segment(params.segment_size)
    shifts = max(1, int(params.shifts))
    overlap = float(params.overlap)
    passes = []
    for file in files:
        build = _builder(read_package(file))
        probe = build()  # small next to a pass; gives the segment, rate, channels and valid length
        segment = float(asked or bag_segment or probe.segment)
        if getattr(probe, "use_train_segment", False):
            segment = min(segment, float(probe.segment))
        samples = int(probe.samplerate * segment)
        valid = probe.valid_length(samples) if hasattr(probe, "valid_length") else samples
        stride = max(1, int((1 - overlap) * samples))
        passes.append(CostPass(build=build, input_shapes=((1, probe.audio_channels, valid),),
                               passes_per_second=probe.samplerate / stride * shifts))
        del probe
    return passes


def calibration_passes() -> list[CostPass]:
    """HTDemucs with its default width on half a second of audio (one transformer layer)."""
    from vsep_demucs.htdemucs import HTDemucs

    def build() -> Any:
        return HTDemucs(sources=["drums", "bass", "other", "vocals"], t_layers=1, segment=0.5).eval()

    return [CostPass(build=build, input_shapes=((1, 2, 22050),), passes_per_second=1.0)]
