"""Parity with MSST's own inference (../shared/msst-reference, case bandit_v2): MSST resamples the 44.1 kHz
input to 48 kHz (librosa, soxr HQ) and separates each channel as mono; we resample with core's soxr HQ."""

from __future__ import annotations

import pytest
from bandit_testlib import CHECKER_DIR, MSST_REFERENCE, make_ctx
from vsep_bandit.model import load_model

from vsep_core.testlib import check_msst_case, msst_case


@pytest.mark.slow
def test_bandit_v2_matches_msst() -> None:
    case = msst_case(MSST_REFERENCE, "bandit_v2")
    model = load_model(make_ctx(MSST_REFERENCE / case["checkpoint"]["path"]))
    assert model.sample_rate == 48000
    check_msst_case(model, MSST_REFERENCE, "bandit_v2", CHECKER_DIR / "check_reference.py", (2, 288000))
