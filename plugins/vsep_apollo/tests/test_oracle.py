"""Parity with MSST's own inference (../shared/msst-reference, case apollo): 6 s at 44.1 kHz, a 3 s chunk, so the
reflect border padding and the fades of MSST's demix apply."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from apollo_testlib import CHECKER_DIR, MSST_REFERENCE, make_ctx
from vsep_apollo.model import load_model

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
def test_apollo_matches_msst() -> None:
    manifest_path = MSST_REFERENCE / "manifest.json"
    if not manifest_path.is_file():
        pytest.skip(f"MSST oracle not found at {MSST_REFERENCE}")
    compare = _compare()
    case = json.loads(manifest_path.read_text())["cases"]["apollo"]
    model = load_model(make_ctx(MSST_REFERENCE / case["checkpoint"]["path"]))
    mix, info = audio_io.read_audio(MSST_REFERENCE / case["input"])
    length = int(round(info.frames * model.sample_rate / info.sample_rate))
    assert (model.sample_rate, length) == (44100, 264600)
    out = model.separate(audio_io.resample(mix, info.sample_rate, model.sample_rate, length))
    assert [s.lower() for s in out] == [s["stem"] for s in case["stems"]] == ["restored"]
    for stem_info, (stem, ours) in zip(case["stems"], out.items(), strict=True):
        expected = np.load(MSST_REFERENCE / "expected" / "apollo" / stem_info["npy"])
        assert ours.shape == expected.shape == (2, 264600)
        db, gain_db = compare(ours, expected)
        assert db >= 50, f"{stem}: {db:.1f} dB"
        assert abs(gain_db) < 0.01
