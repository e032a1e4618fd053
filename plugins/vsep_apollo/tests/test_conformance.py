"""vsep-apollo keeps the SeparationModel contract (core's conformance kit), stereo and mono models."""

from __future__ import annotations

from pathlib import Path

from apollo_testlib import make_ctx, tiny_config, write_model
from vsep_apollo.model import load_model

from vsep_core.testing import check_model


def test_tiny_model_conforms(tiny_model: Path) -> None:
    check_model(load_model(make_ctx(tiny_model)), lengths_seconds=(0.37, 1.1))


def test_tiny_mono_model_conforms(tmp_path: Path) -> None:
    path = write_model(tmp_path, "mono", tiny_config(**{"audio.num_channels": 1}), seed=9)
    check_model(load_model(make_ctx(path)), lengths_seconds=(0.37,))
