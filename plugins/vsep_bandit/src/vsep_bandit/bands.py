"""BandIt's "musical" band layout: overlapping bands equally spaced on the MIDI (log-frequency) scale.

Each of ``n_bands`` bands is centred on a point of a MIDI grid from the first STFT bin's frequency to
Nyquist and spans one band step (in octaves) on either side. Bins covered by several bands are shared;
``weights`` gives each bin's share (1 / the number of bands covering it), so the masks of all bands add
up to one mask per bin. Band edges are in bins, so they depend on ``n_fft`` and ``n_bands`` only (the
sample rate cancels out).

numpy only: cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def hz_to_midi(hz: np.ndarray | float) -> np.ndarray:
    """MIDI note number of a frequency (A4 = 440 Hz = 69)."""
    return 12.0 * (np.log2(np.asarray(hz, dtype=np.float64)) - np.log2(440.0)) + 69.0


def midi_to_hz(notes: np.ndarray | float) -> np.ndarray:
    """Frequency of a MIDI note number."""
    return 440.0 * 2.0 ** ((np.asarray(notes, dtype=np.float64) - 69.0) / 12.0)


@dataclass(frozen=True)
class BandLayout:
    """Bands as half-open bin ranges [start, end) and each band's per-bin weights (float64)."""

    bands: tuple[tuple[int, int], ...]
    weights: tuple[np.ndarray, ...]

    @property
    def widths(self) -> list[int]:
        """Number of bins in each band."""
        return [end - start for start, end in self.bands]


def musical_membership(n_bands: int, fs: float, n_freqs: int) -> np.ndarray:
    """[n_bands, n_freqs] 0/1 matrix: which bins each musical band covers."""
    n_fft = 2 * (n_freqs - 1)
    bin_hz = fs / n_fft
    f_min, f_max = bin_hz, fs / 2
    step_octaves = np.log2(f_max / f_min) / n_bands
    half_width = 2.0 ** step_octaves
    centres = midi_to_hz(np.linspace(max(0.0, float(hz_to_midi(f_min))), float(hz_to_midi(f_max)), n_bands))
    lows = np.floor(centres / half_width / bin_hz).astype(int)
    highs = np.ceil(centres * half_width / bin_hz).astype(int)
    member = np.zeros((n_bands, n_freqs))
    for i in range(n_bands):
        member[i, lows[i]:highs[i] + 1] = 1.0
    member[0, :lows[0]] = 1.0  # the lowest band reaches down to DC
    member[-1, highs[-1] + 1:] = 1.0  # the highest up to Nyquist
    return member


def musical_layout(n_fft: int, n_bands: int, fs: float = 44100) -> BandLayout:
    """The musical band layout of an ``n_fft`` STFT: contiguous bands, empty ones dropped."""
    member = musical_membership(n_bands, fs, n_fft // 2 + 1)
    share = member / member.sum(axis=0, keepdims=True)
    bands, weights = [], []
    for row, row_share in zip(member, share, strict=True):
        active = np.flatnonzero(row)
        if active.size == 0:
            continue
        start, end = int(active[0]), int(active[-1]) + 1
        bands.append((start, end))
        weights.append(row_share[start:end].copy())
    return BandLayout(tuple(bands), tuple(weights))


def check_layout(layout: BandLayout, n_freqs: int) -> None:
    """Raise ValueError unless the bands start at bin 0, leave no gap and are non-empty."""
    previous_end = 0
    for start, end in layout.bands:
        if end <= start:
            raise ValueError(f"band [{start}, {end}) is empty")
        if start > previous_end:
            raise ValueError(f"bins {previous_end}..{start - 1} are in no band")
        previous_end = max(previous_end, end)
    if previous_end < n_freqs:
        raise ValueError(f"bins from {previous_end} on are in no band")
