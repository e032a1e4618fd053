"""The shared overlap-add and the crossfaded parts of --chunk_duration."""

from __future__ import annotations

import numpy as np
import pytest

from vsep_core.chunking import CrossfadeJoiner, overlap_add, plan_parts


@pytest.mark.parametrize("chunk,hop", [(64, 64), (64, 32), (64, 16), (100, 37), (128, 1)])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_identity_model_gives_back_the_input(chunk, hop, batch_size):
    x = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32)
    calls = []

    def identity(batch):
        calls.append(batch.shape[0])
        assert batch.shape[1:] == (2, chunk)
        return batch

    y = overlap_add(x, identity, chunk, hop, batch_size=batch_size)
    assert y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1e-6
    assert max(calls) <= batch_size


def test_extra_output_dims_and_short_input():
    x = np.random.default_rng(1).standard_normal((2, 10)).astype(np.float32)
    y = overlap_add(x, lambda b: np.stack([b, 2 * b], axis=1), 64, 16)
    assert y.shape == (2, 2, 10)
    assert np.allclose(y[1], 2 * x, atol=1e-5) and np.allclose(y[0], x, atol=1e-5)


def test_progress_reaches_total():
    seen = []
    overlap_add(np.zeros((1, 500), np.float32), lambda b: b, 50, 25, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] and len(seen) == seen[-1][1]


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
