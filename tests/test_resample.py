"""vsep_core.resample: each method gives what the library librosa calls for it gives, at librosa's length."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vsep_core import resample as rs


def _signal(n: int = 3001, channels: int = 2) -> np.ndarray:
    t = np.arange(n)
    rows = [np.sin(2 * np.pi * (0.011 + 0.003 * c) * t) + 0.2 * np.cos(2 * np.pi * 0.17 * t + c)
            for c in range(channels)]
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize(("rate_in", "rate_out"), [(44100, 22050), (22050, 44100), (48000, 44100),
                                                   (44100, 44100 * 2 ** (-3 / 12))])
def test_libsamplerate_is_the_samplerate_package_per_channel(rate_in, rate_out):
    samplerate = pytest.importorskip("samplerate")
    x = _signal()
    size = math.ceil(x.shape[1] * rate_out / rate_in)
    for converter in rs.LIBSAMPLERATE_CONVERTERS:
        y = rs.libsamplerate(x, rate_in, rate_out, converter)
        assert y.shape == (2, size) and y.dtype == np.float32
        for c in range(2):
            want = samplerate.resample(x[c], rate_out / rate_in, converter_type=converter)
            np.testing.assert_array_equal(y[c, : min(size, len(want))], want[:size])


def test_resampy_kaiser_and_soxr_are_their_libraries():
    resampy = pytest.importorskip("resampy")
    import soxr

    x = _signal()
    for kind in rs.RESAMPY_FILTERS:
        y = rs.resampy_kaiser(x, 22050, 44100, kind)
        assert y.shape == (2, 6002)
        np.testing.assert_array_equal(y, resampy.resample(x, 22050, 44100, filter=kind, axis=-1)[:, :6002])
    y = rs.soxr_hq(x, 48000, 44100)
    assert y.shape == (2, math.ceil(3001 * 44100 / 48000))
    want = soxr.resample(x[1], 48000, 44100, quality="HQ")
    np.testing.assert_array_equal(y[1, : len(want)], want[: y.shape[1]])


def test_by_name_and_lengths():
    x = _signal(1001, 1)[0]
    assert rs.resample(x, 44100, 44100, "kaiser_fast") is x
    for name in ("soxr_hq", "polyphase", "sinc_fastest", "sinc_best", "kaiser_fast"):
        y = rs.resample(x, 44100, 14700, name)
        assert y.shape == (334,) and np.isfinite(y).all()  # ceil(1001 / 3)
    with pytest.raises(ValueError, match="unknown resampler"):
        rs.by_name("fft")
    assert rs.fix_length(np.ones((2, 5)), 3).shape == (2, 3) and rs.fix_length(np.ones(2), 4).tolist() == [1, 1, 0, 0]
