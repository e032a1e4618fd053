"""Parity of two separations in dB: the metric of ../shared/tools/check_reference.py.

    gain   g = <ours, ref> / <ref, ref>            (ours ~ g * ref)
    parity 10 * log10( sum((g*ref)**2) / sum((ours - g*ref)**2) )

over the common length. For MDX-Net the reference's stems sit at other levels than vsep's on
purpose (docs/upstream-behaviour.md section 8.1): the reference returns primary = model(m_n)
* peak and secondary = m_n - compensate * primary for the normalised mix m_n = k * m; vsep
returns primary / k and m - compensate * primary / k. ``mdx_expected`` derives vsep's
expectation from the reference's own stems exactly as check_reference.py does.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf

NORMALIZATION = 0.9


def compare(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(parity dB, gain dB) of `ours` against `ref` over their common length."""
    n = min(ours.shape[-1], ref.shape[-1])
    ours, ref = ours[..., :n].astype(np.float64), ref[..., :n].astype(np.float64)
    ref_energy = float(np.sum(ref**2))
    if ref_energy == 0.0:
        return (math.inf if not np.any(ours) else -math.inf), 0.0
    g = float(np.sum(ours * ref)) / ref_energy
    err = float(np.sum((ours - g * ref) ** 2))
    gain_db = 20.0 * math.log10(abs(g)) if g != 0 else -math.inf
    if err == 0.0:
        return math.inf, gain_db
    return 10.0 * math.log10(max(g * g * ref_energy, 1e-30) / err), gain_db


def mdx_expected(ref: dict[str, np.ndarray], mix_path: Path, primary: str, compensate: float) -> dict[str, np.ndarray]:
    """vsep's expected MDX-Net stems derived from the reference's (see module docstring)."""
    (secondary,) = [s for s in ref if s != primary]
    mix, _ = sf.read(str(mix_path), dtype="float32", always_2d=True)
    peak = float(np.max(np.abs(mix)))
    k = NORMALIZATION / peak if peak > NORMALIZATION else 1.0
    p_ref, s_ref = ref[primary].astype(np.float64), ref[secondary].astype(np.float64)
    m_n = s_ref + compensate * p_ref
    return {primary: p_ref / (k * peak), secondary: (m_n - compensate * p_ref / peak) / k}


def stems_parity(ours: dict[str, Path], ref: dict[str, Path], *, mdx: tuple[Path, str, float] | None = None
                 ) -> dict[str, float]:
    """Parity dB per stem present in both (stem names compared case-insensitively)."""
    ours_l = {k.lower(): v for k, v in ours.items()}
    ref_arrays = {k: np.load(v) for k, v in ref.items()}
    if mdx is not None:
        mix_path, primary, compensate = mdx
        if primary in ref_arrays and len(ref_arrays) == 2:
            ref_arrays = mdx_expected(ref_arrays, mix_path, primary, compensate)
    out: dict[str, float] = {}
    for stem, arr in ref_arrays.items():
        mine = ours_l.get(stem.lower())
        if mine is None:
            continue
        db, _ = compare(np.load(mine), arr)
        out[stem] = round(db, 2) if math.isfinite(db) else db
    return out
