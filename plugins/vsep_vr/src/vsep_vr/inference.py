"""Mask inference over windows and the mask post-processing of UVR's VR separator (numpy only).

A *runner* is any callable mapping a float32 batch [B, 2, bins + 1, window] of normalised
magnitudes to masks: of the same shape (an ONNX export), or of the window's centre only,
[B, 2, bins + 1, window - 2 * offset] (the torch network's `predict_centre`, which skips the
work only the cut frames need).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]

NON_ACCOM_STEMS = ("Vocals", "Other", "Bass", "Drums", "Guitar", "Piano", "Synthesizer", "Strings", "Woodwinds",
                   "Brass", "Wind Inst")
"""Primary stems for which UVR inverts the aggression exponent (1 - a)."""


def make_padding(width: int, window: int, offset: int) -> tuple[int, int, int]:
    """(left, right, roi): pads that make `width` frames a whole number of `roi`-frame steps
    with `offset` frames of context on each side of every window."""
    roi = window - offset * 2
    if roi == 0:
        roi = window
    return offset, roi - (width % roi) + offset, roi


def count_batches(frames: int, window: int, offset: int, batch_size: int, tta: bool) -> int:
    """Network calls `predict_mask` makes for `frames` frames."""
    left, right, roi = make_padding(frames, window, offset)
    n = -(-((left + frames + right - 2 * offset) // roi) // batch_size)
    if tta:
        n += -(-((left + frames + right + 2 * (roi // 2) - 2 * offset) // roi) // batch_size)
    return n


def _windows_mask(mag: np.ndarray, left: int, right: int, roi: int, window: int, offset: int, runner: Runner,
                  batch_size: int, tick: Callable[[], None]) -> np.ndarray:
    padded = np.pad(mag, ((0, 0), (0, 0), (left, right)))
    peak = padded.max()
    if peak > 0:
        padded /= peak
    patches = (padded.shape[2] - 2 * offset) // roi
    if patches <= 0:
        raise ValueError("window_size too small for this model")
    out = []
    for i in range(0, patches, batch_size):
        batch = np.stack([padded[:, :, s * roi:s * roi + window] for s in range(i, min(i + batch_size, patches))])
        pred = runner(np.ascontiguousarray(batch, dtype=np.float32))
        if pred.shape[3] == window and offset > 0:  # a whole window's mask: keep its centre
            pred = pred[:, :, :, offset:window - offset]
        if pred.shape[3] != roi:
            raise ValueError(f"the VR runner gave {pred.shape[3]} frames for a {window}-frame window; expected "
                             f"{window} or its centre, {roi}")
        out.append(np.concatenate(list(pred), axis=2))
        tick()
    return np.concatenate(out, axis=2)


def predict_mask(mag: np.ndarray, runner: Runner, window: int, offset: int, batch_size: int = 1, tta: bool = False,
                 tick: Callable[[], None] | None = None) -> np.ndarray:
    """float32 magnitudes [2, bins + 1, frames] -> mask [2, bins + 1, frames].

    The padded magnitude is divided by its peak; windows of `window` frames step by
    `window - 2 * offset`; TTA adds a pass shifted by half a step and averages the two.
    """
    tick = tick or (lambda: None)
    frames = mag.shape[2]
    left, right, roi = make_padding(frames, window, offset)
    mask = _windows_mask(mag, left, right, roi, window, offset, runner, batch_size, tick)
    if tta:
        left += roi // 2
        right += roi // 2
        mask_tta = _windows_mask(mag, left, right, roi, window, offset, runner, batch_size, tick)
        mask_tta = mask_tta[:, :, roi // 2:]
        return (mask[:, :, :frames] + mask_tta[:, :, :frames]) * 0.5
    return mask[:, :, :frames]


def adjust_aggression(mask: np.ndarray, aggression: float, split_bin: int, invert: bool,
                      correction: dict[str, float] | None = None) -> np.ndarray:
    """UVR's `adjust_aggr`: mask ** (1 + a/3) below `split_bin`, ** (1 + a) above, a = 2 * aggression
    (aggression = setting / 100), a -> 1 - a when `invert` (primary stem is a non-accompaniment
    stem such as Vocals); `correction` adds per-channel offsets ("left"/"right"). In place."""
    a = aggression * 2
    if a == 0:
        return mask
    if invert:
        a = 1 - a
    per_channel = [a, a]
    if correction is not None:
        per_channel[0] += correction["left"]
        per_channel[1] += correction["right"]
    for ch in range(2):
        mask[ch, :split_bin] = np.power(mask[ch, :split_bin], 1 + per_channel[ch] / 3)
        mask[ch, split_bin:] = np.power(mask[ch, split_bin:], 1 + per_channel[ch])
    return mask


def merge_artifacts(mask: np.ndarray, threshold: float = 0.2, min_range: int = 64, fade_size: int = 32) -> np.ndarray:
    """UVR's post-process: frame ranges longer than `min_range` where every bin of the mask
    exceeds `threshold` are pushed to 1 with `fade_size`-frame fades (in place).

    A mask with no such frame, or whose ranges do not fit the fades (UVR then prints an error
    and goes on), is returned unchanged.
    """
    if min_range < fade_size * 2:
        raise ValueError("min_range must be >= fade_size * 2")
    idx = np.where(mask.min(axis=(0, 1)) > threshold)[0]
    if len(idx) == 0:
        return mask
    breaks = np.where(np.diff(idx) != 1)[0]
    start_idx = np.insert(idx[breaks + 1], 0, idx[0])
    end_idx = np.append(idx[breaks], idx[-1])
    keep = np.where(end_idx - start_idx > min_range)[0]
    weight = np.zeros_like(mask)
    try:
        _fill_weights(weight, start_idx[keep], end_idx[keep], fade_size, mask.shape[2])
    except ValueError as exc:  # a fade that does not fit at the edges: UVR skips the post-process
        logging.getLogger("vsep").warning("VR post-process skipped: %s", exc)
        return mask
    mask += weight * (1 - mask)
    return mask


def _fill_weights(weight: np.ndarray, starts: np.ndarray, ends: np.ndarray, fade_size: int, width: int) -> None:
    if len(starts) > 0:
        old_e = None
        for s, e in zip(starts, ends, strict=True):
            if old_e is not None and s - old_e < fade_size:
                s = old_e - fade_size * 2
            if s != 0:
                weight[:, :, s:s + fade_size] = np.linspace(0, 1, fade_size)
            else:
                s -= fade_size
            if e != width:
                weight[:, :, e - fade_size:e] = np.linspace(1, 0, fade_size)
            else:
                e += fade_size
            weight[:, :, s + fade_size:e - fade_size] = 1
            old_e = e
