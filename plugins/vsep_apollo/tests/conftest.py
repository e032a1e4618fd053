"""Fixtures of the vsep-apollo tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vsep_core.testlib import one_torch_thread  # noqa: F401 - autouse fixture

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight tiny Apollo checkpoint with its yaml beside it."""
    from apollo_testlib import write_model

    return write_model(tmp_path_factory.mktemp("tiny_apollo"), "tiny_apollo", seed=1)
