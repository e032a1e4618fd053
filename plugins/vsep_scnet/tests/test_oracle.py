"""Parity with MSST's own inference (../shared/msst-reference): same checkpoints, yamls and input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from scnet_testlib import REFERENCE, load

CASES = ["scnet", "scnet_masked", "scnet_tran"]


def parity_db(ours: np.ndarray, ref: np.ndarray) -> float:
    """Gain-fitted signal-to-difference in dB (the metric of shared/tools/check_reference.py)."""
    gain = float(np.sum(ours * ref) / np.sum(ref * ref))
    diff = float(np.sum((ours - gain * ref) ** 2))
    return float("inf") if diff == 0 else 10 * np.log10(float(np.sum((gain * ref) ** 2)) / diff)


@pytest.fixture(scope="module")
def manifest() -> dict:
    path = REFERENCE / "manifest.json"
    assert path.is_file(), f"MSST oracle not found at {REFERENCE} (CI has the oracles)"
    return json.loads(path.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_msst_oracle_parity(manifest: dict, case: str) -> None:
    entry = manifest["cases"][case]
    model = load(REFERENCE / entry["model_file_dir"] / entry["checkpoint"]["file"])
    assert model.model_type == entry["model_type"]
    audio, rate = sf.read(REFERENCE / entry["input"], dtype="float32", always_2d=True)
    assert rate == model.sample_rate
    stems = model.separate(audio.T)
    assert [s.lower() for s in stems] == [st["stem"] for st in entry["stems"]]
    for st in entry["stems"]:
        expected = np.load(REFERENCE / entry["npy_dir"] / st["npy"])
        ours = stems[st["stem"].capitalize()]
        assert ours.shape == expected.shape
        assert parity_db(ours, expected) >= 50.0, st["stem"]
        assert abs(float(np.sum(ours * expected) / np.sum(expected ** 2)) - 1.0) < 1e-3  # MSST's level
