"""Fixtures of the vsep-demucs tests: a directory of tiny models and a test signal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from demucs_testlib import ORACLE, make_tiny, write_bag  # noqa: E402

from vsep_core.testlib import one_torch_thread, reference_fixture  # noqa: E402, F401

oracle = reference_fixture(ORACLE, name="oracle")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory with two tiny models (aaaa0001, bbbb0002) and single-model yamls."""
    d = tmp_path_factory.mktemp("demucs_models")
    make_tiny(d, "aaaa0001", seed=1)
    make_tiny(d, "bbbb0002", seed=2)
    write_bag(d, "tiny_a", ["aaaa0001"])
    write_bag(d, "tiny_b", ["bbbb0002"])
    return d


@pytest.fixture(scope="session")
def mix() -> Callable[[float], np.ndarray]:
    """mix(seconds) -> a reproducible stereo test signal (tones plus noise) at the tiny models'
    8 kHz, float32 [2, n]."""

    def make(seconds: float) -> np.ndarray:
        n = int(round(seconds * 8000))
        t = np.arange(n) / 8000
        rng = np.random.default_rng(0)
        left = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)
        right = 0.2 * np.sin(2 * np.pi * 330 * t + 1) + 0.05 * rng.standard_normal(n)
        return np.stack([left, right]).astype(np.float32)

    return make


