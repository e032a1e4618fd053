"""Fixtures of the vsep-apollo tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread: on a loaded 2-core machine a second OpenMP thread mostly waits."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight tiny Apollo checkpoint with its yaml beside it."""
    from apollo_testlib import write_model

    return write_model(tmp_path_factory.mktemp("tiny_apollo"), "tiny_apollo", seed=1)
