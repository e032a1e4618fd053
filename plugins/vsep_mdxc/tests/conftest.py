"""Fixtures of the vsep-mdxc tests: the reference oracle (../shared/reference) and tiny models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mdxc_testlib import REFERENCE, TINY_BS, TINY_MDX23C, TINY_MEL, write_model  # noqa: E402

from vsep_core.testlib import manifest, one_torch_thread, reference_fixture  # noqa: E402, F401

reference = reference_fixture(REFERENCE)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Random-weight checkpoints and yamls of a tiny MDX23C, BS-RoFormer and Mel-Band-RoFormer."""
    tmp = tmp_path_factory.mktemp("tiny_mdxc")
    return {
        "mdx23c": write_model(tmp, TINY_MDX23C, "tiny_mdx23c", seed=1),
        "bs": write_model(tmp, TINY_BS, "tiny_bs_roformer", seed=2),
        "mel": write_model(tmp, TINY_MEL, "tiny_mel_band_roformer", seed=3),
    }
