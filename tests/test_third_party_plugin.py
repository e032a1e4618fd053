"""A third-party plugin (tests/fixtures/vsep_gain, outside src/ and plugins/) crosses the whole boundary:
its own catalogued model downloaded from its own source (a local HTTP server), its own ensemble
algorithm, through `vsep separate`, `vsep batch` and a `vsep serve` job, with no core file naming it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT, cli_env, make_tone, run_vsep
from vsep_core.remote import AudioSeparatorAPIClient
from vsep_core.remote.testing import LiveServer

REMOTE_MODEL = {"stems": {"Vocals": 0.5, "Instrumental": 0.125}}


@pytest.fixture
def model_server(httpserver):
    httpserver.expect_request("/gain/remote_split.gain").respond_with_data(json.dumps(REMOTE_MODEL))
    return httpserver.url_for("/gain")


@pytest.fixture
def song(tmp_path) -> Path:
    path = tmp_path / "in" / "tune.wav"
    path.parent.mkdir()
    sf.write(path, make_tone(0.5), 44100, subtype="FLOAT")
    return path


def _read(path: Path) -> np.ndarray:
    return sf.read(path, dtype="float32", always_2d=True)[0].T


def test_separate_downloads_the_plugins_model_from_its_own_source(tmp_path, song, gain_model_dir, model_server):
    proc = run_vsep("separate", song, "-m", "remote_split.gain", "--model_file_dir", gain_model_dir,
                    "--output_dir", tmp_path / "out", "--output_format", "WAV", "--output_bit_depth", "32",
                    VSEP_OFFLINE="0", VSEP_GAIN_MODEL_URL=model_server)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((gain_model_dir / "remote_split.gain").read_text()) == REMOTE_MODEL
    vocals = _read(tmp_path / "out" / "tune_(Vocals)_remote_split.wav")
    assert np.allclose(vocals, _read(song) * 0.5, atol=1e-6)


def test_batch_ensembles_with_the_plugins_own_algorithm(tmp_path, song, gain_model_dir, model_server):
    proc = run_vsep("batch", song.parent, "--output_dir", tmp_path / "batch", "-m", "remote_split.gain",
                    "--extra_models", "vocal_split.gain", "--ensemble_algorithm", "gain_first", "--model_file_dir",
                    gain_model_dir, "--output_format", "WAV", "--output_bit_depth", "32", "--workers", "0",
                    VSEP_OFFLINE="0", VSEP_GAIN_MODEL_URL=model_server)
    assert proc.returncode == 0, proc.stderr
    vocals = next((tmp_path / "batch").rglob("tune_(Vocals)_*.wav"))
    assert np.allclose(_read(vocals), _read(song) * 0.5, atol=1e-6)  # gain_first: the first model's stem


def test_a_serve_job_uses_the_plugins_model_and_algorithm(tmp_path, song, gain_model_dir, model_server):
    command = [sys.executable, "-m", "vsep_core.cli", "serve", "--data-dir", str(tmp_path / "data"),
               "--model_file_dir", str(gain_model_dir), "--device", "cpu"]
    env = cli_env(VSEP_OFFLINE="0", VSEP_GAIN_MODEL_URL=model_server)
    with LiveServer(tmp_path / "data", token="t", command=command, env=env, startup_timeout=60) as live:
        with AudioSeparatorAPIClient(live.url, token="t") as client:
            result = client.separate_audio_and_wait(
                str(song), models=["remote_split.gain", "vocal_split.gain"], ensemble_algorithm="gain_first",
                output_format="wav", poll_interval=0.2, timeout=120, output_dir=tmp_path / "remote")
    assert result["status"] == "completed", result
    vocals = next(Path(p) for p in result["downloaded_files"] if "(Vocals)" in p)
    assert np.allclose(_read(vocals), _read(song) * 0.5, atol=1e-4)


def test_no_core_file_names_the_plugin():
    found = subprocess.run(["git", "grep", "-l", "-i", "-e", "vsep_gain", "-e", "gain_first", "-e", "vsep-gain",
                            "--", "src/"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert found == []
