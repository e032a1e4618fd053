"""Built-in ensemble plugin: the reference's 11 algorithms, weights handling, and its presets.

Every algorithm takes ``waves`` (float arrays ``[channels, samples]``, possibly of different
lengths and possibly memory maps) and ``weights`` (validated float64 array, one per wave, or
None) and returns float32 ``[channels, longest]``. Shorter inputs count as zero-padded at the
end, as in the reference. Work is done in blocks, so memory stays bounded however long the
inputs are.

The ``*_fft`` and ``uvr_*`` algorithms use librosa's STFT conventions (n_fft 2048, hop 1024,
periodic Hann window, ``center=True`` with zero padding, window-sum-square normalised iSTFT).
Two reference bugs are not copied (docs/ensembles.md): ``uvr_*`` keep the full length instead
of dropping the last ``N mod 1024`` samples, and ``ensemble_wav`` really picks, in each of 240
chunks along time, the model with the lowest mean absolute value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vsep_core.errors import InvalidAudioDataError, UsageError, VsepError
from vsep_core.hookspecs import hookimpl

logger = logging.getLogger("vsep.ensemble")

N_FFT = 2048
HOP_LENGTH = 1024
SPLIT_SIZE = 240
DEFAULT_ALGORITHM = "avg_wave"
WAVE_BLOCK = 1 << 18
"""Samples per block for the sample-wise algorithms."""
FRAME_BLOCK = 256
"""STFT frames per block for the spectral algorithms (about 6 s at 44.1 kHz)."""

WaveList = Sequence[np.ndarray]
AlgorithmFn = Callable[[WaveList, "np.ndarray | None"], np.ndarray]


@dataclass(frozen=True)
class EnsembleAlgorithm:
    """A named ensemble algorithm; calling it ensembles ``waves`` with optional ``weights``.

    ``uses_weights`` False means weights are ignored (and :func:`ensemble` warns when
    non-uniform weights are given).
    """

    name: str
    fn: AlgorithmFn
    uses_weights: bool = False
    description: str = ""

    def __call__(self, waves: WaveList, weights: np.ndarray | None = None) -> np.ndarray:
        return self.fn(waves, weights)


# ---------------------------------------------------------------------------------------------
# helpers


def _segment(wave: np.ndarray, start: int, stop: int, dtype: type = np.float64) -> np.ndarray:
    """``wave[:, start:stop]`` as ``dtype``, zero-padded where the range leaves ``[0, len)``."""
    n = wave.shape[-1]
    out = np.zeros((wave.shape[0], stop - start), dtype=dtype)
    lo, hi = max(start, 0), min(stop, n)
    if hi > lo:
        out[:, lo - start:hi - start] = wave[:, lo:hi]
    return out


def _longest(waves: WaveList) -> int:
    return max(w.shape[-1] for w in waves)


def _stack(waves: WaveList, start: int, stop: int) -> np.ndarray:
    return np.stack([_segment(w, start, stop, np.float32) for w in waves])


def _weights_or_ones(weights: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)


def _samplewise(combine: Callable[[np.ndarray, np.ndarray | None], np.ndarray]) -> AlgorithmFn:
    """An algorithm applying ``combine(stack[models, channels, samples], weights)`` block by block."""

    def run(waves: WaveList, weights: np.ndarray | None = None) -> np.ndarray:
        n = _longest(waves)
        out = np.empty((waves[0].shape[0], n), dtype=np.float32)
        for start in range(0, n, WAVE_BLOCK):
            stop = min(start + WAVE_BLOCK, n)
            out[:, start:stop] = combine(_stack(waves, start, stop), weights)
        return out

    return run


_WINDOW = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT))  # periodic Hann, as scipy/librosa


def _stft(wave: np.ndarray, t0: int, t1: int) -> np.ndarray:
    """Frames ``t0..t1-1`` of librosa's centred STFT of ``wave``: complex ``[channels, frames, bins]``."""
    half = N_FFT // 2
    seg = _segment(wave, t0 * HOP_LENGTH - half, (t1 - 1) * HOP_LENGTH + half)
    frames = sliding_window_view(seg, N_FFT, axis=-1)[:, ::HOP_LENGTH]
    return np.fft.rfft(frames * _WINDOW, axis=-1)


