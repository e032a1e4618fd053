"""Pitch shift resamples as the reference does: libsamplerate SRC_SINC_FASTEST (librosa's res_type="sinc_fastest"),
each channel on its own, ratio 2^(-p/12) there and 2^(p/12) back, then cut to the input's length."""

from __future__ import annotations

import numpy as np
import pytest
import samplerate
from mdxc_testlib import SR, make_ctx, parity_db, tones
from vsep_mdxc.model import load_model


def _libsamplerate(audio: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """What librosa.resample(res_type="sinc_fastest") returns: samplerate per channel, ceil(n * ratio) samples."""
    ratio = rate_out / rate_in
    size = int(np.ceil(audio.shape[-1] * ratio))
    rows = [samplerate.resample(row, ratio, converter_type="sinc_fastest")[:size] for row in audio]
    return np.stack([np.pad(r, (0, size - len(r))) for r in rows]).astype(np.float32)


@pytest.mark.parametrize(("kind", "shift"), [("mel", 2), ("mdx23c", -3)])
def test_pitch_shift_resamples_with_sinc_fastest(tiny_models: dict, kind: str, shift: int) -> None:
    ckpt, yml = tiny_models[kind]
    shifted_model = load_model(make_ctx(ckpt, yml, pitch_shift=shift))
    plain_model = load_model(make_ctx(ckpt, yml))
    audio = tones(0.5, seed=11, peak=0.3)
    n = audio.shape[1]
    out = shifted_model.separate(audio)

    pitched = SR * 2.0 ** (-shift / 12)
    plain = plain_model.separate(_libsamplerate(audio, SR, pitched))
    plan = plain_model.plan
    expected = {}
    for name in ([plan.primary] if plan.residual is not None else plan.outputs):
        expected[name] = _libsamplerate(plain[name], pitched, pitched * 2.0 ** (shift / 12))[:, :n]
    if plan.residual is not None:
        expected[plan.residual] = audio - expected[plan.primary]
    assert set(expected) == set(out)
    for name, want in expected.items():
        assert out[name].shape == audio.shape
        assert parity_db(out[name], want) > 100
