"""A 7-minute input runs in 1-minute parts (core's automatic parts above 5 minutes); its peak gain is found
once over the whole input, so a part much louder than the others does not step the level at the seams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from mdxc_testlib import SR, make_ctx
from vsep_mdxc.model import load_model

from vsep_core import pipeline


def _rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(float(np.mean(np.square(x, dtype=np.float64))) + 1e-20)


@pytest.mark.slow
def test_seven_minutes_with_a_loud_first_part_has_no_level_step(tiny_models, tmp_path: Path) -> None:
    ckpt, yml = tiny_models["bs"]
    model = load_model(make_ctx(ckpt, yml))
    seconds = 7 * 60
    rng = np.random.default_rng(3)
    t = np.arange(seconds * SR) / SR
    mix = (0.25 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    mix[: 60 * SR] *= 6.0  # the first part peaks at ~1.8, the rest at ~0.3
    song = tmp_path / "long.wav"
    sf.write(song, np.stack([mix, mix], axis=1), SR, subtype="FLOAT")
    opts = pipeline.OutputOptions(output_dir=tmp_path / "out", output_format="WAV", output_bit_depth=32)
    written = pipeline.separate_file(model, "tiny", song, opts, channels=model.channels)

    # the same model on the whole input with the gain of the whole input (what a short song gets)
    whole_mix = np.stack([mix, mix])
    gain = pipeline.input_gain(model, float(np.max(np.abs(whole_mix))), opts)
    assert gain < 0.6  # the loud part sets it
    whole = pipeline.run_model(model, whole_mix, opts, gain=gain, channels=model.channels)
    for path in written:
        stem = path.name.split("_(")[1].split(")")[0]
        ours = sf.read(path, dtype="float32", always_2d=True)[0].T
        assert ours.shape == whole_mix.shape
        reference = whole[stem]
        steps = []
        for seam in range(60, seconds, 60):
            before = slice((seam - 5) * SR, (seam - 1) * SR)
            after = slice((seam + 1) * SR, (seam + 5) * SR)
            steps.append((_rms_db(ours[:, after]) - _rms_db(ours[:, before]))
                         - (_rms_db(reference[:, after]) - _rms_db(reference[:, before])))
        # relative levels across each seam, so the writer's one peak gain per stem cancels out
        assert max(abs(s) for s in steps) < 0.5, f"{stem}: level steps at the seams {np.round(steps, 2)} dB"
