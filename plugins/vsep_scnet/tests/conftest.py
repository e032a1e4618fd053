"""Fixtures of the vsep-scnet tests: tiny random-weight SCNets written in MSST's formats."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scnet_testlib import tiny_yaml, write_model  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread: on a loaded 2-core machine a second OpenMP thread makes tiny models wait for time slices."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny checkpoint + yaml per MSST type (4 stems; tran: 2 stems) in one model directory."""
    d = tmp_path_factory.mktemp("scnet_models")
    return {
        "scnet": write_model(d, "tiny_scnet", tiny_yaml(), "scnet", seed=1),
        "scnet_masked": write_model(d, "tiny_masked", tiny_yaml(normalize=True), "scnet_masked", seed=2),
        "scnet_tran": write_model(d, "tiny_tran", tiny_yaml(sources=("vocals", "other"), tran=True), "scnet_tran",
                                  seed=3),
    }
