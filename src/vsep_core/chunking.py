"""Core's chunker for plugins, and the crossfaded parts of ``--chunk_duration``.

`demix` is MSST's chunked inference (generic mode: linear fades and a reflect border;
plain mode: averaged windows), the one chunker plugins call when they run a model as its
MSST authors do. `plan_parts` + `CrossfadeJoiner` split a very long input into parts that overlap by a
short crossfade, so joined stems do not click where the reference butts parts together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np


def fade_window(chunk: int, fade: int) -> np.ndarray:
    """MSST's window: a linear fade-in over `fade` samples, ones, a linear fade-out over `fade`."""
    window = np.ones(chunk, dtype=np.float32)
    if fade > 0:
        window[:fade] = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        window[-fade:] = np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return window


@dataclass(frozen=True)
class DemixPlan:
    """How :func:`demix` cuts an input: window length, hop, fade and reflect border."""

    chunk: int
    step: int
    fade: int
    border: int

    @classmethod
    def generic(cls, chunk_size: int, num_overlap: int) -> DemixPlan:
        """MSST's generic mode: hop chunk//num_overlap, fades of chunk//10, a border of chunk-hop."""
        _check_plan(chunk_size, num_overlap)
        step = chunk_size // num_overlap
        return cls(chunk_size, step, chunk_size // 10, chunk_size - step)

    @classmethod
    def plain(cls, chunk_size: int, num_overlap: int) -> DemixPlan:
        """MSST's demucs mode: hop chunk//num_overlap, no fades, no border, plain averaging."""
        _check_plan(chunk_size, num_overlap)
        return cls(chunk_size, chunk_size // num_overlap, 0, 0)


def _check_plan(chunk_size: int, num_overlap: int) -> None:
    if chunk_size < 2:
        raise ValueError(f"chunk size must be at least 2 samples, not {chunk_size}")
    if not 1 <= num_overlap <= chunk_size:
        raise ValueError(f"num_overlap must be in 1..{chunk_size}, not {num_overlap}")


def demix(mix: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], plan: DemixPlan, batch_size: int = 1,
          progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Run `fn` over overlapping windows of `mix` [channels, samples] as MSST's ``demix`` does.

    `fn` takes a batch [B, channels, chunk] and returns [B, stems, channels, chunk] (or
    [B, channels, chunk] for one output). Generic mode (``plan.fade > 0``): the mix is
    reflect-padded by ``plan.border`` on both sides when it is longer than twice the border; a
    last window longer than half a chunk is reflect-padded, a shorter one zero-padded; outputs
    are weighted by the fade window, where a batch that holds only the first window has no
    fade-in and a batch that ends the input no fade-out (MSST decides per batch, so the batch
    size changes the result at the edges: kept for parity). Plain mode zero-pads every window
    and averages. Samples no window weighs are 0. Returns float32 [stems, channels, samples]
    (or [channels, samples]) exactly as long as `mix`.
    """
    mix = np.asarray(mix, dtype=np.float32)
    n = mix.shape[-1]
    chunk, step, fade, border = plan.chunk, plan.step, plan.fade, plan.border
    generic = fade > 0
    padded = generic and border > 0 and n > 2 * border
    if padded:
        mix = np.pad(mix, ((0, 0), (border, border)), mode="reflect")
    length = mix.shape[-1]
    starts = list(range(0, length, step))
    window = fade_window(chunk, fade) if generic else np.ones(chunk, dtype=np.float32)
    result: np.ndarray | None = None
    counter = np.zeros(length, dtype=np.float32)
    done = 0
    for first in range(0, len(starts), batch_size):
        group = starts[first:first + batch_size]
        parts = []
        for s in group:
            part = mix[:, s:s + chunk]
            short = chunk - part.shape[-1]
            if short:
                mode = "reflect" if generic and part.shape[-1] > chunk // 2 else "constant"
                part = np.pad(part, ((0, 0), (0, short)), mode=mode)
            parts.append(part)
        out = np.asarray(fn(np.stack(parts)), dtype=np.float32)
        if result is None:
            result = np.zeros(out.shape[1:-1] + (length,), dtype=np.float32)
        w = window
        if generic:
            w = window.copy()
            if first == 0 and len(group) == 1:
                w[:fade] = 1.0
            elif group[-1] + step >= length:
                w[-fade:] = 1.0
        for s, y in zip(group, out, strict=True):
            seg = min(chunk, length - s)
            result[..., s:s + seg] += y[..., :seg] * w[:seg]
            counter[s:s + seg] += w[:seg]
        done += len(group)
        if progress:
            progress(done, len(starts))
    assert result is not None
    with np.errstate(invalid="ignore", divide="ignore"):
        result /= counter
    np.nan_to_num(result, copy=False, nan=0.0)
    if padded:
        result = result[..., border:-border]
    return np.ascontiguousarray(result)


def standardize(mix: np.ndarray) -> tuple[np.ndarray, float, float]:
    """MSST's ``inference.normalize``: the mix scaled by its mono downmix's mean and std.

    Returns (normalised mix, mean, std); undo on each stem with ``stem * std + mean``.
    """
    mono = mix.mean(axis=0)
    mean, std = float(mono.mean()), float(mono.std())
    if std == 0.0:
        std = 1.0
    return ((mix - mean) / std).astype(np.float32), mean, std


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
