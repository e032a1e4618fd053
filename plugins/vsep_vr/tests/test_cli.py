"""End to end through the real `vsep` CLI: a local VR file found by its hash, a mono 32 kHz input,
and `vsep export-onnx` + separating with the exported file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from vr_testlib import TINY_V5, noise_mix, parity_db

from vsep_core.modeldata import get_model_hash

pytestmark = pytest.mark.slow


def _vsep(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, VSEP_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "vsep_core.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def test_cli_mono_32k_input_and_onnx_export(tiny_dir: Path, tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir()
    pth = models / "tiny_vr.pth"
    pth.write_bytes((tiny_dir / "tiny_v5.pth").read_bytes())
    (models / "vr_model_data.json").write_text(json.dumps({get_model_hash(pth): TINY_V5}))
    song = tmp_path / "song.wav"
    mono = noise_mix(1.3, 32000, channels=1)[0]
    sf.write(song, mono, 32000, subtype="PCM_16")
    n_out = round(len(mono) * 44100 / 32000)

    def separate(model: str, out: Path) -> dict[str, np.ndarray]:
        run = _vsep("separate", song, "-m", model, "--model_file_dir", models, "--output_dir", out,
                    "--output_format", "WAV", "--output_bit_depth", "32")
        assert run.returncode == 0, run.stderr
        stems = {}
        for stem in ("Instrumental", "Vocals"):
            data, rate = sf.read(out / f"song_({stem})_{model.split('.')[0]}.wav", dtype="float32", always_2d=True)
            assert rate == 44100 and data.shape == (n_out, 2)  # core: stereo, at 44.1 kHz, full length
            stems[stem] = data.T
        return stems

    torch_stems = separate("tiny_vr.pth", tmp_path / "out_pth")
    assert all(np.abs(s).max() > 0.01 for s in torch_stems.values())

    run = _vsep("export-onnx", pth)
    assert run.returncode == 0, run.stderr
    exported = models / "tiny_vr.onnx"
    assert exported.is_file()
    assert json.loads((models / "vr_model_data.json").read_text())[get_model_hash(exported)] == TINY_V5
    onnx_stems = separate("tiny_vr.onnx", tmp_path / "out_onnx")
    for stem in torch_stems:
        assert parity_db(onnx_stems[stem], torch_stems[stem])[0] >= 60
