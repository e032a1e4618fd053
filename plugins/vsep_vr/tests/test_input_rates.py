"""Inputs not at the model's top-band rate are loaded with the top band's own resampler, as the reference does
(librosa.load(sr=band.sr, res_type=band.res_type): resampy kaiser_fast for 4band_v2), not with core's soxr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import resampy
import soundfile as sf
from vr_testlib import noise_mix, parity_db
from vsep_vr import bands
from vsep_vr.model import VRModel
from vsep_vr.plugin import VRParams

from vsep_core import pipeline
from vsep_core.resample import fix_length


def _sigmoid_runner(batch: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(8 * batch - 0.2)))


@pytest.mark.parametrize("rate", [22050, 48000])
def test_input_at_another_rate_is_resampled_with_the_bands_resampler(tmp_path: Path, rate: int):
    model = VRModel(_sigmoid_runner, 128, False, bands.load_band_params("4band_v2"), "Instrumental", VRParams())
    assert model.input_resampler == "kaiser_fast" and model.sample_rate == 44100
    x = noise_mix(1.5, rate, seed=3)
    path = tmp_path / f"in_{rate}.wav"
    sf.write(path, x.T, rate, subtype="FLOAT")

    opts = pipeline.OutputOptions(output_dir=tmp_path / "out", output_bit_depth=32)
    written = pipeline.separate_file(model, "tiny", path, opts)

    # what the reference feeds the model: resampy's kaiser_fast (the library librosa.load calls), per channel
    n = int(round(x.shape[1] * 44100 / rate))
    expected_in = fix_length(resampy.resample(x, rate, 44100, filter="kaiser_fast", axis=-1).astype(np.float32), n)
    expected = model.separate(expected_in)
    for stem, ref in expected.items():
        (out,) = [p for p in written if f"({stem})" in p.name]
        ours, _ = sf.read(out, dtype="float32", always_2d=True)
        assert ours.shape == (n, 2)
        assert parity_db(ours.T, ref)[0] > 100
