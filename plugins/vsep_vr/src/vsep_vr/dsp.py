"""Signal helpers of the VR pre/post-processing, in numpy: STFT/iSTFT and resampling.

They follow the conventions of the tools UVR's VR code was written with, so that vsep
reproduces its numbers:

- `stft`/`istft`: periodic Hann window, centred frames with zero padding, window-sum-square
  normalisation on the way back (librosa's defaults).
- `resample`: `"polyphase"` is the zero-phase Kaiser-windowed FIR of scipy's `resample_poly`,
  `"sinc_fastest"` is libsamplerate's SRC_SINC_FASTEST converter (both re-implemented here
  with the same filters and alignment, so the numbers match to float precision); other kinds
  fall back to soxr. Output length is always ``ceil(n * target / orig)``.
"""

from __future__ import annotations

import math
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


def _firwin_kaiser(numtaps: int, cutoff: float, beta: float = 5.0) -> np.ndarray:
    """Linear-phase low-pass FIR (cutoff relative to Nyquist), Kaiser window, unit DC gain."""
    m = np.arange(numtaps) - 0.5 * (numtaps - 1)
    h = cutoff * np.sinc(cutoff * m)
    h *= np.kaiser(numtaps, beta)
    return h / np.sum(h)


def resample_poly(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Rational resampling along the last axis, as scipy.signal.resample_poly(x, up, down, axis=-1)."""
    g = math.gcd(up, down)
    up, down = up // g, down // g
    if up == down == 1:
        return x.copy()
    n_in = x.shape[-1]
    n_out = -(-n_in * up // down)
    max_rate = max(up, down)
    half_len = 10 * max_rate
    h = _firwin_kaiser(2 * half_len + 1, 1.0 / max_rate).astype(x.dtype) * up
    n_pre_pad = down - half_len % down
    n_pre_remove = (half_len + n_pre_pad) // down
    n_post_pad = 0
    while ((n_in - 1) * up + len(h) + n_pre_pad + n_post_pad - 1) // down + 1 < n_out + n_pre_remove:
        n_post_pad += 1
    h = np.concatenate((np.zeros(n_pre_pad, h.dtype), h, np.zeros(n_post_pad, h.dtype))).astype(np.float64)
    lead = x.shape[:-1]
    flat = np.asarray(x, dtype=np.float64).reshape(-1, n_in)
    out = np.empty((flat.shape[0], n_out))
    # y[k] = sum_j h[j] * xu[(k + n_pre_remove) * down - j], xu = x upsampled by zero-stuffing
    for c in range(flat.shape[0]):
        xu = np.zeros((n_in - 1) * up + 1)
        xu[::up] = flat[c]
        full = _convolve(xu, h)
        out[c] = full[n_pre_remove * down::down][:n_out]
    return out.reshape(*lead, n_out).astype(x.dtype, copy=False)


def _convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Full linear convolution; direct for short filters, FFT-based for long ones."""
    if len(b) <= 256:
        return np.convolve(a, b)
    n = len(a) + len(b) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)[:n]


def fix_length(x: np.ndarray, size: int) -> np.ndarray:
    """Trim or zero-pad the last axis to `size`."""
    n = x.shape[-1]
    if n > size:
        return x[..., :size]
    if n < size:
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, size - n)])
    return x


@lru_cache(maxsize=1)
def _lsr_table() -> np.ndarray:
    import base64
    import zlib

    from vsep_vr._lsr_fastest import COEFFS_B64

    raw = zlib.decompress(base64.b64decode("".join(COEFFS_B64)))
    return np.frombuffer(raw, dtype="<f4").astype(np.float64)


@lru_cache(maxsize=32)
def _lsr_kernels(up: int, down: int) -> tuple[float, tuple[tuple[int, np.ndarray], ...]]:
    """Per output phase p (0..up-1): (first input offset, taps) of libsamplerate's sinc_fastest.

    Output j reads input c = (j * down) // up plus offsets; the phase p = (j * down) % up sets
    the fractional position p / up. Mirrors `calc_output_single` of src_sinc.c: fixed point with
    12 fraction bits, linear interpolation in the 128-per-zero-crossing table.
    """
    from vsep_vr._lsr_fastest import INCREMENT

    table = _lsr_table()
    ratio = up / down
    float_inc = INCREMENT * min(1.0, ratio)
    inc = int(np.rint(float_inc * 4096))
    max_fi = (len(table) - 2) << 12

    def coeff(fi: np.ndarray) -> np.ndarray:
        idx = fi >> 12
        frac = (fi & 4095) / 4096.0
        return table[idx] + frac * (table[idx + 1] - table[idx])

    kernels = []
    for p in range(up):
        start = int(np.rint(p / up * float_inc * 4096))
        left = start + inc * np.arange((max_fi - start) // inc + 1)
        right = (inc - start) + inc * np.arange((max_fi - (inc - start)) // inc + 1)
        taps = np.concatenate([coeff(left)[::-1], coeff(right)])  # offsets -len(left)+1 .. len(right)
        kernels.append((1 - len(left), taps))
    return float_inc / INCREMENT, tuple(kernels)


def resample_sinc_fastest(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """libsamplerate SRC_SINC_FASTEST (as used through librosa's res_type="sinc_fastest"):
    float32 in, float32 out, zeros outside the signal, ``ceil(n * ratio)`` samples."""
    g = math.gcd(orig_sr, target_sr)
    up, down = target_sr // g, orig_sr // g
    scale, kernels = _lsr_kernels(up, down)
    n = x.shape[-1]
    n_out = -(-n * up // down)
    flat = np.asarray(x, dtype=np.float32).astype(np.float64).reshape(-1, n)
    out = np.zeros((flat.shape[0], n_out), dtype=np.float32)
    j = np.arange(n_out)
    pos, phase = np.divmod(j * down, up)
    lo = max(-first for first, _ in kernels)
    hi = max(len(taps) + first for first, taps in kernels)
    padded = np.pad(flat, ((0, 0), (lo, max(hi, 0) + 1)))
    for p, (first, taps) in enumerate(kernels):
        sel = np.nonzero(phase == p)[0]
        if not len(sel):
            continue
        # y[j] = sum_k taps[k] * x[pos_j + first + k]: one gather per tap, only the outputs of this phase
        start = pos[sel] + first + lo
        acc = np.zeros((flat.shape[0], len(sel)))
        for k, tap in enumerate(taps):
            acc += tap * padded[:, start + k]
        out[:, sel] = (scale * acc).astype(np.float32)
    return out.reshape(*x.shape[:-1], n_out)


def resample(x: np.ndarray, orig_sr: int, target_sr: int, res_type: str) -> np.ndarray:
    """Resample along the last axis to exactly ``ceil(n * target_sr / orig_sr)`` samples.

    `res_type` is a UVR band-parameter resampler name: "polyphase" (exact scipy filter),
    "sinc_fastest" (libsamplerate's filter); anything else ("sinc_medium", "kaiser_fast",
    "soxr_hq", ...) uses soxr.
    """
    if orig_sr == target_sr:
        return x
    n_out = int(math.ceil(x.shape[-1] * target_sr / orig_sr))
    if res_type == "polyphase":
        y = resample_poly(x, target_sr, orig_sr)
    elif res_type == "sinc_fastest":
        y = resample_sinc_fastest(x, orig_sr, target_sr)
    else:
        import soxr

        flat = np.ascontiguousarray(x.reshape(-1, x.shape[-1]).T)
        y = soxr.resample(flat, orig_sr, target_sr, quality="HQ").T.reshape(*x.shape[:-1], -1)
    return fix_length(np.asarray(y, dtype=x.dtype), n_out)
