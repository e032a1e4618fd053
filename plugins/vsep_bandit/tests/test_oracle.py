"""Parity with MSST's own inference (../shared/msst-reference, case bandit_v2): MSST resamples the 44.1 kHz
input to 48 kHz (librosa, soxr HQ) and separates each channel as mono; we resample with core's soxr HQ."""

from __future__ import annotations

import pytest
from bandit_testlib import CHECKER_DIR, MSST_REFERENCE, make_ctx
from vsep_bandit.model import load_model

from vsep_core import audio as audio_io
from vsep_core.testlib import assert_msst_parity, load_module, msst_case


@pytest.mark.slow
def test_bandit_v2_matches_msst() -> None:
    case = msst_case(MSST_REFERENCE, "bandit_v2")
    compare = load_module(CHECKER_DIR / "check_reference.py").compare
    model = load_model(make_ctx(MSST_REFERENCE / case["checkpoint"]["path"]))
    mix, info = audio_io.read_audio(MSST_REFERENCE / case["input"])
    length = int(round(info.frames * model.sample_rate / info.sample_rate))
    assert (model.sample_rate, length) == (48000, 288000)
    out = model.separate(audio_io.resample(mix, info.sample_rate, model.sample_rate, length))
    assert list(out) == [s["stem"] for s in case["stems"]]
    assert_msst_parity(out, case, MSST_REFERENCE, "bandit_v2", compare, (2, 288000))
