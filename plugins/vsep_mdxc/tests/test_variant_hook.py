"""The variant hook: a third-party package (tests/variant_pkg, a toy mask head) adds a RoFormer variant
through the ``vsep_mdxc.variants`` entry points, and `vsep separate` runs its checkpoint end to end.
No file of vsep_mdxc or vsep_core names the package."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from mdxc_testlib import SR, TINY_BS, make_ctx, parity_db, tones, write_model
from vsep_mdxc.config import BS_ROFORMER
from vsep_mdxc.model import _build_roformer_from, load_model

from vsep_core.errors import ModelLoadError

VARIANT_PKG = Path(__file__).resolve().parent / "variant_pkg"


def _toy_config(gain: float = 0.5) -> dict:
    cfg = copy.deepcopy(TINY_BS)
    cfg["model"].update(toy_mask_head=True, toy_mask_gain=gain)
    return cfg


def _toy_state(cfg: dict) -> dict[str, torch.Tensor]:
    torch.manual_seed(4)
    build, _ = _build_roformer_from(cfg, BS_ROFORMER, {}, None)
    return build().state_dict()


@pytest.mark.slow
def test_variant_package_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _toy_config()
    # not registered: its keys are unknown, and the error names them
    plain_ckpt, _ = write_model(tmp_path, TINY_BS, "plain", seed=1)
    write_model(tmp_path, cfg, "toy_yaml_only", state={})
    with pytest.raises(ModelLoadError, match="unknown model key.*'toy_mask_gain', 'toy_mask_head'"):
        load_model(make_ctx(plain_ckpt, tmp_path / "toy_yaml_only.yaml", inference="msst"))

    monkeypatch.syspath_prepend(str(VARIANT_PKG))  # the package and its dist-info (entry points)
    state = _toy_state(cfg)
    assert "mask_estimators.0.to_freqs.0.weight" in state  # the toy head's single linear layer per band
    assert not any(k.startswith("mask_estimators.0.to_freqs.0.0.") for k in state)  # no built-in MLP
    ckpt, yml = write_model(tmp_path, cfg, "toy_roformer", state=state)
    audio = tones(0.4)
    ours = load_model(make_ctx(ckpt, yml, inference="msst")).separate(audio)["Vocals"]
    cfg_other_gain = _toy_config(gain=0.25)
    other_yml = tmp_path / "other.yaml"
    write_model(tmp_path, cfg_other_gain, "other", state={})
    other = load_model(make_ctx(ckpt, other_yml, inference="msst")).separate(audio)["Vocals"]
    assert not np.allclose(ours, other, atol=1e-6)  # the variant's own option reaches its head

    song = tmp_path / "song.wav"
    sf.write(song, audio.T, SR, subtype="FLOAT")
    env = dict(os.environ, VSEP_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(VARIANT_PKG), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    done = subprocess.run([sys.executable, "-m", "vsep_core.cli", "separate", str(song), "-m", ckpt.name,
                           "--model_file_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"),
                           "--output_format", "WAV", "--output_bit_depth", "32"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    written = list((tmp_path / "out").glob("*(Vocals)*.wav"))
    assert len(written) == 1, list((tmp_path / "out").iterdir())
    stem, rate = sf.read(written[0], dtype="float32", always_2d=True)
    assert rate == SR and stem.T.shape == audio.shape
    assert parity_db(stem.T, ours) >= 100  # core's writer may rescale the level; the signal is the same
