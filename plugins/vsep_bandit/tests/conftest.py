"""Fixtures of the vsep-bandit tests."""

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
    """A random-weight tiny BandIt v2 checkpoint with its yaml beside it."""
    from bandit_testlib import write_model

    return write_model(tmp_path_factory.mktemp("tiny_bandit"), "tiny_bandit_v2", seed=1)
