"""Overlap-add over long inputs, and the crossfaded parts of ``--chunk_duration``.

`overlap_add` is the generic windowed chunker plugins can use (numpy, any leading output
dims). `plan_parts` + `CrossfadeJoiner` split a very long input into parts that overlap by a
short crossfade, so joined stems do not click where the reference butts parts together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np


def default_window(chunk: int) -> np.ndarray:
    """A Hann window with no zero samples, so every covered sample has positive weight."""
    return np.hanning(chunk + 2)[1:-1].astype(np.float64)


def chunk_starts(padded_length: int, chunk: int, hop: int) -> list[int]:
    """Window starts 0, hop, 2*hop, ... covering `padded_length` samples."""
    if hop <= 0 or hop > chunk:
        raise ValueError(f"hop must be in 1..chunk ({chunk}), got {hop}")
    last = max(padded_length - chunk, 0)
    starts = list(range(0, last + 1, hop))
    if starts[-1] != last:
        starts.append(last)
    return starts


def overlap_add(audio: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], chunk: int, hop: int,
                window: np.ndarray | None = None, batch_size: int = 1,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Run `fn` over windows of `audio` [..., samples] and overlap-add the results.

    `fn` takes a batch [B, ..., chunk] and returns [B, ..., chunk] (extra leading dims allowed,
    e.g. stems). The input is zero-padded by `chunk - hop` at the start and up to a whole window
    at the end, so every sample is covered the same way; outputs are divided by the summed
    window. A model that returns its input gives back the input.
    """
    n = audio.shape[-1]
    window = default_window(chunk) if window is None else np.asarray(window, dtype=np.float64)
    left = chunk - hop
    right = chunk + (-(n + left)) % hop
    padded = np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(left, right)])
    starts = chunk_starts(padded.shape[-1], chunk, hop)
    out = None
    weight = np.zeros(padded.shape[-1], dtype=np.float64)
    for i in range(0, len(starts), batch_size):
        group = starts[i:i + batch_size]
        batch = np.stack([padded[..., s:s + chunk] for s in group])
        result = np.asarray(fn(batch))
        if out is None:
            out = np.zeros(result.shape[1:-1] + (padded.shape[-1],), dtype=np.float64)
        for s, r in zip(group, result, strict=True):
            out[..., s:s + chunk] += r * window
            weight[s:s + chunk] += window
        if progress:
            progress(min(i + batch_size, len(starts)), len(starts))
    assert out is not None
    return (out[..., left:left + n] / weight[left:left + n]).astype(np.float32)


@dataclass(frozen=True)
class Part:
    """One part of a long input: read [start, stop); its first `overlap` samples crossfade with the previous part."""

    start: int
    stop: int
    overlap: int


def plan_parts(frames: int, part_frames: int, fade_frames: int) -> list[Part]:
    """Split `frames` into parts of `part_frames` (the last may be shorter), each but the first
    starting `fade_frames` early so it overlaps its predecessor by a crossfade."""
    if part_frames <= 0:
        raise ValueError("part length must be positive")
    fade = max(0, min(fade_frames, part_frames // 2))
    parts = []
    for s in range(0, frames, part_frames):
        start = max(0, s - fade) if s else 0
        parts.append(Part(start, min(frames, s + part_frames), s - start))
    return parts


class CrossfadeJoiner:
    """Join per-part stems with a linear (equal-gain) crossfade, yielding finished blocks in order."""

    def __init__(self) -> None:
        self._tail: dict[str, np.ndarray] = {}

    def push(self, stems: dict[str, np.ndarray], overlap_prev: int,
             overlap_next: int) -> Iterator[tuple[str, np.ndarray]]:
        """Add one part's stems; `overlap_prev`/`overlap_next` are the samples it shares with its
        neighbours. Yields (stem, block) pairs that are final; the shared end is held back."""
        for name, x in stems.items():
            x = np.asarray(x, dtype=np.float32)
            tail = self._tail.pop(name, None)
            if tail is not None and overlap_prev:
                fade_in = np.linspace(0.0, 1.0, overlap_prev + 2, dtype=np.float32)[1:-1]
                x = x.copy()
                x[..., :overlap_prev] = tail * (1 - fade_in) + x[..., :overlap_prev] * fade_in
            keep = x.shape[-1] - overlap_next
            if overlap_next:
                self._tail[name] = x[..., keep:]
            yield name, x[..., :keep]
