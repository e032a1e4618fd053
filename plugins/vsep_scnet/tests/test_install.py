"""vsep-core + vsep-scnet alone, installed into a fresh venv, separate with an SCNet checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scnet_testlib import tiny_yaml, write_model

ROOT = Path(__file__).resolve().parents[3]


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.mark.slow
def test_core_and_scnet_alone_separate(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    py = venv / "bin" / "python"
    # the two local packages and the pinned CPU torch; no other vsep plugin
    _run([py, "-m", "pip", "install", "-q", "torch==2.13.0", ROOT, ROOT / "plugins" / "vsep_scnet"])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    rows = {r["name"]: r for r in json.loads(_run([venv / "bin" / "vsep", "plugins", "--json"], cwd=tmp_path,
                                                   env=env).stdout)}
    assert rows["scnet"]["architectures"] == ["SCNet"]
    assert not {"mdx", "mdxc", "vr", "demucs"} & set(rows)

    models = tmp_path / "models"
    ckpt = write_model(models, "my_scnet", tiny_yaml(sources=("vocals", "other"), tran=True), "scnet_tran")
    song = tmp_path / "song.wav"
    rng = np.random.default_rng(0)
    sf.write(song, (0.1 * rng.standard_normal((22050, 2))).astype(np.float32), 44100)
    out = tmp_path / "out"
    _run([venv / "bin" / "vsep", "separate", song, "-m", ckpt.name, "--model_file_dir", models, "--output_dir", out,
          "--output_format", "WAV"], cwd=tmp_path, env=dict(env, VSEP_OFFLINE="1"))
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 2 and "(Vocals)" in "".join(written) and "(Other)" in "".join(written)
    data, rate = sf.read(out / written[0])
    assert data.shape == (22050, 2) and rate == 44100
    where = _run([py, "-c", "import vsep_scnet; print(vsep_scnet.__file__)"], cwd=tmp_path, env=env).stdout
    assert str(venv) in where  # installed, not the source tree
