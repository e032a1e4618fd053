"""Parity with MSST's own inference (../shared/msst-reference, case bandit_v2): MSST resamples the 44.1 kHz
input to 48 kHz (librosa, soxr HQ) and separates each channel as mono; we resample with core's soxr HQ."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from bandit_testlib import CHECKER_DIR, MSST_REFERENCE, make_ctx
from vsep_bandit.model import load_model

from vsep_core import audio as audio_io


def _compare():
    path = CHECKER_DIR / "check_reference.py"
    if not path.is_file():
        pytest.skip("check_reference.py not found")
    sys.path.insert(0, str(CHECKER_DIR))
    spec = importlib.util.spec_from_file_location("check_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compare


@pytest.mark.slow
def test_bandit_v2_matches_msst() -> None:
    manifest_path = MSST_REFERENCE / "manifest.json"
    if not manifest_path.is_file():
        pytest.skip(f"MSST oracle not found at {MSST_REFERENCE}")
    compare = _compare()
    case = json.loads(manifest_path.read_text())["cases"]["bandit_v2"]
    model = load_model(make_ctx(MSST_REFERENCE / case["checkpoint"]["path"]))
    mix, info = audio_io.read_audio(MSST_REFERENCE / case["input"])
    length = int(round(info.frames * model.sample_rate / info.sample_rate))
    assert (model.sample_rate, length) == (48000, 288000)
    out = model.separate(audio_io.resample(mix, info.sample_rate, model.sample_rate, length))
    assert list(out) == [s["stem"] for s in case["stems"]]
    for stem_info, (stem, ours) in zip(case["stems"], out.items(), strict=True):
        expected = np.load(MSST_REFERENCE / "expected" / "bandit_v2" / stem_info["npy"])
        assert ours.shape == expected.shape == (2, 288000)
        db, gain_db = compare(ours, expected)
        assert db >= 50, f"{stem}: {db:.1f} dB"
        assert abs(gain_db) < 0.01
