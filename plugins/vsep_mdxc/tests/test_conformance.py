"""vsep-mdxc keeps the SeparationModel contract (core's conformance kit): every network kind, both styles."""

from __future__ import annotations

import pytest
from mdxc_testlib import make_ctx
from vsep_mdxc.model import load_model

from vsep_core.testing import check_model


@pytest.mark.parametrize("inference", ["audio_separator", "msst"])
@pytest.mark.parametrize("kind", ["mdx23c", "bs", "mel"])
def test_tiny_mdxc_model_conforms(tiny_models, kind, inference):
    ckpt, yml = tiny_models[kind]
    check_model(load_model(make_ctx(ckpt, yml, inference=inference)), lengths_seconds=(0.37, 1.1))
