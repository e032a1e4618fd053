"""Parity with MSST's own inference (../shared/msst-reference, case apollo): 6 s at 44.1 kHz, a 3 s chunk, so the
reflect border padding and the fades of MSST's demix apply."""

from __future__ import annotations

import pytest
from apollo_testlib import CHECKER_DIR, MSST_REFERENCE, make_ctx
from vsep_apollo.model import load_model

from vsep_core.testlib import check_msst_case, msst_case


@pytest.mark.slow
def test_apollo_matches_msst() -> None:
    model = load_model(make_ctx(MSST_REFERENCE / msst_case(MSST_REFERENCE, "apollo")["checkpoint"]["path"]))
    assert model.sample_rate == 44100 and model.stems == ["Restored"]
    check_msst_case(model, MSST_REFERENCE, "apollo", CHECKER_DIR / "check_reference.py", (2, 264600), lower_names=True)
