"""Parity with MSST's own inference (../shared/msst-reference, case apollo): 6 s at 44.1 kHz, a 3 s chunk, so the
reflect border padding and the fades of MSST's demix apply."""

from __future__ import annotations

import pytest
from apollo_testlib import CHECKER_DIR, MSST_REFERENCE, make_ctx
from vsep_apollo.model import load_model

from vsep_core import audio as audio_io
from vsep_core.testlib import assert_msst_parity, load_module, msst_case


@pytest.mark.slow
def test_apollo_matches_msst() -> None:
    case = msst_case(MSST_REFERENCE, "apollo")
    compare = load_module(CHECKER_DIR / "check_reference.py").compare
    model = load_model(make_ctx(MSST_REFERENCE / case["checkpoint"]["path"]))
    mix, info = audio_io.read_audio(MSST_REFERENCE / case["input"])
    length = int(round(info.frames * model.sample_rate / info.sample_rate))
    assert (model.sample_rate, length) == (44100, 264600)
    out = model.separate(audio_io.resample(mix, info.sample_rate, model.sample_rate, length))
    assert [s.lower() for s in out] == [s["stem"] for s in case["stems"]] == ["restored"]
    assert_msst_parity(out, case, MSST_REFERENCE, "apollo", compare, (2, 264600))