def _istft(spec: np.ndarray) -> np.ndarray:
    """Overlap-add of consecutive frames, divided by the window sum of squares (librosa's iSTFT).

    Returns float64 ``[channels, (frames - 1) * hop + n_fft]`` starting at the first frame's
    first sample (``t0 * hop - n_fft // 2`` in signal samples).
    """
    channels, t, _ = spec.shape
    frames = np.fft.irfft(spec, n=N_FFT, axis=-1) * _WINDOW
    overlap = N_FFT // HOP_LENGTH
    y = np.zeros((channels, (t + overlap - 1) * HOP_LENGTH))
    wss = np.zeros((t + overlap - 1) * HOP_LENGTH)
    win_sq = _WINDOW**2
    for k in range(overlap):
        part = slice(k * HOP_LENGTH, (k + 1) * HOP_LENGTH)
        y[:, k * HOP_LENGTH:(k + t) * HOP_LENGTH] += frames[..., part].reshape(channels, -1)
        wss[k * HOP_LENGTH:(k + t) * HOP_LENGTH] += np.tile(win_sq[part], t)
    nonzero = wss > np.finfo(np.float32).tiny
    y[:, nonzero] /= wss[nonzero]
    return y


def spectral_blocks(waves: WaveList, combine: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
                    weights: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """``combine(stack[models, channels, frames, bins], weights)`` applied to librosa-convention STFT frames
    of ``waves`` (n_fft N_FFT, hop HOP_LENGTH, periodic Hann, centred), inverted, as consecutive float32
    blocks ``[channels, k]`` that add up to the longest wave's length.

    Output samples ``[a*hop, b*hop)`` depend only on frames ``a..b``; blocks overlap by one frame
    so the result equals a whole-signal STFT -> combine -> iSTFT(length=longest). The waves are read
    in slices (``wave[:, a:b]``), so they may be on disk.
    """
    n = _longest(waves)
    if n == 0:
        return
    total = 1 + n // HOP_LENGTH
    a = 0
    while True:
        b = min(a + FRAME_BLOCK, total - 1)
        spec = np.stack([_stft(w, a, b + 1) for w in waves])
        y = _istft(combine(spec, weights))
        keep_end = n if b == total - 1 else b * HOP_LENGTH
        offset = N_FFT // 2
        yield y[:, offset:offset + keep_end - a * HOP_LENGTH].astype(np.float32)
        if keep_end >= n:
            return
        a = b


def _spectral(combine: Callable[[np.ndarray, np.ndarray | None], np.ndarray]) -> AlgorithmFn:
    """An algorithm applying ``combine(stack[models, channels, frames, bins], weights)`` to STFT frames
    (:func:`spectral_blocks`)."""

    def run(waves: WaveList, weights: np.ndarray | None = None) -> np.ndarray:
        out = np.empty((waves[0].shape[0], _longest(waves)), dtype=np.float32)
        done = 0
        for block in spectral_blocks(waves, combine, weights):
            out[:, done:done + block.shape[-1]] = block
            done += block.shape[-1]
        return out

    return run


def _pick(stack: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.take_along_axis(stack, index[None], axis=0)[0]


# ---------------------------------------------------------------------------------------------
# the combine rules (stack axis 0 = models)


def _weighted_mean(stack: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    # in the stack's precision: float32 waveforms reproduce the reference bit for bit
    w = _weights_or_ones(weights, stack.shape[0]).astype(stack.real.dtype)
    return (stack * w.reshape((-1,) + (1,) * (stack.ndim - 1))).sum(axis=0) / w.sum()


def _median(stack: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return np.median(stack, axis=0)


def _min_abs(stack: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return _pick(stack, np.argmin(np.abs(stack), axis=0))


def _max_abs(stack: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return _pick(stack, np.argmax(np.abs(stack), axis=0))


def _median_complex(stack: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return np.median(stack.real, axis=0) + 1j * np.median(stack.imag, axis=0)


def _fold(keep_new: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable:
    """UVR's pairwise fold: ``cur = new if keep_new(|new|, |cur|) else cur`` (ties go to the later model)."""

    def combine(stack: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        cur = stack[0]
        for new in stack[1:]:
            cur = np.where(keep_new(np.abs(new), np.abs(cur)), new, cur)
        return cur

    return combine


def _ensemble_wav(waves: WaveList, weights: np.ndarray | None = None) -> np.ndarray:
    """In each of 240 equal chunks along time (``np.array_split``), the model with the lowest mean |x|."""
    n = _longest(waves)
    out = np.empty((waves[0].shape[0], n), dtype=np.float32)
    size, extra = divmod(n, SPLIT_SIZE)  # np.array_split's chunk sizes: the first `extra` get one more
    bounds = np.cumsum([0] + [size + 1] * extra + [size] * (SPLIT_SIZE - extra))
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if stop == start:
            continue
        stack = _stack(waves, start, stop)
        best = int(np.argmin(np.abs(stack).mean(axis=(1, 2))))
        out[:, start:stop] = stack[best]
    return out


BUILTIN_ALGORITHMS: dict[str, EnsembleAlgorithm] = {
    a.name: a
    for a in (
        EnsembleAlgorithm("avg_wave", _samplewise(_weighted_mean), True, "weighted mean of the waveforms"),
        EnsembleAlgorithm("median_wave", _samplewise(_median), False, "per-sample median"),
        EnsembleAlgorithm("min_wave", _samplewise(_min_abs), False, "per sample, the value with the smallest |x|"),
        EnsembleAlgorithm("max_wave", _samplewise(_max_abs), False, "per sample, the value with the largest |x|"),
        EnsembleAlgorithm("avg_fft", _spectral(_weighted_mean), True, "weighted mean of the spectrograms"),
        EnsembleAlgorithm("median_fft", _spectral(_median_complex), False,
                          "per bin, median of the real and of the imaginary parts"),
        EnsembleAlgorithm("min_fft", _spectral(_min_abs), False, "per bin, the value with the smallest magnitude"),
        EnsembleAlgorithm("max_fft", _spectral(_max_abs), False, "per bin, the value with the largest magnitude"),
        EnsembleAlgorithm("uvr_max_spec", _spectral(_fold(np.greater_equal)), False,
                          "UVR Max Spec (largest magnitude; ties to the later model)"),
        EnsembleAlgorithm("uvr_min_spec", _spectral(_fold(np.less_equal)), False,
                          "UVR Min Spec (smallest magnitude; ties to the later model)"),
        EnsembleAlgorithm("ensemble_wav", _ensemble_wav, False,
                          "in each of 240 time chunks, the model with the lowest mean |x|"),
    )
}
VALID_ENSEMBLE_ALGORITHMS: tuple[str, ...] = tuple(BUILTIN_ALGORITHMS)
"""The reference's algorithm ids, in its order."""


# ---------------------------------------------------------------------------------------------
# registry and entry point


def algorithms() -> dict[str, EnsembleAlgorithm]:
    """Every installed algorithm by name (built-ins first); a name added twice is an error.

    Plain functions returned by a third-party ``vsep_ensemble_algorithms`` receive the weights
    as given (no "weights ignored" warning is made for them).
    """
    from vsep_core.plugins import get_plugin_manager

    pm = get_plugin_manager()
    found: dict[str, EnsembleAlgorithm] = {}
    owner: dict[str, str] = {}
    impls = pm.hook.vsep_ensemble_algorithms.get_hookimpls()
    for impl in sorted(impls, key=lambda i: i.plugin_name != __name__):
        for name, fn in (impl.function() or {}).items():
            if name in found:
                raise VsepError(f"two plugins add the ensemble algorithm {name!r} ({owner[name]} and "
                                f"{impl.plugin_name}); uninstall one of them")
            if not isinstance(fn, EnsembleAlgorithm):
                if not callable(fn):
                    raise VsepError(f"plugin {impl.plugin_name}: ensemble algorithm {name!r} is not callable")
                fn = EnsembleAlgorithm(name, fn, uses_weights=True)
            found[name], owner[name] = fn, impl.plugin_name
    return found


def get_algorithm(name: str) -> EnsembleAlgorithm:
    """The algorithm called ``name``, or a :class:`UsageError` listing the valid names."""
    found = algorithms()
    if name not in found:
        raise UsageError(f"unknown ensemble algorithm {name!r}; choose one of: {', '.join(found)}")
    return found[name]


def resolve_weights(weights: Sequence[float] | None, count: int,
                    log: logging.Logger | None = None) -> np.ndarray | None:
    """Validated weights as float64, or None for equal weights.

    As the reference: a wrong count, a non-finite value or a zero sum logs a warning (on
    ``log``, default this module's logger) and falls back to equal weights.
    """
    log = log or logger
    if weights is None:
        return None
    try:
        w = np.asarray([float(x) for x in weights], dtype=np.float64)
    except (TypeError, ValueError):
        log.warning("ensemble weights %r are not numbers; using equal weights", weights)
        return None
    if len(w) != count:
        log.warning("%d ensemble weights given for %d inputs; using equal weights", len(w), count)
        return None
    if not np.all(np.isfinite(w)):
        log.warning("ensemble weights %s contain a non-finite value; using equal weights", w.tolist())
        return None
    if w.sum() == 0 or not np.isfinite(w.sum()):
        log.warning("ensemble weights %s sum to zero (or overflow); using equal weights", w.tolist())
        return None
    return w


def ensemble(waves: WaveList, algorithm: str = DEFAULT_ALGORITHM,
             weights: Sequence[float] | None = None) -> np.ndarray:
    """Ensemble ``waves`` (float ``[channels, samples]`` each, lengths may differ) with ``algorithm``.

    Returns float32 ``[channels, longest]``. One wave is returned as float32 unchanged.
    Weights apply to ``avg_wave``/``avg_fft`` (and plugin algorithms); for the others,
    non-uniform weights log a warning that they are ignored.

    Example: ``ensemble([a, 3 * a], "avg_wave", [1, 3])`` is ``2.5 * a``.
    """
    if not waves:
        raise UsageError("nothing to ensemble: no waveforms given")
    algo = get_algorithm(algorithm)
    channel_counts = {w.shape[0] if w.ndim == 2 else None for w in waves}
    if len(channel_counts) != 1 or None in channel_counts:
        shapes = ", ".join(str(tuple(w.shape)) for w in waves)
        raise InvalidAudioDataError(f"cannot ensemble waveforms of different channel counts or ranks: {shapes}")
    w = resolve_weights(weights, len(waves))
    if w is not None and not algo.uses_weights:
        if not np.allclose(w, w[0]):
            logger.warning("ensemble algorithm %s does not use weights; ignoring %s", algo.name, w.tolist())
        w = None
    if len(waves) == 1:
        return np.asarray(waves[0], dtype=np.float32)
    result = np.asarray(algo(waves, w), dtype=np.float32)
    expected = (waves[0].shape[0], _longest(waves))
    if result.shape != expected:
        raise VsepError(f"ensemble algorithm {algo.name!r} returned shape {result.shape}, expected {expected} "
                        "(as long as the longest input); report this to its plugin")
    return result


# ---------------------------------------------------------------------------------------------
# hook implementations


@hookimpl
def vsep_ensemble_algorithms() -> dict[str, Any]:
    """The reference's 11 algorithms."""
    return dict(BUILTIN_ALGORITHMS)


@hookimpl
def vsep_presets() -> list[dict[str, Any]]:
    """The packaged presets (the reference's ensemble_presets.json)."""
    from vsep_core.presets import packaged_presets

    return packaged_presets()
