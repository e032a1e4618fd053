"""vsep-mdx keeps the SeparationModel contract (core's conformance kit), with and without spectrogram inversion."""

from __future__ import annotations

import pytest
from mdx_testlib import TINY_DATA, TINY_PARAMS, make_ctx, write_tiny_onnx
from vsep_mdx.model import load_model

from vsep_core.testing import check_model


@pytest.mark.parametrize("invert", [False, True])
def test_tiny_mdx_model_conforms(tmp_path, invert):
    path = write_tiny_onnx(tmp_path / "tiny.onnx")
    check_model(load_model(make_ctx(path, TINY_DATA, invert_using_spec=invert, **TINY_PARAMS)))
