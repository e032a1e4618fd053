"""Core's MSST-style chunker and the crossfaded parts of --chunk_duration."""

from __future__ import annotations

import numpy as np
import pytest

from vsep_core.chunking import CrossfadeJoiner, DemixPlan, demix, fade_window, plan_parts, standardize


@pytest.mark.parametrize("n", [1000, 150, 37])
@pytest.mark.parametrize("chunk,overlap", [(64, 2), (64, 4), (100, 3)])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_generic_demix_gives_back_the_input_of_an_identity_model(n, chunk, overlap, batch_size):
    x = np.random.default_rng(0).standard_normal((2, n)).astype(np.float32)
    calls = []

    def identity(batch):
        calls.append(batch.shape[0])
        assert batch.shape[1:] == (2, chunk)
        return batch

    plan = DemixPlan.generic(chunk, overlap)
    y = demix(x, identity, plan, batch_size=batch_size)
    assert y.shape == x.shape and y.dtype == np.float32
    assert max(calls) <= batch_size
    # MSST fades the first window in when it shares its batch, so an unpadded input's first
    # sample has no weight and comes out 0; every other sample is the input.
    padded = n > 2 * plan.border
    first_unweighted = not padded and batch_size > 1 and n > plan.step and plan.fade > 0
    start = 1 if first_unweighted else 0
    assert np.max(np.abs(y[:, start:] - x[:, start:])) < 1e-5
    if first_unweighted:
        assert np.all(y[:, 0] == 0)


def test_generic_demix_weights_windows_with_linear_fades():
    # chunk 20, two windows per chunk: hop 10, fade 2, border 10; an 18-sample input is not padded.
    x = np.ones((1, 18), np.float32)
    marks = iter([1.0, 2.0])
    y = demix(x, lambda b: b * next(marks), DemixPlan.generic(20, 2), batch_size=1)
    # window 0 (alone in its batch: no fade-in) covers 0..17, window 1 (ends the input: no fade-out) 10..17
    w = fade_window(20, 2)
    first, last = np.r_[np.ones(2), w[2:]], np.r_[w[:-2], np.ones(2)]
    expected = (1 * first[:18] + np.r_[np.zeros(10), 2 * last[:8]]) / (first[:18] + np.r_[np.zeros(10), last[:8]])
    assert np.allclose(y[0], expected, atol=1e-6)


def test_one_window_per_chunk_leaves_the_zero_weight_samples_silent():
    x = np.ones((1, 100), np.float32)
    y = demix(x, lambda b: b, DemixPlan.generic(20, 1), batch_size=1)
    # MSST's fade-in starts at 0 and its fade-out ends at 0: with no overlap those samples have no weight
    assert np.all(y[0, [20, 40, 60, 80]] == 0) and np.all(y[0, [19, 39]] == 0)
    assert np.allclose(y[0, 1:19], 1)


def test_plain_demix_averages_zero_padded_windows_and_keeps_extra_dims():
    x = np.random.default_rng(1).standard_normal((2, 333)).astype(np.float32)
    seen = []

    def two_stems(batch):
        seen.append(batch.copy())
        return np.stack([batch, 2 * batch], axis=1)

    y = demix(x, two_stems, DemixPlan.plain(100, 4), batch_size=2)
    assert y.shape == (2, 2, 333)
    assert np.allclose(y[0], x, atol=1e-6) and np.allclose(y[1], 2 * x, atol=1e-6)
    last = np.concatenate(seen)[-1]
    assert np.all(last[:, 333 - 325:] == 0)  # the last window (start 325) is zero-padded


def test_standardize_round_trip():
    x = np.random.default_rng(2).standard_normal((2, 500)).astype(np.float32) * 0.3 + 0.1
    z, mean, std = standardize(x)
    assert abs(float(z.mean(axis=0).mean())) < 1e-5 and abs(float(z.mean(axis=0).std()) - 1) < 1e-4
    assert np.allclose(z * std + mean, x, atol=1e-5)


def test_demix_progress_reaches_total():
    seen = []
    demix(np.zeros((1, 500), np.float32), lambda b: b, DemixPlan.generic(50, 2),
          progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] and len(seen) == seen[-1][1]


def test_bad_plans_are_refused():
    with pytest.raises(ValueError, match="num_overlap"):
        DemixPlan.generic(100, 0)
    with pytest.raises(ValueError, match="chunk size"):
        DemixPlan.plain(1, 1)


def test_parts_cover_everything_once():
    parts = plan_parts(1000, 300, 40)
    assert parts[0].start == 0 and parts[-1].stop == 1000
    assert [p.overlap for p in parts] == [0, 40, 40, 40]
    joiner = CrossfadeJoiner()
    x = np.random.default_rng(2).standard_normal((2, 1000)).astype(np.float32)
    out = []
    for i, p in enumerate(parts):
        nxt = parts[i + 1].overlap if i + 1 < len(parts) else 0
        out += [b for _, b in joiner.push({"s": x[:, p.start:p.stop]}, p.overlap, nxt)]
    joined = np.concatenate(out, axis=1)
    # Crossfading a signal with itself gives back the signal: nothing doubled, nothing lost.
    assert joined.shape == x.shape and np.allclose(joined, x, atol=1e-6)


def test_crossfade_has_no_step():
    # Two parts whose content differs by a constant: the join ramps instead of jumping.
    joiner = CrossfadeJoiner()
    a = list(joiner.push({"s": np.zeros((1, 100), np.float32)}, 0, 20))
    b = list(joiner.push({"s": np.ones((1, 100), np.float32)}, 20, 0))
    joined = np.concatenate([a[0][1], b[0][1]], axis=1)[0]
    assert joined.shape == (180,)
    assert np.max(np.diff(joined)) < 0.1
