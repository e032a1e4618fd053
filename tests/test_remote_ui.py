"""The web page's server side against a real uvicorn process (fake backend): page files, the page's routes.

The browser itself is driven in tests/test_ui_browser.py; here every route the page adds is
checked over HTTP: the catalogue and form fields, the job list, cached peaks, the mix and the zip.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from vsep_core.remote.backend import common_fields
from vsep_core.remote.testing import FAKE_GAINS, LiveServer
from vsep_core.remote.ui import catalogue, stem_label

TOKEN = "ui-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("ui") / "data", token=TOKEN, args=["--max-upload-mb", "5"],
                    env={"VSEP_FAKE_SLOW_S": "20"}) as live:
        yield live


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def finished_job(http: httpx.Client, path: Path, seconds: float = 0.7, rate: int = 32000, subtype: str = "PCM_24",
                 **form) -> tuple[str, np.ndarray]:
    """Submit a random stereo file to fake-gain and wait for it; returns (task id, the samples as written)."""
    rng = np.random.default_rng(int(seconds * 1000))
    sf.write(path, (rng.random((int(rate * seconds), 2)) - 0.5).astype(np.float32), rate, subtype=subtype)
    data = sf.read(path, dtype="float32")[0]
    with open(path, "rb") as fh:
        r = http.post("/separate", headers=AUTH, data={"model": "fake-gain.ckpt", **form},
                      files={"file": (path.name, fh)})
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    for _ in range(400):
        doc = http.get(f"/status/{task_id}", headers=AUTH).json()
        if doc["status"] in ("completed", "error"):
            break
        time.sleep(0.05)
    assert doc["status"] == "completed", doc
    return task_id, data


def test_browsers_get_the_page_without_a_token_and_api_clients_keep_the_json_root(http):
    page = http.get("/", headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/ui/static/app.js">' in page.text
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        asset = http.get(f"/ui/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind), name
    assert "http://" not in page.text and "https://" not in http.get("/ui/static/app.js").text  # no CDN
    assert http.get("/ui/static/../server.py").status_code in (401, 404)
    assert http.get("/ui/static/nope.js").status_code == 404
    # API clients (no text/html in Accept) keep the service document, and its token check
    assert http.get("/").status_code == 401
    assert http.get("/", headers=AUTH).json()["service"] == "vsep-api"
    for path in ("/ui/api/info", "/ui/api/jobs", "/ui/api/jobs/x/peaks", "/ui/api/jobs/x/zip"):
        assert http.get(path, headers=HTML).status_code == 401, path
    assert http.post("/ui/api/jobs/x/mix", json={}).status_code == 401


def test_info_carries_the_servers_own_form_fields_models_and_limits(http):
    info = http.get("/ui/api/info", headers=AUTH).json()
    fields = {f["name"]: f for f in info["fields"]}
    assert [f["name"] for f in info["fields"]] == [f.name for f in common_fields()] + ["fake_gain"]
    assert fields["fake_gain"] == {"name": "fake_gain", "type": "float", "help": "Extra gain", "group": "fake_params",
                                   "min": 0, "max": 4, "exclusive_min": None, "pattern": None, "choices": None,
                                   "json": False}
    assert fields["output_bit_depth"]["choices"] == [16, 24, 32]
    assert fields["normalization_threshold"]["exclusive_min"] == 0 and fields["ensemble_weights"]["json"] is True
    assert info["max_upload_bytes"] == 5 * 2**20 and ".flac" in info["audio_extensions"]
    assert {m["filename"] for m in info["models"]} == {"fake-gain.ckpt", "fake-slow.ckpt", "fake-fail.ckpt"}
    assert info["models"][0]["stems"] == ["vocals", "instrumental"] and "fake_pair" in info["presets"]
    assert info["default_model"] == "fake-gain.ckpt"  # the backend's own default


def test_the_server_enforces_the_fields_the_page_enforces(http, tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros((800, 2), np.float32), 8000)
    for bad in ({"fake_gain": "4.5"}, {"fake_gain": "-1"}, {"output_bit_depth": "20"},
                {"normalization_threshold": "0"}):
        with open(tmp_path / "a.wav", "rb") as fh:
            r = http.post("/separate", headers=AUTH, data={"model": "fake-gain.ckpt", **bad},
                          files={"file": ("a.wav", fh)})
        assert r.status_code in (400, 422), (bad, r.text)


def test_jobs_list_peaks_mix_and_zip(http, server, tmp_path):
    task_id, data = finished_job(http, tmp_path / "Song one.wav")
    jobs = http.get("/ui/api/jobs", headers=AUTH).json()
    job = next(j for j in jobs if j["task_id"] == task_id)
    assert job["status"] == "completed" and sorted(job["stems"].values()) == ["Instrumental", "Vocals"]
    ids = {stem: fid for fid, stem in job["stems"].items()}

    peaks = http.get(f"/ui/api/jobs/{task_id}/peaks", headers=AUTH).json()
    assert (peaks["sample_rate"], peaks["frames"], peaks["channels"], peaks["bit_depth"]) == (32000, len(data), 2, 16)
    vocals = next(s for s in peaks["stems"] if s["stem"] == "Vocals")
    assert len(vocals["peaks"]) == 1600
    assert max(vocals["peaks"]) == pytest.approx(np.abs(data).max() * FAKE_GAINS["Vocals"], abs=1e-3)
    cache = server.data_dir / "jobs" / task_id / "ui" / "peaks.json"
    assert cache.is_file()
    cache.write_text(cache.read_text().replace('"Vocals"', '"Cached"'))  # a second request reads the cache
    assert {s["stem"] for s in http.get(f"/ui/api/jobs/{task_id}/peaks", headers=AUTH).json()["stems"]} == {
        "Cached", "Instrumental"}

    stems = {stem: sf.read(server.data_dir / "jobs" / task_id / "output" / name, dtype="float64")[0]
             for fid, name in job["files"].items() for stem in [job["stems"][fid]]}
    r = http.post(f"/ui/api/jobs/{task_id}/mix", headers=AUTH,
                  json={"format": "wav", "gains": {ids["Vocals"]: 0.5, ids["Instrumental"]: 1.25}})
    assert r.status_code == 200, r.text
    assert "Song%20one_%28Mix%29.wav" in r.headers["content-disposition"]
    mix, rate = sf.read(io.BytesIO(r.content), dtype="float64")
    assert rate == 32000 and mix.shape == stems["Vocals"].shape
    assert sf.info(io.BytesIO(r.content)).subtype == "PCM_16"
    np.testing.assert_allclose(mix, 0.5 * stems["Vocals"] + 1.25 * stems["Instrumental"], atol=1 / 32768)

    silent = http.post(f"/ui/api/jobs/{task_id}/mix", headers=AUTH, json={"format": "flac", "gains": {}})
    got, rate = sf.read(io.BytesIO(silent.content))
    assert silent.status_code == 200 and rate == 32000 and got.shape == stems["Vocals"].shape and not got.any()

    mp3 = http.post(f"/ui/api/jobs/{task_id}/mix", headers=AUTH, json={"format": "mp3", "gains": {ids["Vocals"]: 1}})
    assert mp3.status_code == 200 and "Song%20one_%28Mix%29.mp3" in mp3.headers["content-disposition"]
    decoded_path = tmp_path / "mix.mp3"
    decoded_path.write_bytes(mp3.content)
    from vsep_core.audio import read_audio

    decoded, info = read_audio(decoded_path)
    assert info.sample_rate == 32000 and abs(decoded.shape[1] - len(stems["Vocals"])) < 2048
    rms = float(np.sqrt(np.mean(decoded.astype(np.float64) ** 2)))
    assert rms == pytest.approx(float(np.sqrt(np.mean(stems["Vocals"] ** 2))), rel=0.2)  # lossy, but the vocals

    archive = zipfile.ZipFile(io.BytesIO(http.get(f"/ui/api/jobs/{task_id}/zip", headers=AUTH).content))
    assert sorted(archive.namelist()) == sorted(job["files"].values())
    for name in archive.namelist():
        assert archive.read(name) == (server.data_dir / "jobs" / task_id / "output" / name).read_bytes()
    ui_dir = server.data_dir / "jobs" / task_id / "ui"
    for _ in range(50):  # exports are deleted once sent
        if [p.name for p in ui_dir.iterdir()] == ["peaks.json"]:
            break
        time.sleep(0.05)
    assert [p.name for p in ui_dir.iterdir()] == ["peaks.json"]


def test_bad_mix_requests_and_unfinished_jobs_get_one_line_errors(http, server, tmp_path):
    task_id, _ = finished_job(http, tmp_path / "b.wav", seconds=0.3)
    fid = next(iter(http.get(f"/status/{task_id}", headers=AUTH).json()["files"]))
    cases = [({"gains": {"nope": 1}}, 400, "no stem 'nope'"), ({"gains": {fid: 9}}, 400, "between 0 and 4"),
             ({"gains": {fid: -0.1}}, 400, "between 0 and 4"), ({"format": "ogg", "gains": {}}, 422, None)]
    for body, code, text in cases:
        r = http.post(f"/ui/api/jobs/{task_id}/mix", headers=AUTH, json=body)
        assert r.status_code == code, (body, r.text)
        if text:
            assert text in r.json()["detail"]
    assert http.get(f"/ui/api/jobs/{'0' * 32}/peaks", headers=AUTH).status_code == 404
    sf.write(tmp_path / "slow.wav", np.zeros((800, 2), np.float32), 8000)
    with open(tmp_path / "slow.wav", "rb") as fh:
        slow = http.post("/separate", headers=AUTH, data={"model": "fake-slow.ckpt"},
                         files={"file": ("slow.wav", fh)}).json()["task_id"]
    r = http.get(f"/ui/api/jobs/{slow}/peaks", headers=AUTH)
    assert r.status_code == 409 and "not completed" in r.json()["detail"]
    assert http.post(f"/cancel/{slow}", headers=AUTH).status_code == 200
    assert not (server.data_dir / "jobs" / slow / "ui").exists()


def test_stem_labels_and_catalogue_flattening(tmp_path):
    assert stem_label("My (live) song_(Vocals)_model_bs_roformer_ep_317.flac") == "Vocals"
    assert stem_label("custom-name.wav") == "custom-name"
    (tmp_path / "a.onnx").write_bytes(b"x")
    doc = {"MDX": {"A": {"filename": "a.onnx", "stems": ["vocals*", "instrumental"], "target_stem": "vocals",
                         "scores": {"vocals": {"SDR": 9.5}}, "download_files": ["https://x/a.onnx"]}},
           "MDXC": {"B": {"filename": "b.ckpt", "stems": ["drums"], "scores": {},
                          "download_files": ["b.ckpt", "b.yaml"]}}}
    flat = {m["filename"]: m for m in catalogue(doc, str(tmp_path))}
    assert flat["a.onnx"]["on_disk"] and flat["a.onnx"]["sdr"] == {"vocals": 9.5, "instrumental": None}
    assert not flat["b.ckpt"]["on_disk"] and flat["b.ckpt"]["architecture"] == "MDXC"
    (tmp_path / "b.ckpt").write_bytes(b"x")
    assert not catalogue(doc, str(tmp_path))[1]["on_disk"]  # the yaml is missing too
    (tmp_path / "b.yaml").write_bytes(b"x")
    assert catalogue(doc, str(tmp_path))[1]["on_disk"]
