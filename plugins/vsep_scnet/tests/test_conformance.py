"""The plugin conformance kit (vsep_core.testing.check_model) on each SCNet type."""

from __future__ import annotations

from pathlib import Path

import pytest
from scnet_testlib import load

from vsep_core.testing import check_model


@pytest.mark.parametrize("kind", ["scnet", "scnet_masked", "scnet_tran"])
def test_conformance(tiny_models: dict[str, Path], kind: str) -> None:
    check_model(load(tiny_models[kind]), lengths_seconds=(0.05, 0.4))
