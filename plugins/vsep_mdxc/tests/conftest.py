"""Fixtures of the vsep-mdxc tests: the reference oracle (../shared/reference) and tiny models."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mdxc_testlib import REFERENCE, TINY_BS, TINY_MDX23C, TINY_MEL, write_model  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Run these tests on one torch thread: on a loaded 2-core machine OpenMP's second thread
    turns every tiny operation into a wait for a time slice (30 s instead of 0.6 s for a tiny model)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def reference() -> Path:
    """The oracle directory (skips when ../shared/reference is not checked out)."""
    if not (REFERENCE / "manifest.json").is_file():
        pytest.skip(f"reference oracle not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="session")
def manifest(reference: Path) -> dict[str, Any]:
    """The oracle's manifest.json."""
    return json.loads((reference / "manifest.json").read_text())


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Random-weight checkpoints and yamls of a tiny MDX23C, BS-RoFormer and Mel-Band-RoFormer."""
    tmp = tmp_path_factory.mktemp("tiny_mdxc")
    return {
        "mdx23c": write_model(tmp, TINY_MDX23C, "tiny_mdx23c", seed=1),
        "bs": write_model(tmp, TINY_BS, "tiny_bs_roformer", seed=2),
        "mel": write_model(tmp, TINY_MEL, "tiny_mel_band_roformer", seed=3),
    }
