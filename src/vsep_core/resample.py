"""The resamplers the reference uses, one function per method, with librosa.resample's conventions.

The reference resamples through ``librosa.resample(y, orig_sr, target_sr, res_type=...)`` (and
``librosa.load(..., sr=, res_type=)``, which calls it), so the method depends on the place:

- `soxr_hq` (soxr, quality HQ; librosa's default): how the reference loads every input of MDX-Net,
  MDXC and Demucs.
- `libsamplerate` with `sinc_fastest` / `sinc_medium` / `sinc_best` (the `samplerate` package, which
  is libsamplerate): MDXC pitch shift (`sinc_fastest`), VR bands whose ``res_type`` names one, VR band
  reconstruction (`sinc_fastest`).
- `resampy_kaiser` with `kaiser_fast` / `kaiser_best` (resampy): VR bands whose ``res_type`` is
  ``kaiser_fast`` (e.g. the top band of 4band_v2/v3, so the input of those models).
- `scipy_polyphase` (scipy.signal.resample_poly's filter, re-implemented here in numpy): VR bands whose
  ``res_type`` is ``polyphase``.

Every function takes ``[..., samples]`` (any leading axes, each row resampled on its own, as
librosa does), returns float32, and gives exactly ``ceil(n * rate_out / rate_in)`` samples
(cut or zero-padded, librosa's ``fix=True``). `by_name` maps a librosa ``res_type`` to its function.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from vsep_core.errors import VsepError

LIBSAMPLERATE_CONVERTERS = ("sinc_fastest", "sinc_medium", "sinc_best")
RESAMPY_FILTERS = ("kaiser_fast", "kaiser_best")


class ResamplerMissingError(VsepError):
    """The library behind a resampling method is not installed."""


def output_length(n: int, rate_in: float, rate_out: float) -> int:
    """librosa's output length, ``ceil(n * rate_out / rate_in)``, computed exactly: librosa multiplies by a
    float ratio, which can land a hair above a whole number and add a sample (22050 samples from 44.1 to
    48 kHz give it 24001, not 24000); integer rates give the exact count here."""
    if float(rate_in).is_integer() and float(rate_out).is_integer():
        return -(-int(n) * int(rate_out) // int(rate_in))
    return int(math.ceil(n * (float(rate_out) / float(rate_in))))


def fix_length(x: np.ndarray, size: int) -> np.ndarray:
    """Cut or zero-pad the last axis to `size` samples."""
    n = x.shape[-1]
    if n > size:
        return x[..., :size]
    if n < size:
        return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, size - n)])
    return x


def _rows(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).reshape(-1, x.shape[-1])


def _finish(rows: list[np.ndarray], x: np.ndarray, size: int) -> np.ndarray:
    out = np.stack([fix_length(np.asarray(r, dtype=np.float32), size) for r in rows]) if rows else \
        np.zeros((0, size), np.float32)
    return out.reshape(*x.shape[:-1], size)


def _need(module: str, method: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ResamplerMissingError(f"resampling with {method} needs the Python package {module!r}: "
                                    f"pip install {module}") from exc


def soxr_hq(x: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """soxr at quality HQ: librosa's default ``res_type="soxr_hq"``."""
    soxr = _need("soxr", "soxr_hq")
    size = output_length(x.shape[-1], rate_in, rate_out)
    return _finish([soxr.resample(r, rate_in, rate_out, quality="HQ") for r in _rows(x)], x, size)


def libsamplerate(x: np.ndarray, rate_in: float, rate_out: float, converter: str = "sinc_fastest") -> np.ndarray:
    """libsamplerate's sinc converters (``res_type`` sinc_fastest / sinc_medium / sinc_best), any ratio,
    through the `samplerate` package exactly as librosa calls it (ratio = rate_out / rate_in)."""
    if converter not in LIBSAMPLERATE_CONVERTERS:
        raise ValueError(f"unknown libsamplerate converter {converter!r}; one of {LIBSAMPLERATE_CONVERTERS}")
    samplerate = _need("samplerate", converter)
    ratio = float(rate_out) / float(rate_in)
    size = output_length(x.shape[-1], rate_in, rate_out)
    return _finish([samplerate.resample(r, ratio, converter_type=converter) for r in _rows(x)], x, size)


