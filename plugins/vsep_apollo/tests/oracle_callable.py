"""check_msst_reference.py ``--callable`` entry: run an Apollo or BandIt v2 oracle case through the plugin
directly, with core's reading, channel matching and resampling (as ``vsep separate`` does), bypassing
core's name resolution.

    PYTHONPATH=plugins/vsep_apollo/tests python ../shared/tools/check_msst_reference.py \
        --cases apollo,bandit_v2 --callable oracle_callable:separate
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vsep_core import audio as audio_io
from vsep_core.api import Device, LoadContext, ModelRecord


def _loader(case: dict):
    if case["model_type"] == "apollo":
        from vsep_apollo.model import load_model
        from vsep_apollo.plugin import ApolloParams as Params
    elif case["model_type"] == "bandit_v2":
        from vsep_bandit.model import load_model
        from vsep_bandit.plugin import BanditParams as Params
    else:
        raise ValueError(f"model type {case['model_type']} is not this plugin's")
    return load_model, Params


def separate(input_path: str, model_dir: str, model_file: str, case: dict) -> dict[str, np.ndarray]:
    """{stem: float32 [channels, samples]} at the model's rate, as MSST writes them."""
    load_model, params = _loader(case)
    path = Path(model_dir) / model_file
    ctx = LoadContext(record=ModelRecord(path.name, "", path.name, []), model_path=path, model_dir=path.parent,
                      config_path=path.with_suffix(".yaml"), params=params(), device=Device("cpu", ()))
    model = load_model(ctx)
    mix, info = audio_io.read_audio(Path(input_path))
    mix = audio_io.match_channels(mix, model.settings.channels)
    length = int(round(info.frames * model.sample_rate / info.sample_rate))
    mix = audio_io.resample(mix, info.sample_rate, model.sample_rate, length)
    return model.separate(mix)
