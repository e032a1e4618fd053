"""vsep-vr keeps the SeparationModel contract (core's conformance kit) for both net generations."""

from __future__ import annotations

import pytest
from vr_testlib import SMALL_V5, make_ctx
from vsep_vr.model import load_model

from vsep_core.testing import check_model


@pytest.mark.parametrize("name", ["small_v5.pth"])
def test_tiny_vr_model_conforms(tiny_dir, name):
    check_model(load_model(make_ctx(tiny_dir / name, SMALL_V5)), lengths_seconds=(0.3, 0.71))