def sinc_fastest(x: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """libsamplerate's SRC_SINC_FASTEST (``res_type="sinc_fastest"``): MDXC pitch shift, VR reconstruction."""
    return libsamplerate(x, rate_in, rate_out, "sinc_fastest")


def resampy_kaiser(x: np.ndarray, rate_in: float, rate_out: float, kind: str = "kaiser_fast") -> np.ndarray:
    """resampy's band-limited sinc with a Kaiser window (``res_type`` kaiser_fast / kaiser_best)."""
    if kind not in RESAMPY_FILTERS:
        raise ValueError(f"unknown resampy filter {kind!r}; one of {RESAMPY_FILTERS}")
    resampy = _need("resampy", kind)
    size = output_length(x.shape[-1], rate_in, rate_out)
    rows = _rows(x)
    if not rows.shape[0] or not rows.shape[1]:
        return _finish([np.zeros(0, np.float32)] * rows.shape[0], x, size)
    out = resampy.resample(rows, rate_in, rate_out, filter=kind, axis=-1)
    return _finish(list(out), x, size)


def _firwin_kaiser(numtaps: int, cutoff: float, beta: float = 5.0) -> np.ndarray:
    """Linear-phase low-pass FIR (cutoff relative to Nyquist), Kaiser window, unit DC gain (scipy.signal.firwin)."""
    m = np.arange(numtaps) - 0.5 * (numtaps - 1)
    h = cutoff * np.sinc(cutoff * m)
    h *= np.kaiser(numtaps, beta)
    return h / np.sum(h)


def _convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Full linear convolution; direct for short filters, FFT-based for long ones."""
    if len(b) <= 256:
        return np.convolve(a, b)
    n = len(a) + len(b) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(a, size) * np.fft.rfft(b, size), size)[:n]


def scipy_polyphase(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """``res_type="polyphase"``: scipy.signal.resample_poly(x, rate_out/g, rate_in/g) with its default
    Kaiser (beta 5) FIR, re-implemented in numpy (same filter and alignment; scipy is not a dependency)."""
    g = math.gcd(int(rate_in), int(rate_out))
    up, down = int(rate_out) // g, int(rate_in) // g
    n_in = x.shape[-1]
    size = output_length(n_in, rate_in, rate_out)
    if up == down:
        return np.asarray(x, dtype=np.float32).copy()
    max_rate = max(up, down)
    half_len = 10 * max_rate
    h = _firwin_kaiser(2 * half_len + 1, 1.0 / max_rate).astype(np.float32) * up
    n_pre_pad = down - half_len % down
    n_pre_remove = (half_len + n_pre_pad) // down
    n_post_pad = 0
    while ((n_in - 1) * up + len(h) + n_pre_pad + n_post_pad - 1) // down + 1 < size + n_pre_remove:
        n_post_pad += 1
    h = np.concatenate((np.zeros(n_pre_pad, h.dtype), h, np.zeros(n_post_pad, h.dtype))).astype(np.float64)
    rows = []
    # y[k] = sum_j h[j] * xu[(k + n_pre_remove) * down - j], xu = x upsampled by zero-stuffing
    for row in _rows(x).astype(np.float64):
        xu = np.zeros(max(0, (n_in - 1) * up + 1))
        xu[::up] = row
        rows.append(_convolve(xu, h)[n_pre_remove * down::down][:size])
    return _finish(rows, x, size)


Resampler = Callable[[np.ndarray, float, float], np.ndarray]


def by_name(res_type: str) -> Resampler:
    """The function for a librosa ``res_type`` name (soxr_hq, sinc_*, kaiser_*, polyphase)."""
    if res_type == "soxr_hq":
        return soxr_hq
    if res_type in LIBSAMPLERATE_CONVERTERS:
        return lambda x, rin, rout: libsamplerate(x, rin, rout, res_type)
    if res_type in RESAMPY_FILTERS:
        return lambda x, rin, rout: resampy_kaiser(x, rin, rout, res_type)
    if res_type == "polyphase":
        return scipy_polyphase
    raise ValueError(f"unknown resampler {res_type!r}: one of soxr_hq, polyphase, "
                     f"{', '.join(LIBSAMPLERATE_CONVERTERS + RESAMPY_FILTERS)}")


def resample(x: np.ndarray, rate_in: float, rate_out: float, res_type: str = "soxr_hq") -> np.ndarray:
    """``librosa.resample(x, orig_sr=rate_in, target_sr=rate_out, res_type=res_type)``; `x` itself when the
    rates are equal."""
    if rate_in == rate_out:
        return x
    return by_name(res_type)(x, rate_in, rate_out)
