"""The installed plugin end to end: ``vsep separate`` on a tiny BandIt v2 checkpoint in a model directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from bandit_testlib import tiny_config, write_model, write_yaml


def _vsep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vsep_core.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ, VSEP_OFFLINE="1"), timeout=300)


@pytest.mark.slow
def test_separate_writes_three_stems_at_the_asked_rate(tmp_path: Path) -> None:
    model = write_model(tmp_path / "models", "tiny_bandit_v2", seed=11)
    song = tmp_path / "song.flac"
    sf.write(song, (np.random.default_rng(0).standard_normal((22050, 2)) * 0.1).astype(np.float32), 44100)
    out = tmp_path / "out"
    run = _vsep("separate", str(song), "-m", model.name, "--model_file_dir", str(model.parent),
                "--output_dir", str(out), "--output_format", "WAV", "--sample_rate", "48000")
    assert run.returncode == 0, run.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(f"song_({s})_tiny_bandit_v2.wav" for s in ("speech", "music", "sfx"))
    for name in files:
        info = sf.info(str(out / name))
        assert (info.samplerate, info.channels, info.frames) == (48000, 2, 24000)


@pytest.mark.slow
def test_bad_yaml_fails_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    model = write_model(tmp_path / "models", "tiny_bandit_v2", seed=12)
    write_yaml(model.with_suffix(".yaml"), tiny_config(**{"inference.num_overlap": None}))
    song = tmp_path / "song.flac"
    sf.write(song, np.zeros((4410, 2), np.float32), 44100)
    out = tmp_path / "out"
    run = _vsep("separate", str(song), "-m", model.name, "--model_file_dir", str(model.parent),
                "--output_dir", str(out))
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if "inference.num_overlap" in line]
    assert len(errors) == 1
    assert not out.exists() or not any(out.iterdir())
