"""Parity with MSST itself (../shared/msst-reference): its random-weight RoFormer checkpoints and
yamls, its input, the float stems MSST's own inference.py wrote. The network variant is chosen from
the yaml and the checkpoint alone (no model type given), as for any user's file."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from mdxc_testlib import REPO_ROOT, make_ctx, parity_db
from vsep_mdxc.model import load_model

MSST_REFERENCE = REPO_ROOT.parent / "shared" / "msst-reference"
CASES = ["bs_roformer", "bs_roformer_chunk2s", "bs_roformer_pope", "bs_roformer_linear_skip",
         "bs_roformer_experimental_hc_vr", "mel_band_roformer", "mel_band_roformer_mono", "mel_band_roformer_pope_skip"]
QUICK = {"bs_roformer_linear_skip", "mel_band_roformer_mono"}


@pytest.fixture(scope="module")
def msst_manifest() -> dict[str, Any]:
    """The MSST oracle's manifest (skips when ../shared/msst-reference is not there)."""
    path = MSST_REFERENCE / "manifest.json"
    assert path.is_file(), f"MSST oracle not found at {MSST_REFERENCE} (CI has the oracles)"
    return json.loads(path.read_text())


@pytest.mark.parametrize("case_name", [c if c in QUICK else pytest.param(c, marks=pytest.mark.slow) for c in CASES])
def test_msst_parity(msst_manifest: dict[str, Any], case_name: str) -> None:
    """Every stem >= 100 dB from MSST's (the project's bar is 50), MSST's channels, length and stem names."""
    case = msst_manifest["cases"][case_name]
    folder = MSST_REFERENCE / case["model_file_dir"]
    ckpt = folder / case["checkpoint"]["file"]
    model = load_model(make_ctx(ckpt, ckpt.with_suffix(".yaml"), inference="msst"))
    audio, sr = sf.read(str(MSST_REFERENCE / case["input"]), dtype="float32", always_2d=True)
    assert sr == model.sample_rate
    out = model.separate(audio.T)
    assert list(out) == [s["stem"] for s in case["stems"]]
    for stem in case["stems"]:
        expected = np.load(MSST_REFERENCE / case["npy_dir"] / f"{stem['stem']}.npy")
        assert out[stem["stem"]].shape == expected.shape == tuple(stem["shape"])
        db = parity_db(out[stem["stem"]], expected)
        assert db >= 100, f"{case_name}/{stem['stem']}: {db:.1f} dB"
        gain = float(np.sum(out[stem["stem"]] * expected) / np.sum(expected.astype(np.float64) ** 2))
        assert abs(20 * np.log10(gain)) < 0.01  # MSST's level: no peak normalisation in the msst style
