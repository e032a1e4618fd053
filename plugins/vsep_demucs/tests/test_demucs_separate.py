"""Separation behaviour: bag weighting, shifts, segments and overlap, short and mono inputs."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from demucs_testlib import context, make_tiny, write_bag
from torch import nn
from vsep_demucs.apply import BagRunner
from vsep_demucs.model import load_model

Mix = Callable[[float], np.ndarray]


def run(model_path: Path, audio: np.ndarray, **params) -> tuple[dict[str, np.ndarray], list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []
    stems = load_model(context(model_path, **params)).separate(audio, lambda d, t: calls.append((d, t)))
    return stems, calls


def test_bag_of_models_weights_each_source(tiny_dir: Path, mix: Mix) -> None:
    """Per-source weights: Drums from A only, Bass from B only, Other the mean, Vocals 1:3."""
    audio = mix(1.0)
    a, _ = run(tiny_dir / "tiny_a.yaml", audio, shifts=0)
    b, _ = run(tiny_dir / "tiny_b.yaml", audio, shifts=0)
    bag = write_bag(tiny_dir, "tiny_bag", ["aaaa0001", "bbbb0002"],
                    weights=[[1.0, 0.0, 1.0, 0.5], [0.0, 2.0, 1.0, 1.5]])  # sources: drums, bass, other, vocals
    out, calls = run(bag, audio, shifts=0)
    assert calls[-1] == (2, 2)
    assert not np.allclose(a["Drums"], b["Drums"], atol=1e-4)  # the two models really differ
    np.testing.assert_allclose(out["Drums"], a["Drums"], atol=1e-6)
    np.testing.assert_allclose(out["Bass"], b["Bass"], atol=1e-6)
    np.testing.assert_allclose(out["Other"], (a["Other"] + b["Other"]) / 2, atol=1e-6)
    np.testing.assert_allclose(out["Vocals"], 0.25 * a["Vocals"] + 0.75 * b["Vocals"], atol=1e-6)


def test_shifts_are_reproducible_with_a_seed(tiny_dir: Path, mix: Mix) -> None:
    audio = mix(0.5)
    state = random.getstate()
    first, calls = run(tiny_dir / "tiny_a.yaml", audio, shifts=1, seed=7)
    again, _ = run(tiny_dir / "tiny_a.yaml", audio, shifts=1, seed=7)
    other, _ = run(tiny_dir / "tiny_a.yaml", audio, shifts=1, seed=8)
    assert random.getstate() == state  # the global RNG is never used
    assert calls == [(1, 1)]
    for name in first:
        assert first[name].shape == audio.shape
        np.testing.assert_array_equal(first[name], again[name])
    assert max(np.abs(first[n] - other[n]).max() for n in first) > 1e-5


def test_segment_and_overlap_settings(tiny_dir: Path, mix: Mix) -> None:
    """2 s input, 1.5 s model: overlap 0.25 -> 2 chunks; overlap 0.5 -> 3; segment 1 s -> 3."""
    audio = mix(2.0)
    default, calls_default = run(tiny_dir / "tiny_a.yaml", audio, shifts=0)
    half, calls_half = run(tiny_dir / "tiny_a.yaml", audio, shifts=0, overlap=0.5)
    short, calls_short = run(tiny_dir / "tiny_a.yaml", audio, shifts=0, segment_size="1")
    assert [c[1] for c in calls_default[-1:] + calls_half[-1:] + calls_short[-1:]] == [2, 3, 3]
    for stems in (default, half, short):
        assert all(s.shape == audio.shape and np.isfinite(s).all() for s in stems.values())
    assert np.abs(default["Vocals"] - half["Vocals"]).max() > 1e-6
    assert np.abs(default["Vocals"] - short["Vocals"]).max() > 1e-6


@pytest.mark.parametrize("samples", [1000, 3000])
def test_clip_shorter_than_a_segment(tiny_dir: Path, mix: Mix, samples: int) -> None:
    audio = mix(1.0)[:, :samples].copy()
    split, _ = run(tiny_dir / "tiny_a.yaml", audio, shifts=0)
    whole, _ = run(tiny_dir / "tiny_a.yaml", audio, shifts=0, segments_enabled=False)
    for name, stem in split.items():
        assert stem.shape == audio.shape and np.isfinite(stem).all()
        np.testing.assert_allclose(stem, whole[name], atol=1e-6)


def test_mono_input(tiny_dir: Path, mix: Mix) -> None:
    mono = mix(0.5)[:1].copy()
    out, _ = run(tiny_dir / "tiny_a.yaml", mono, shifts=0)
    stereo, _ = run(tiny_dir / "tiny_a.yaml", np.repeat(mono, 2, axis=0), shifts=0)
    for name, stem in out.items():
        assert stem.shape == mono.shape and stem.dtype == np.float32
        np.testing.assert_allclose(stem[0], stereo[name].mean(0), atol=1e-6)


def test_silent_input_gives_silent_stems(tiny_dir: Path) -> None:
    out, _ = run(tiny_dir / "tiny_a.yaml", np.zeros((2, 4410), np.float32), shifts=0)
    assert all(np.array_equal(s, np.zeros((2, 4410), np.float32)) for s in out.values())


def test_hybrid_demucs_v3_package(tmp_path: Path, mix: Mix) -> None:
    """A demucs.hdemucs.HDemucs package (hdemucs_mmi's class) loads, takes the yaml segment, separates."""
    make_tiny(tmp_path, "75fc33f5", seed=5, hybrid_v3=True)
    model = load_model(context(write_bag(tmp_path, "tiny_mmi", ["75fc33f5"], segment=1), shifts=0))
    assert type(model.models[0]).__name__ == "HDemucs" and model.models[0].segment == 1
    audio = mix(1.6)
    calls: list[tuple[int, int]] = []
    stems = model.separate(audio, lambda d, t: calls.append((d, t)))
    assert calls[-1] == (3, 3)  # 1 s segments, stride 0.75 s over 1.6 s; no padding to a training length
    assert list(stems) == ["Bass", "Drums", "Other", "Vocals"]
    assert all(s.shape == audio.shape and np.isfinite(s).all() for s in stems.values())
    assert np.abs(stems["Vocals"]).max() > 1e-4


# ---- alignment of the overlap-add and shift logic, with an exact stand-in network


class Echo(nn.Module):
    """Returns its input once per source, times (source index + 1): exact, so any misaligned
    padding, trimming, shift or cross-fade shows as a difference."""

    sources = ["drums", "bass", "other", "vocals"]
    samplerate = 1000
    audio_channels = 2

    def __init__(self, segment: float, use_train_segment: bool = True):
        super().__init__()
        self.segment = segment
        self.use_train_segment = use_train_segment
        self.lengths: list[int] = []

    def valid_length(self, length: int) -> int:
        train = int(self.segment * self.samplerate)
        if self.use_train_segment and length > train:
            raise ValueError("too long")
        return train if self.use_train_segment else length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.lengths.append(x.shape[-1])
        gains = torch.arange(1, 5, dtype=x.dtype)[None, :, None, None]
        return x[:, None] * gains


@pytest.mark.parametrize(("shifts", "overlap", "split"), [(0, 0.25, True), (0, 0.9, True), (3, 0.25, True),
                                                          (2, 0.5, False), (0, 0.0, True)])
def test_overlap_add_and_shifts_are_aligned(shifts: int, overlap: float, split: bool,
                                            caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    mix = torch.randn(1, 2, 3333)
    model = Echo(segment=0.7)
    runner = BagRunner([model], [[1.0] * 4], shifts=shifts, split=split, overlap=overlap,
                       device=torch.device("cpu"))
    calls: list[tuple[int, int]] = []
    with caplog.at_level(logging.WARNING, logger="vsep.demucs"):
        out = runner.run(mix, random.Random(0), lambda d, t: calls.append((d, t)))
    expected = mix[:, None] * torch.arange(1, 5, dtype=mix.dtype)[None, :, None, None]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert calls[-1][0] == calls[-1][1] == len(model.lengths)
    assert set(model.lengths) == {700}  # every chunk runs at the training length
    assert ("training segment" in caplog.text) == (not split)  # no-split falls back to segments, loudly


@pytest.mark.parametrize("shifts", [0, 1])
def test_single_stem_runs_only_the_bag_models_that_weigh_it(tiny_dir: Path, mix: Mix, shifts: int) -> None:
    """htdemucs_ft's layout (one model per source): --single_stem Vocals runs one model of four and gives
    that stem bit for bit as the full run (the shift offsets of the skipped models are still drawn)."""
    import dataclasses

    audio = mix(1.0)
    bag = write_bag(tiny_dir, "tiny_ft", ["aaaa0001", "bbbb0002", "aaaa0001", "bbbb0002"],
                    weights=[[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    full, full_calls = run(bag, audio, shifts=shifts)
    calls: list[tuple[int, int]] = []
    model = load_model(dataclasses.replace(context(bag, shifts=shifts), wanted_stems=("vocals",)))
    single = model.separate(audio, lambda d, t: calls.append((d, t)))
    assert list(single) == ["Vocals"]
    np.testing.assert_array_equal(single["Vocals"], full["Vocals"])
    if shifts == 0:
        assert calls[-1][1] * 4 == full_calls[-1][1]  # a quarter of the network passes
    assert calls[-1][0] == calls[-1][1] < full_calls[-1][1]
    unknown = load_model(dataclasses.replace(context(bag, shifts=shifts), wanted_stems=("Instrumental",)))
    everything = unknown.separate(audio)
    assert list(everything) == list(full)
    for stem in full:
        np.testing.assert_array_equal(everything[stem], full[stem])


def test_half_precision_runs_under_autocast(tiny_dir: Path, mix: Mix) -> None:
    """precision bf16 (LoadContext.precision): close to fp32, not fp32's numbers."""
    import dataclasses

    audio = mix(0.5)
    fp32, _ = run(tiny_dir / "tiny_a.yaml", audio, shifts=0)
    half = load_model(dataclasses.replace(context(tiny_dir / "tiny_a.yaml", shifts=0), precision="bf16"))
    out = half.separate(audio)
    for stem in fp32:
        diff = np.sum((out[stem] - fp32[stem]) ** 2)
        assert 0 < diff < 1e-3 * np.sum(fp32[stem] ** 2)
