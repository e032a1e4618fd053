"""VR band parameters and the multi-band spectrogram the networks see.

A VR model works on one spectrogram stitched from several STFTs: the input is resampled to
each band's rate (top band first, each lower band from the one above it), each band's STFT
is cropped to `[crop_start, crop_stop)` and the crops are stacked into `bins + 1` rows.
Going back, every band's rows are put into a full spectrum, low/high-pass crossfaded,
inverted, resampled up to the next band's rate and summed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from vsep_core.resample import fix_length, resample
from vsep_vr import dsp

RECONSTRUCTION_RESAMPLER = "sinc_fastest"
"""Resampler UVR uses between bands when it rebuilds the waveform (whatever the band params say)."""

_FLAGS = ("mid_side", "mid_side_b", "mid_side_b2", "stereo_w", "stereo_n", "reverse")


@dataclass(frozen=True)
class Band:
    """One band of a band-parameter file."""

    sr: int
    hl: int
    n_fft: int
    crop_start: int
    crop_stop: int
    res_type: str = "polyphase"
    lpf_start: int = 0
    lpf_stop: int = 0
    hpf_start: int = 0
    hpf_stop: int = 0
    convert_channels: str | None = None


@dataclass(frozen=True)
class BandParams:
    """A UVR VR band-parameter file (`vr_model_param`), e.g. ``4band_v2``."""

    name: str
    bins: int
    sr: int
    pre_filter_start: int
    pre_filter_stop: int
    bands: tuple[Band, ...]
    flags: dict[str, bool] = field(default_factory=dict)
    aggr_correction: dict[str, float] | None = None

    @classmethod
    def from_dict(cls, name: str, raw: dict[str, Any]) -> BandParams:
        """Build from the parsed JSON (`n_bins` overrides `bins`; missing flags are False)."""
        keys = sorted(raw["band"], key=int)
        bands = tuple(Band(**{k: v for k, v in raw["band"][i].items() if k in Band.__dataclass_fields__})
                      for i in keys)
        return cls(name=name, bins=int(raw.get("n_bins", raw.get("bins", -1))), sr=int(raw.get("sr", 44100)),
                   pre_filter_start=int(raw.get("pre_filter_start", -1)),
                   pre_filter_stop=int(raw.get("pre_filter_stop", -1)), bands=bands,
                   flags={k: bool(raw.get(k, False)) for k in _FLAGS},
                   aggr_correction=raw.get("aggr_correction"))

    @property
    def top(self) -> Band:
        """The highest band (its rate is the model's input rate)."""
        return self.bands[-1]

    def high_end_bins(self) -> int:
        """How many top-band bins the high-end process keeps from the input."""
        top = self.top
        return (top.n_fft // 2 - top.crop_stop) + (self.pre_filter_stop - self.pre_filter_start)


def band_param_names() -> list[str]:
    """Names of the packaged band-parameter files."""
    root = resources.files("vsep_vr") / "bandparams"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json"))


def load_band_params(name: str) -> BandParams:
    """Load a packaged band-parameter file by name ("4band_v2" or "4band_v2.json")."""
    name = name[:-5] if name.endswith(".json") else name
    path = resources.files("vsep_vr") / "bandparams" / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"unknown VR band parameters {name!r}; known: {', '.join(band_param_names())}")
    return BandParams.from_dict(name, json.loads(path.read_text()))


# ---------------------------------------------------------------------------------------------
# channel transforms


def _wave_transform(wave: np.ndarray, bp: BandParams, v51: bool) -> np.ndarray:
    if v51:
        return wave
    f = bp.flags
    if f["reverse"]:
        return wave[:, ::-1]
    if f["mid_side"]:
        return np.stack([(wave[0] + wave[1]) / 2, wave[0] - wave[1]])
    if f["mid_side_b2"]:
        return np.stack([wave[1] + wave[0] * 0.5, wave[0] - wave[1] * 0.5])
    return wave


def _wave_inverse(wave: np.ndarray, bp: BandParams, band: Band, v51: bool) -> np.ndarray:
    left, right = wave
    if v51:
        cc = band.convert_channels
        if cc == "mid_side_c":
            return np.stack([left / 1.0625 - right / 4.25, right / 1.0625 + left / 4.25])
        if cc == "mid_side":
            return np.stack([left + right / 2, left - right / 2])
        if cc == "stereo_n":
            return np.stack([left - right * 0.25, right - left * 0.25])
        return wave
    f = bp.flags
    if f["reverse"]:
        return wave[:, ::-1]
    if f["mid_side"]:
        return np.stack([left + right / 2, left - right / 2])
    if f["mid_side_b2"]:
        return np.stack([right / 1.25 + 0.4 * left, left / 1.25 - 0.4 * right])
    return wave


def _spec_transform(spec: np.ndarray, band: Band) -> np.ndarray:
    cc = band.convert_channels
    if cc == "mid_side_c":
        return np.stack([spec[0] + spec[1] * 0.25, spec[1] - spec[0] * 0.25])
    if cc == "mid_side":
        return np.stack([(spec[0] + spec[1]) / 2, spec[0] - spec[1]])
    if cc == "stereo_n":
        return np.stack([(spec[0] + spec[1] * 0.25) / 0.9375, (spec[1] + spec[0] * 0.25) / 0.9375])
    return spec


# ---------------------------------------------------------------------------------------------
# filters (UVR's linear ramps)


def lp_filter_mask(n_bins: int, start: int, stop: int) -> np.ndarray:
    """[n_bins, 1]: 1 below `start`, a linear ramp to 0 at `stop`, 0 above."""
    return np.concatenate([np.ones((start - 1, 1)), np.linspace(1, 0, stop - start + 1)[:, None],
                           np.zeros((n_bins - stop, 1))])


def hp_filter_mask(n_bins: int, start: int, stop: int) -> np.ndarray:
    """[n_bins, 1]: 0 up to `stop`, a linear ramp to 1 at `start`, 1 above."""
    return np.concatenate([np.zeros((stop + 1, 1)), np.linspace(0, 1, 1 + start - stop)[:, None],
                           np.ones((n_bins - start - 2, 1))])


def fft_lp_filter(spec: np.ndarray, start: int, stop: int) -> np.ndarray:
    """In place: gains 1 - k/(stop-start) for bins start..stop-1, zero from `stop` up."""
    g = 1.0
    for b in range(start, stop):
        g -= 1 / (stop - start)
        spec[:, b, :] *= g
    spec[:, stop:, :] *= 0
    return spec


def fft_hp_filter(spec: np.ndarray, start: int, stop: int) -> np.ndarray:
    """In place: gains falling from bin `start` down to `stop`, zero at and below `stop`."""
    g = 1.0
    for b in range(start, stop, -1):
        g -= 1 / (start - stop)
        spec[:, b, :] *= g
    spec[:, 0:stop + 1, :] *= 0
    return spec


# ---------------------------------------------------------------------------------------------
# split and merge


def band_waves(wave: np.ndarray, bp: BandParams) -> list[np.ndarray]:
    """[2, n] at the top band's rate -> one wave per band (lowest first), each lower band
    resampled from the band above with that band's `res_type`."""
    out: list[np.ndarray] = [wave]
    for i in range(len(bp.bands) - 2, -1, -1):
        above, band = bp.bands[i + 1], bp.bands[i]
        out.insert(0, resample(out[0], above.sr, band.sr, band.res_type))
    return out


def frames_of(waves: list[np.ndarray], bp: BandParams) -> int:
    """Number of frames of the combined spectrogram (the fewest over bands)."""
    return min(1 + w.shape[-1] // b.hl for w, b in zip(waves, bp.bands, strict=True))


@dataclass
class BandSpectrogram:
    """The combined spectrogram and what the reconstruction needs from the input."""

    spec: np.ndarray
    """complex64 [2, bins + 1, frames]"""
    high_end: np.ndarray | None
    """complex64 [2, high_end_bins, frames]: the input's top-band bins below Nyquist"""


def analyse(waves: list[np.ndarray], bp: BandParams, v51: bool, frames: int, high_end: bool = False
            ) -> BandSpectrogram:
    """STFT every band wave (zero-padded as needed to give `frames` frames), crop and stack.

    The first frames are those UVR computes; padding only adds frames after them.
    """
    specs = []
    for wave, band in zip(waves, bp.bands, strict=True):
        need = (frames - 1) * band.hl
        if wave.shape[-1] < need:
            wave = fix_length(wave, need)
        w = _wave_transform(wave, bp, v51)
        s = np.stack([dsp.stft(w[0], band.n_fft, band.hl)[:, :frames], dsp.stft(w[1], band.n_fft, band.hl)[:, :frames]])
        if v51:
            s = _spec_transform(s, band).astype(np.complex64)
        specs.append(s)
    spec = np.zeros((2, bp.bins + 1, frames), dtype=np.complex64)
    offset = 0
    for s, band in zip(specs, bp.bands, strict=True):
        h = band.crop_stop - band.crop_start
        spec[:, offset:offset + h] = s[:, band.crop_start:band.crop_stop]
        offset += h
    if offset > bp.bins:
        raise ValueError(f"band parameters {bp.name}: the crops add up to {offset} bins, more than {bp.bins}")
    _pre_filter(spec, bp, v51)
    top_spec = None
    if high_end:
        h = bp.high_end_bins()
        half = bp.top.n_fft // 2
        top_spec = specs[-1][:, half - h:half].copy()
    return BandSpectrogram(spec=spec, high_end=top_spec)


def _pre_filter(spec: np.ndarray, bp: BandParams, v51: bool) -> None:
    start, stop = bp.pre_filter_start, bp.pre_filter_stop
    if start <= 0:
        return
    if v51:
        spec *= lp_filter_mask(spec.shape[1], start, stop).astype(np.float32)
    elif len(bp.bands) == 1:
        fft_lp_filter(spec, start, stop)
    else:
        gp = 1.0
        for b in range(start + 1, stop):
            g = math.pow(10, -(b - start) * (3.5 - gp) / 20.0)
            gp = g
            spec[:, b, :] *= g


def mirror_high_end(spec: np.ndarray, high_end: np.ndarray, bp: BandParams) -> np.ndarray:
    """UVR's "mirroring": the output's magnitudes just below the pre-filter, mirrored upwards,
    with the input's phase; per bin the smaller of that and the input's own high end."""
    h = high_end.shape[1]
    top = bp.pre_filter_start - 10
    mirror = np.flip(np.abs(spec[:, top - h:top, :]), 1)
    mirror = mirror * np.exp(1.0j * np.angle(high_end))
    return np.where(np.abs(high_end) <= np.abs(mirror), high_end, mirror)


def synthesise(spec: np.ndarray, bp: BandParams, v51: bool, high_end: np.ndarray | None = None) -> np.ndarray:
    """Combined spectrogram [2, bins + 1, frames] -> float64 wave [2, n] at the top band's rate.

    `high_end` (from `mirror_high_end`) replaces the top band's highest bins when given.
    """
    n_bands = len(bp.bands)
    offset = 0
    wave = None
    for i, band in enumerate(bp.bands):
        spec_s = np.zeros((2, band.n_fft // 2 + 1, spec.shape[2]), dtype=np.complex128)
        h = band.crop_stop - band.crop_start
        spec_s[:, band.crop_start:band.crop_stop] = spec[:, offset:offset + h]
        offset += h
        n_bins = spec_s.shape[1]
        if i == n_bands - 1:
            if high_end is not None and high_end.shape[1]:
                hb = high_end.shape[1]
                half = band.n_fft // 2
                spec_s[:, half - hb:half] = high_end[:, :hb]
            if band.hpf_start > 0:
                if v51:
                    spec_s *= hp_filter_mask(n_bins, band.hpf_start, band.hpf_stop - 1)
                else:
                    fft_hp_filter(spec_s, band.hpf_start, band.hpf_stop - 1)
            part = _band_wave(spec_s, bp, band, v51)
            wave = part if wave is None else _add(wave, part)
        else:
            nxt = bp.bands[i + 1].sr
            if i == 0:
                if v51:
                    spec_s *= lp_filter_mask(n_bins, band.lpf_start, band.lpf_stop)
                else:
                    fft_lp_filter(spec_s, band.lpf_start, band.lpf_stop)
                wave = resample(_band_wave(spec_s, bp, band, v51), band.sr, nxt, RECONSTRUCTION_RESAMPLER)
            else:
                if v51:
                    spec_s *= hp_filter_mask(n_bins, band.hpf_start, band.hpf_stop - 1)
                    spec_s *= lp_filter_mask(n_bins, band.lpf_start, band.lpf_stop)
                else:
                    fft_hp_filter(spec_s, band.hpf_start, band.hpf_stop - 1)
                    fft_lp_filter(spec_s, band.lpf_start, band.lpf_stop)
                wave = resample(_add(wave, _band_wave(spec_s, bp, band, v51)), band.sr, nxt, RECONSTRUCTION_RESAMPLER)
    assert wave is not None
    return wave


def _band_wave(spec_s: np.ndarray, bp: BandParams, band: Band, v51: bool) -> np.ndarray:
    wave = np.stack([dsp.istft(spec_s[0], band.hl), dsp.istft(spec_s[1], band.hl)])
    return _wave_inverse(wave, bp, band, v51)


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = min(a.shape[-1], b.shape[-1])
    return a[..., :n] + b[..., :n]
