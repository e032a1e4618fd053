"""`Ensembler`: the reference's ensemble class, as a thin layer over :mod:`vsep_core.ensemble`.

    from vsep_core.ensembler import Ensembler
    result = Ensembler(logger, "avg_wave", [3, 1]).ensemble([vocals_a, vocals_b])

Behaves as audio-separator's ``Ensembler``: no waveform gives None, one is returned as it
is, waveforms of different lengths count as zero-padded to the longest, different channel
counts are an error, and bad weights (wrong count, NaN/inf, zero sum) give a warning on the
given logger and equal weights. An unknown algorithm is reported when ``ensemble`` runs.
The algorithms themselves are vsep's (docs/ensembles.md lists where they differ on purpose).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from vsep_core import ensemble as _ensemble
from vsep_core.errors import InvalidAudioDataError, UsageError


class Ensembler:
    """Combine the same stem from several models with one of the ensemble algorithms."""

    def __init__(self, logger: logging.Logger | None = None, algorithm: str = _ensemble.DEFAULT_ALGORITHM,
                 weights: Sequence[float] | None = None):
        self.logger = logger or logging.getLogger("vsep.ensemble")
        self.algorithm = algorithm
        self.weights = weights

    def ensemble(self, waveforms: Sequence[np.ndarray]) -> np.ndarray | None:
        """Ensemble ``waveforms`` (``[channels, samples]`` each, or 1-D mono) into one.

        Returns None for an empty list, the only waveform unchanged for a list of one, else
        an array as long as the longest input in the inputs' float precision.
        """
        if not waveforms:
            return None
        if len(waveforms) == 1:
            return waveforms[0]
        waves = [np.asarray(w) for w in waveforms]
        mono = all(w.ndim == 1 for w in waves)
        waves = [w[None] if w.ndim == 1 else w for w in waves]
        if len({w.shape[0] for w in waves}) != 1 or any(w.ndim != 2 for w in waves):
            shapes = ", ".join(str(tuple(np.shape(w))) for w in waveforms)
            raise InvalidAudioDataError(f"all waveforms must have the same number of channels to be ensembled: "
                                        f"{shapes}")
        if self.algorithm not in _ensemble.algorithms():
            raise UsageError(f"Unknown ensemble algorithm: {self.algorithm!r}; choose one of: "
                             f"{', '.join(_ensemble.algorithms())}")
        weights = _ensemble.resolve_weights(self.weights, len(waves), self.logger)
        self.logger.debug("ensembling %d waveforms with %s", len(waves), self.algorithm)
        result = _ensemble.ensemble(waves, self.algorithm, None if weights is None else weights.tolist())
        dtype = np.result_type(*waves)
        if np.issubdtype(dtype, np.floating):
            result = result.astype(dtype, copy=False)
        return result[0] if mono else result

    def _stft(self, wave: np.ndarray, nfft: int = _ensemble.N_FFT, hl: int = _ensemble.HOP_LENGTH) -> np.ndarray:
        """Complex STFT ``[2, bins, frames]`` as the ``*_fft`` algorithms see it; mono is doubled to stereo."""
        if (nfft, hl) != (_ensemble.N_FFT, _ensemble.HOP_LENGTH):
            raise UsageError(f"the ensemble STFT uses n_fft {_ensemble.N_FFT} and hop {_ensemble.HOP_LENGTH}, "
                             f"not {nfft}/{hl}")
        wave = np.asarray(wave)
        if wave.ndim == 1:
            wave = np.stack([wave, wave])
        elif wave.shape[0] == 1:
            wave = np.vstack([wave, wave])
        frames = 1 + wave.shape[-1] // hl
        return np.transpose(_ensemble._stft(wave, 0, frames), (0, 2, 1))
