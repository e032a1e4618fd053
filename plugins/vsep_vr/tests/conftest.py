"""Fixtures of the vsep-vr tests: the reference oracle (../shared/reference), tiny random VR nets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vr_testlib import REFERENCE, noise_mix, save_tiny  # noqa: E402

from vsep_core.testlib import manifest, oracle_mix, reference_fixture  # noqa: E402, F401

reference = reference_fixture(REFERENCE)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with tiny random VR checkpoints: tiny_v5.pth (ch 2) and tiny_v51.pth (nout 4, nout_lstm 8)
    for 672 bins (4band), small_v5.pth and small_v51.pth for 256 bins (1band_sr44100_hl256)."""
    d = tmp_path_factory.mktemp("vr_tiny")
    save_tiny(d / "tiny_v5.pth", "v5")
    save_tiny(d / "tiny_v51.pth", "v51")
    save_tiny(d / "small_v5.pth", "v5", param="1band_sr44100_hl256")
    save_tiny(d / "small_v51.pth", "v51", param="1band_sr44100_hl256")
    return d


@pytest.fixture(scope="session")
def mix() -> np.ndarray:
    """1.5 s of a stereo test signal at 44.1 kHz (one 512-frame window of 4band_v2)."""
    return noise_mix()
