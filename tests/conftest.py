"""Shared fixtures of the core tests: the vsep-gain test plugin, audio files, a CLI runner."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
GAIN_PLUGIN = ROOT / "tests" / "fixtures" / "vsep_gain"
REFERENCE = ROOT.parent / "shared" / "reference"

# The test plugin is "installed" by putting its directory (with its dist-info) on the path,
# before the plugin manager is first built.
if str(GAIN_PLUGIN) not in sys.path:
    sys.path.insert(0, str(GAIN_PLUGIN))


@contextlib.contextmanager
def registered_plugin(plugin: object, name: str):
    """`plugin` registered with core's plugin manager (as `name`) while the context lasts."""
    from vsep_core.plugins import get_plugin_manager

    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    try:
        yield plugin
    finally:
        pm.unregister(plugin)


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a `vsep` subprocess that sees the test plugin and never goes online."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(GAIN_PLUGIN), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["VSEP_OFFLINE"] = "1"
    env.update(extra)
    return env


def run_vsep(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run the real `vsep` CLI in a fresh process."""
    return subprocess.run([sys.executable, "-m", "vsep_core.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=cli_env(**env), timeout=300)


def make_tone(seconds: float = 1.0, rate: int = 44100, channels: int = 2, amplitude: float = 0.5) -> np.ndarray:
    """A deterministic test signal [samples, channels]: two sines and a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    cols = [amplitude * (0.6 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.3 * np.sin(2 * np.pi * 1375 * t))
            + 0.02 * rng.standard_normal(t.size) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


@pytest.fixture
def audio_file(tmp_path: Path):
    """Factory: write a test signal to a real file and return its path."""

    def make(name: str = "song.wav", seconds: float = 1.0, rate: int = 44100, channels: int = 2,
             subtype: str | None = None, amplitude: float = 0.5) -> Path:
        path = tmp_path / name
        sf.write(str(path), make_tone(seconds, rate, channels, amplitude), rate, subtype=subtype)
        return path

    return make


@pytest.fixture
def gain_model_dir(tmp_path: Path) -> Path:
    """A model directory with two vsep-gain models: one in the catalogue, one only on disk."""
    d = tmp_path / "models"
    d.mkdir()
    (d / "vocal_split.gain").write_text(json.dumps({"stems": {"Vocals": 0.25, "Instrumental": 0.75}}))
    (d / "local_trio.gain").write_text(json.dumps({"stems": {"Drums": 0.5, "Bass": 0.3, "Other": 0.2}}))
    return d
