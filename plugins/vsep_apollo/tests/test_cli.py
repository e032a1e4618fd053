"""The installed plugin end to end: restore a stem that went through MP3, as a step after separation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from apollo_testlib import write_model

from vsep_core import audio as audio_io


def _vsep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vsep_core.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ, VSEP_OFFLINE="1"), timeout=300)


@pytest.mark.slow
def test_restore_a_stem_decoded_from_mp3(tmp_path: Path) -> None:
    """A vocals stem written as MP3 (as `vsep separate --output_format MP3` writes it) is restored to
    `<stem>_(Restored)_<model>.flac`, as long as the decoded MP3 and at its rate."""
    model = write_model(tmp_path / "models", "tiny_apollo", seed=11, suffix=".bin")
    t = np.arange(33075) / 44100
    stem = (0.3 * np.sin(2 * np.pi * 440 * t) * np.array([[1.0], [0.8]])).astype(np.float32)
    mp3 = audio_io.write_audio(tmp_path / "song_(Vocals)_model.mp3", stem, 44100, "MP3", bitrate="64k")
    decoded, info = audio_io.read_audio(mp3)
    out = tmp_path / "out"
    run = _vsep("separate", str(mp3), "-m", model.name, "--model_file_dir", str(model.parent),
                "--output_dir", str(out), "--output_format", "FLAC")
    assert run.returncode == 0, run.stderr
    files = [p.name for p in out.iterdir()]
    assert files == ["song_(Vocals)_model_(Restored)_tiny_apollo.flac"]
    written = sf.info(str(out / files[0]))
    assert (written.samplerate, written.channels, written.frames) == (44100, 2, decoded.shape[1])

