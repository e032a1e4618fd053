"""STFT/iSTFT of the VR pre/post-processing, in numpy.

They follow the conventions of the tools UVR's VR code was written with (librosa's defaults:
periodic Hann window, centred frames with zero padding, window-sum-square normalisation on the
way back), so that vsep reproduces its numbers. Resampling is vsep_core.resample (the band's
``res_type`` picks the method there).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def hann(n: int) -> np.ndarray:
    """Periodic Hann window of length `n` (float64)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def stft(wave: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred STFT of a 1-D signal -> complex64 [n_fft // 2 + 1, 1 + len // hop]."""
    pad = n_fft // 2
    y = np.pad(np.asarray(wave, dtype=np.float32), (pad, pad))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]
    spec = np.fft.rfft(frames * hann(n_fft), axis=-1)
    return np.ascontiguousarray(spec.T).astype(np.complex64)


def istft(spec: np.ndarray, hop: int) -> np.ndarray:
    """Inverse of `stft` for a [bins, frames] spectrum -> float64 [hop * (frames - 1)]."""
    n_fft = 2 * (spec.shape[0] - 1)
    n_frames = spec.shape[1]
    window = hann(n_fft)
    frames = np.fft.irfft(spec.T, n=n_fft, axis=-1) * window
    total = n_fft + hop * (n_frames - 1)
    y = np.zeros(total + hop)
    wss = np.zeros(total + hop)
    win_sq = window**2
    # overlap-add column block k of every frame at once: frame i's block lands at (i + k) * hop,
    # and blocks of one k never overlap each other (width <= hop)
    for k in range(-(-n_fft // hop)):
        width = min(hop, n_fft - k * hop)
        span = slice(k * hop, k * hop + n_frames * hop)
        y[span].reshape(n_frames, hop)[:, :width] += frames[:, k * hop:k * hop + width]
        wss[span].reshape(n_frames, hop)[:, :width] += win_sq[k * hop:k * hop + width]
    pad = n_fft // 2
    y = y[pad:total - pad]
    wss = wss[pad:total - pad]
    nz = wss > np.finfo(wss.dtype).tiny
    y[nz] /= wss[nz]
    return y
