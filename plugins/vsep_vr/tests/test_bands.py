"""Band parameters, STFT/resampling helpers and the multi-band split/merge round trip."""

from __future__ import annotations

import numpy as np
import pytest
from vr_testlib import band_energy, noise_mix
from vsep_vr import bands, dsp

from vsep_core.resample import resample

# golden values of scipy 1.17.1's resample_poly (scipy is not a dependency: vsep_core.resample re-implements it)
_T = np.arange(2000)
GOLDEN_X = (np.sin(2 * np.pi * 0.013 * _T) + 0.3 * np.cos(2 * np.pi * 0.21 * _T + 0.4)).astype(np.float32)
GOLDEN_POLY = [
    (1, 3, 667, [0, 1, 100, 333, 666], [0.0323966, 0.2217084, -0.5880463, -0.0814251, -0.2076541]),
    (2, 3, 1334, [0, 1, 100, 777, 1333], [0.2196707, -0.0711069, -0.585796, 0.940369, 0.0881684]),
]


@pytest.mark.parametrize(("up", "down", "n", "idx", "want"), GOLDEN_POLY)
def test_polyphase_matches_scipy(up, down, n, idx, want):
    y = resample(GOLDEN_X, 3000 * down, 3000 * up, "polyphase")
    assert y.shape == (n,) and y.dtype == np.float32
    np.testing.assert_allclose(y[idx], want, atol=2e-7)


def test_resample_lengths_and_identity():
    x = np.random.default_rng(1).standard_normal((2, 1001)).astype(np.float32)
    assert resample(x, 44100, 44100, "polyphase") is x
    for res_type in ("polyphase", "sinc_fastest", "sinc_medium", "kaiser_fast"):
        assert resample(x, 44100, 14700, res_type).shape == (2, 334)  # ceil(1001 / 3)
        assert resample(x, 7350, 14700, res_type).shape == (2, 2002)


def test_stft_istft_round_trip():
    x = np.random.default_rng(2).standard_normal(9000).astype(np.float32)
    for n_fft, hop in ((960, 480), (640, 80), (512, 160), (2048, 512)):
        spec = dsp.stft(x, n_fft, hop)
        assert spec.shape == (n_fft // 2 + 1, 1 + len(x) // hop) and spec.dtype == np.complex64
        y = dsp.istft(spec.astype(np.complex128), hop)
        assert len(y) == hop * (spec.shape[1] - 1)
        np.testing.assert_allclose(y, x[:len(y)], atol=1e-5)


def test_every_packaged_band_param_file_loads():
    names = bands.band_param_names()
    assert len(names) == 26 and "4band_v2" in names
    for name in names:
        bp = bands.load_band_params(name)
        assert bp.bins > 0 and bp.sr == bp.top.sr
        assert sum(b.crop_stop - b.crop_start for b in bp.bands) <= bp.bins
    assert bands.load_band_params("4band_v4_ms_fullband.json").bins == 896  # n_bins overrides bins
    assert bands.load_band_params("4band_v2").high_end_bins() == (480 - 383) + (672 - 668)
    with pytest.raises(KeyError, match="unknown VR band parameters"):
        bands.load_band_params("5band_nope")


@pytest.mark.parametrize(("name", "v51", "min_db"), [
    ("4band_v2", False, 30), ("4band_44100", False, 28), ("3band_44100_msb2", False, 38),
    ("1band_sr44100_hl512", False, 45), ("4band_v4_ms_fullband", True, 28), ("4band_v3_sn", True, 30),
])
def test_split_merge_round_trip(name, v51, min_db):
    """Unmasked spectrogram back to a wave: the crossfaded bands add up to the input (UVR's own
    filters leave 20-45 dB of crossfade error, and cut what lies above the top crop)."""
    bp = bands.load_band_params(name)
    x = noise_mix(1.0, bp.sr).astype(np.float64)
    waves = bands.band_waves(x.astype(np.float32), bp)
    assert [w.shape[1] for w in waves][-1] == x.shape[1]
    frames = bands.frames_of(waves, bp)
    spec = bands.analyse(waves, bp, v51, frames)
    assert spec.spec.shape == (2, bp.bins + 1, frames)
    y = bands.synthesise(spec.spec, bp, v51)
    n = y.shape[1]
    assert 0 <= x.shape[1] - n <= bp.top.hl  # UVR's wave stops at its last frame centre
    top_hz = bp.top.crop_stop * bp.sr / bp.top.n_fft
    xs = np.fft.irfft(np.where(np.fft.rfftfreq(n, 1 / bp.sr) < top_hz, np.fft.rfft(x[:, :n]), 0), n)
    snr = 10 * np.log10(np.sum(xs**2) / np.sum((y - xs) ** 2))
    assert snr >= min_db, f"{name}: {snr:.1f} dB"


def test_split_merge_keeps_channels_apart():
    bp = bands.load_band_params("4band_v2")
    x = noise_mix(1.0)
    x[1] = 0
    waves = bands.band_waves(x, bp)
    y = bands.synthesise(bands.analyse(waves, bp, False, bands.frames_of(waves, bp)).spec, bp, False)
    assert np.abs(y[1]).max() < 1e-6 < np.abs(y[0]).max()


def test_high_end_bins_come_from_the_input():
    bp = bands.load_band_params("4band_v2")
    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal((2, 44100))).astype(np.float32)
    waves = bands.band_waves(x, bp)
    frames = bands.frames_of(waves, bp)
    spec = bands.analyse(waves, bp, False, frames, high_end=True)
    assert spec.high_end.shape == (2, bp.high_end_bins(), frames)
    plain = bands.synthesise(spec.spec, bp, False)
    mirrored = bands.mirror_high_end(spec.spec, spec.high_end, bp)
    assert np.all(np.abs(mirrored) <= np.abs(spec.high_end) + 1e-6)  # never louder than the input's own bins
    high = bands.synthesise(spec.spec, bp, False, mirrored)
    assert band_energy(plain, 44100, 18500, 22000) < 1e-4 * band_energy(high, 44100, 18500, 22000)
    np.testing.assert_allclose(band_energy(plain, 44100, 50, 15000), band_energy(high, 44100, 50, 15000), rtol=1e-3)
