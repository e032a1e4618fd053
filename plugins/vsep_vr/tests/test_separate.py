"""VR separation with tiny random nets and hand-made mask runners: stems, lengths, channels and every option."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from vr_testlib import SMALL_V5, TINY_V5, TINY_V51, band_energy, make_ctx, noise_mix, parity_db
from vsep_vr import bands
from vsep_vr.inference import adjust_aggression, count_batches, merge_artifacts, predict_mask
from vsep_vr.model import VRModel, load_model, secondary_stem
from vsep_vr.plugin import VRParams

from vsep_core.api import SeparationModel
from vsep_core.errors import ModelDataError, UsageError


def _runner_const(value: float):
    return lambda batch: np.full_like(batch, value)


def _sigmoid_runner(batch: np.ndarray) -> np.ndarray:
    """Elementwise (position-independent) mask: windows and shifts cannot change it."""
    return 1 / (1 + np.exp(-(8 * batch - 0.2)))


def _model(runner, primary: str = "Instrumental", param: str = "4band_v2", **settings) -> VRModel:
    return VRModel(runner, 128, False, bands.load_band_params(param), primary, VRParams(**settings))


def _mix_reconstruction(mix: np.ndarray, param: str = "4band_v2", v51: bool = False) -> np.ndarray:
    bp = bands.load_band_params(param)
    waves = bands.band_waves(mix, bp)
    return bands.synthesise(bands.analyse(waves, bp, v51, bands.frames_of(waves, bp)).spec, bp, v51)


# ---------------------------------------------------------------------------------------------- stems and shapes


def test_tiny_v5_and_v51_stems_and_lengths(tiny_dir: Path, mix: np.ndarray):
    for name, data, stems in (("tiny_v5.pth", TINY_V5, ["Instrumental", "Vocals"]),
                              ("tiny_v51.pth", TINY_V51, ["No Echo", "Echo"])):
        v51 = "nout" in data
        model = load_model(make_ctx(tiny_dir / name, data))
        assert isinstance(model, SeparationModel)
        assert model.sample_rate == 44100 and model.stems == stems
        out = model.separate(mix[:, :50000])
        assert list(out) == stems  # primary first, as the reference writes them
        for wave in out.values():
            assert wave.shape == (2, 50000) and wave.dtype == np.float32 and np.isfinite(wave).all()
        # the two stems split the mix: primary + secondary == the unmasked round trip
        rebuilt = _mix_reconstruction(mix[:, :50000], data["vr_model_param"], v51)
        n = rebuilt.shape[1]
        np.testing.assert_allclose(out[stems[0]][:, :n] + out[stems[1]][:, :n], rebuilt, atol=2e-5)
        assert np.all(out[stems[0]][:, n:] == 0)  # the < 1 hop UVR never produces is silence


def test_secondary_stem_names():
    assert [secondary_stem(s) for s in ("Vocals", "Instrumental", "No Echo", "Echo", "Noise", "Primary Stem")] == \
        ["Instrumental", "Vocals", "Echo", "No Echo", "No Noise", "Secondary Stem"]


def test_mono_short_and_silent_inputs(mix: np.ndarray):
    model = _model(_sigmoid_runner)
    mono = model.separate(mix[:1, :30000])
    assert all(w.shape == (1, 30000) for w in mono.values())
    stereo = model.separate(np.repeat(mix[:1, :30000], 2, axis=0))
    np.testing.assert_allclose(mono["Vocals"][0], stereo["Vocals"].mean(axis=0), atol=1e-7)
    assert all(w.shape == (2, 700) for w in model.separate(mix[:, :700]).values())
    for n in (1, 10, 100):  # shorter than some bands' STFT: padded with silence, cut back (was a reshape error)
        out = model.separate(mix[:, :n])
        assert all(w.shape == (2, n) and np.isfinite(w).all() for w in out.values())
    silent = model.separate(np.zeros((2, 20000), np.float32))
    assert all(np.all(w == 0) for w in silent.values())
    assert all(w.shape == (2, 0) for w in model.separate(np.zeros((2, 0), np.float32)).values())
    with pytest.raises(UsageError, match="mono or stereo"):
        model.separate(np.zeros((3, 1000), np.float32))


def test_missing_band_params_and_bad_settings(tiny_dir: Path):
    with pytest.raises(ModelDataError, match="vr_model_param"):
        load_model(make_ctx(tiny_dir / "tiny_v5.pth", {"primary_stem": "Vocals"}))
    with pytest.raises(ModelDataError, match="unknown VR band parameters"):
        load_model(make_ctx(tiny_dir / "tiny_v5.pth", {"vr_model_param": "9band"}))
    with pytest.raises(UsageError, match="VRParams"):
        load_model(dataclasses.replace(make_ctx(tiny_dir / "tiny_v5.pth", TINY_V5), params={"aggression": 5}))


# ---------------------------------------------------------------------------------------------- aggression


def test_adjust_aggression_exponents():
    mask = np.full((2, 10, 4), 0.5, np.float32)
    out = adjust_aggression(mask.copy(), 0.05, 3, invert=False)
    np.testing.assert_allclose(out[:, :3], 0.5 ** (1 + 0.1 / 3), rtol=1e-6)
    np.testing.assert_allclose(out[:, 3:], 0.5 ** 1.1, rtol=1e-6)
    inv = adjust_aggression(mask.copy(), 0.05, 3, invert=True)  # non-accompaniment primary: a -> 1 - a
    np.testing.assert_allclose(inv[:, 3:], 0.5 ** 1.9, rtol=1e-6)
    corr = adjust_aggression(mask.copy(), 0.05, 3, invert=False, correction={"left": 0.2, "right": -0.1})
    np.testing.assert_allclose(corr[0, 3:], 0.5 ** 1.3, rtol=1e-6)
    np.testing.assert_allclose(corr[1, 3:], 0.5 ** 1.0, rtol=1e-6)
    assert np.array_equal(adjust_aggression(mask.copy(), 0.0, 3, invert=True), mask)  # 0 leaves the mask alone


def test_aggression_moves_energy_between_stems(mix: np.ndarray):
    x = mix[:, :30000]
    energy = {}
    for primary in ("Instrumental", "Vocals"):
        for aggr in (0, 5, 50, 100):
            out = _model(_runner_const(0.5), primary, aggression=aggr).separate(x)
            energy[primary, aggr] = float(np.sum(out[primary] ** 2))
    # accompaniment primary: mask ** (1 + a), a = 2 * aggression / 100, shrinks it as aggression grows
    assert energy["Instrumental", 0] > energy["Instrumental", 5] > energy["Instrumental", 50] > \
        energy["Instrumental", 100]
    # vocal primary: UVR uses 1 - a instead (0 stays 0): exponent 1.9 at 5, 1 at 50 (= off), 0 at 100
    assert energy["Vocals", 5] < energy["Vocals", 50] == energy["Vocals", 0] < energy["Vocals", 100]


# ---------------------------------------------------------------------------------------------- windows, batches, TTA


@pytest.mark.parametrize("window", [320, 512, 1024])
def test_window_sizes_cover_every_frame(window: int):
    frames = 700
    mag = np.random.default_rng(4).random((2, 673, frames)).astype(np.float32)
    calls = []

    def runner(batch):
        calls.append(batch.shape)
        assert batch.shape[1:] == (2, 673, window)
        return _sigmoid_runner(batch)

    mask = predict_mask(mag, runner, window, 128, batch_size=2)
    assert mask.shape == (2, 673, frames)
    assert len(calls) == count_batches(frames, window, 128, 2, False)
    np.testing.assert_allclose(mask, _sigmoid_runner(mag / mag.max()), rtol=1e-6)  # every frame masked once


def test_a_runner_may_return_only_the_centre_of_each_window():
    """The torch runner returns the kept frames only (`predict_centre`): the same mask as a runner that returns
    whole windows; a runner that returns any other width is an error that names both widths."""
    mag = np.random.default_rng(6).random((2, 673, 700)).astype(np.float32)
    whole = predict_mask(mag, _sigmoid_runner, 512, 128, batch_size=2, tta=True)
    centre = predict_mask(mag, lambda b: _sigmoid_runner(b)[..., 128:-128], 512, 128, batch_size=2, tta=True)
    np.testing.assert_array_equal(centre, whole)
    with pytest.raises(ValueError, match="gave 200 frames for a 512-frame window"):
        predict_mask(mag, lambda b: _sigmoid_runner(b)[..., :200], 512, 128)


def test_window_batch_and_tta_on_a_real_net(tiny_dir: Path, mix: np.ndarray):
    x = mix[:, :32000]  # 126 frames of 256 samples
    runs = {}
    for key, params in {"w512": {}, "w320": {"window_size": 320}, "b3": {"batch_size": 3, "window_size": 320},
                        "tta": {"enable_tta": True}}.items():
        calls: list[tuple[int, int]] = []
        model = load_model(make_ctx(tiny_dir / "small_v5.pth", SMALL_V5, **params))
        runs[key] = model.separate(x, progress=lambda done, total, c=calls: c.append((done, total)))["Vocals"]
        assert calls and calls[-1][0] == calls[-1][1]  # progress ends at its total
        runs[key + "_calls"] = calls[-1][1]
    # 126 frames: one 512 window (roi 256); two 320 windows (roi 64), one batch of 3; TTA: 2 more windows
    assert (runs["w512_calls"], runs["w320_calls"], runs["b3_calls"], runs["tta_calls"]) == (1, 2, 1, 3)
    assert parity_db(runs["b3"], runs["w320"])[0] > 90  # batching changes speed, not numbers
    assert parity_db(runs["w320"], runs["w512"])[0] < 80  # a different context per window
    assert parity_db(runs["tta"], runs["w512"])[0] < 80
    with pytest.raises(UsageError, match="too small"):
        load_model(make_ctx(tiny_dir / "tiny_v5.pth", TINY_V5, window_size=256))


def test_tta_averages_two_shifted_passes():
    mag = np.random.default_rng(5).random((2, 673, 100)).astype(np.float32)  # pass 1: one window; pass 2: two
    plain = predict_mask(mag, _sigmoid_runner, 512, 128)
    np.testing.assert_allclose(predict_mask(mag, _sigmoid_runner, 512, 128, tta=True), plain, rtol=1e-6)
    position = {"n": 0}

    def counting(batch):  # a different constant per call: TTA = mean of the two passes' masks
        position["n"] += 1
        return np.full_like(batch, 0.2 if position["n"] == 1 else 0.6)

    np.testing.assert_allclose(predict_mask(mag, counting, 512, 128, batch_size=2, tta=True), 0.4, rtol=1e-6)
    assert position["n"] == 2


# ---------------------------------------------------------------------------------------------- post-process, high end


def test_merge_artifacts_fills_long_confident_ranges():
    mask = np.full((2, 8, 400), 0.1, np.float32)
    mask[:, :, 100:300] = 0.5
    out = merge_artifacts(mask.copy(), threshold=0.2)
    assert np.all(out[:, :, 140:260] == 1)  # inside the range, past the fades
    assert np.all(out[:, :, :100] == mask[:, :, :100]) and np.all(out[:, :, 300:] == mask[:, :, 300:])
    assert 0.5 < out[0, 0, 120] < 1  # fade in
    short = np.full((2, 8, 400), 0.1, np.float32)
    short[:, :, 100:150] = 0.5  # shorter than min_range: left alone
    assert np.array_equal(merge_artifacts(short.copy(), threshold=0.2), short)
    assert np.array_equal(merge_artifacts(mask.copy(), threshold=0.6), mask)  # nothing above the threshold


def test_post_process_and_threshold(mix: np.ndarray):
    x = mix[:, :40000]
    plain = _model(_runner_const(0.3), "Vocals", aggression=0).separate(x)
    pp = _model(_runner_const(0.3), "Vocals", aggression=0, enable_post_process=True,
                post_process_threshold=0.2).separate(x)
    high_thres = _model(_runner_const(0.3), "Vocals", aggression=0, enable_post_process=True,
                        post_process_threshold=0.3).separate(x)
    assert np.sum(pp["Vocals"] ** 2) > 2 * np.sum(plain["Vocals"] ** 2)  # mask pushed to 1 in the middle
    np.testing.assert_array_equal(high_thres["Vocals"], plain["Vocals"])  # 0.3 is not above 0.3


def test_high_end_process_restores_the_top_octave(tiny_dir: Path):
    rng = np.random.default_rng(6)
    x = (0.2 * rng.standard_normal((2, 40000))).astype(np.float32)
    plain = _model(_runner_const(0.5), aggression=0).separate(x)
    high = _model(_runner_const(0.5), aggression=0, high_end_process=True).separate(x)
    for stem in ("Instrumental", "Vocals"):
        assert band_energy(plain[stem], 44100, 18500, 22000) < 1e-4 * band_energy(high[stem], 44100, 18500, 22000)
        assert band_energy(high[stem], 44100, 18500, 22000) > 0.02 * band_energy(x, 44100, 18500, 22000)
        np.testing.assert_allclose(band_energy(plain[stem], 44100, 100, 15000),
                                   band_energy(high[stem], 44100, 100, 15000), rtol=1e-3)


# ---------------------------------------------------------------------------------------------- other rates


def test_32k_band_params_model(tiny_dir: Path):
    """A 1-band 32 kHz model: it declares 32000 Hz (core resamples to and from it) and keeps lengths."""
    data = {"vr_model_param": "1band_sr32000_hl512", "primary_stem": "Vocals"}
    model = load_model(make_ctx(tiny_dir / "tiny_v5.pth", data))  # a v5 net takes any bins
    assert model.sample_rate == 32000 and model.stems == ["Vocals", "Instrumental"]
    x = noise_mix(1.2, 32000)
    out = model.separate(x)
    assert all(w.shape == x.shape for w in out.values())
    assert parity_db(out["Vocals"] + out["Instrumental"], _mix_reconstruction(x, "1band_sr32000_hl512"))[0] > 80
