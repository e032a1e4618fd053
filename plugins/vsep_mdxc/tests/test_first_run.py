"""A user's first run: no -m, nothing on disk; the default model and its yaml come from the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import soundfile as sf
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

ROOT = Path(__file__).resolve().parents[3]
REFERENCE = ROOT.parent / "shared" / "reference"
DEFAULT = "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
DEFAULT_YAML = "model_bs_roformer_ep_317_sdr_12.9755.yaml"


def test_first_run_downloads_the_default_model_and_separates(httpserver: HTTPServer, tmp_path: Path) -> None:
    served: list[str] = []

    def by_basename(request: Request) -> Response:
        name = request.path.rsplit("/", 1)[-1]
        path = REFERENCE / "models" / name
        served.append(request.path)
        if not path.is_file():
            return Response("not found", status=404)
        return Response(path.read_bytes(), headers={"Content-Length": str(path.stat().st_size)})

    httpserver.expect_request(re.compile(".*"), method="GET").respond_with_handler(by_basename)
    song = tmp_path / "song.flac"
    shutil.copy(REFERENCE / "input" / "mardy20s_6s_16bit.flac", song)
    models = tmp_path / "cache" / "models"
    env = {k: v for k, v in os.environ.items() if k not in ("VSEP_OFFLINE", "VSEP_MODEL_DIR")}
    env.update(VSEP_MODEL_DIR=str(models), VSEP_UVR_PUBLIC_REPO_URL=httpserver.url_for("/public"),
               VSEP_AUDIO_SEPARATOR_REPO_URL=httpserver.url_for("/fallback"))
    proc = subprocess.run([sys.executable, "-m", "vsep_core.cli", "separate", str(song), "--output_dir",
                           str(tmp_path / "out")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in (DEFAULT, DEFAULT_YAML):
        assert (models / name).read_bytes() == (REFERENCE / "models" / name).read_bytes()
    assert any(p.endswith(DEFAULT) for p in served) and any(p.endswith(DEFAULT_YAML) for p in served)
    assert not list(models.glob("*.part"))
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == ["song_(Instrumental)_model_bs_roformer_ep_317_sdr_12.flac",
                       "song_(Vocals)_model_bs_roformer_ep_317_sdr_12.flac"]
    frames = sf.info(str(song)).frames
    assert all(sf.info(str(tmp_path / "out" / o)).frames == frames for o in outputs)
