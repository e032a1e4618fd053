"""Parity with the reference implementation on the oracle case demucs_shifts0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from demucs_testlib import context
from vsep_demucs.model import load_model


def parity(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(parity dB, gain dB) as tools/check_reference.py measures them."""
    ours, ref = ours.astype(np.float64), ref.astype(np.float64)
    g = float((ours * ref).sum() / (ref * ref).sum())
    err = ((ours - g * ref) ** 2).sum()
    par = float("inf") if err == 0 else 10 * np.log10(((g * ref) ** 2).sum() / err)
    return par, 20 * np.log10(abs(g))


def test_oracle_demucs_shifts0(oracle: Path) -> None:
    """htdemucs.yaml (random weights, real format) on the 6 s clip matches the reference's float stems."""
    model = load_model(context(oracle / "models" / "htdemucs.yaml", shifts=0))
    assert model.sample_rate == 44100
    assert model.stems == ["Bass", "Drums", "Other", "Vocals"]
    audio, sr = sf.read(oracle / "input" / "mardy20s_6s_16bit.flac", dtype="float32", always_2d=True)
    assert sr == model.sample_rate
    calls: list[tuple[int, int]] = []
    stems = model.separate(np.ascontiguousarray(audio.T), lambda done, total: calls.append((done, total)))
    assert list(stems) == model.stems
    assert calls and calls[-1][0] == calls[-1][1]
    for name, ours in stems.items():
        ref = np.load(oracle / "expected" / "demucs_shifts0" / f"{name}.npy")
        assert ours.shape == ref.shape == audio.T.shape and ours.dtype == np.float32
        par, gain = parity(ours, ref)
        assert par >= 50, f"{name}: parity {par:.1f} dB"
        assert abs(gain) <= 0.2, f"{name}: gain {gain:.3f} dB"
