"""The remote API against a real uvicorn server process on a free localhost port (fake backend).

The fake backend (vsep_core.remote.testing) writes real audio: Vocals = 0.5 x input,
Instrumental = 0.25 x input; ``fake-slow.ckpt`` takes VSEP_FAKE_SLOW_S seconds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

import vsep_core
from vsep_core.remote import AudioSeparatorAPIClient
from vsep_core.remote.api_client import RemoteAPIError
from vsep_core.remote.testing import FAKE_GAINS, LiveServer

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HTTP = httpx.Client(timeout=30)


def write_wav(path: Path, seconds: float = 0.3, seed: int = 0) -> np.ndarray:
    """A random stereo 16-bit WAV; returns the samples as read back."""
    rng = np.random.default_rng(seed)
    sf.write(path, (rng.random((int(44100 * seconds), 2)) - 0.5).astype(np.float32), 44100, subtype="PCM_16")
    return sf.read(path, dtype="float32")[0]


def wait_for(url: str, task_id: str, states: tuple[str, ...], timeout: float = 20, headers=AUTH) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = HTTP.get(f"{url}/status/{task_id}", headers=headers, timeout=5).json()
        if doc["status"] in states:
            return doc
        time.sleep(0.05)
    raise AssertionError(f"job {task_id} never reached {states}; last: {doc}")


def submit(url: str, path: Path, headers=AUTH, filename: str | None = None, **form) -> httpx.Response:
    with open(path, "rb") as fh:
        return HTTP.post(f"{url}/separate", headers=headers, data=form, timeout=30,
                          files={"file": (filename or path.name, fh, "audio/wav")})


def job_dirs(server: LiveServer) -> set[str]:
    root = server.data_dir / "jobs"
    return {p.name for p in root.iterdir()} if root.exists() else set()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("remote") / "data", token=TOKEN,
                    env={"VSEP_FAKE_SLOW_S": "20"}) as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    with AudioSeparatorAPIClient(server.url, token=TOKEN) as api:
        yield api


def test_upload_poll_download_gives_the_models_output(server, client, tmp_path):
    data = write_wav(tmp_path / "song.wav")
    result = client.separate_audio_and_wait(str(tmp_path / "song.wav"), model="fake-gain.ckpt", poll_interval=0.1,
                                            timeout=30, output_dir=str(tmp_path / "out"), output_format="wav")
    assert result["status"] == "completed", result
    assert sorted(result["files"].values()) == ["song_(Instrumental)_fake-gain.wav", "song_(Vocals)_fake-gain.wav"]
    for stem, gain in FAKE_GAINS.items():
        got, rate = sf.read(tmp_path / "out" / f"song_({stem})_fake-gain.wav", dtype="float32")
        assert rate == 44100 and got.shape == data.shape
        np.testing.assert_allclose(got, data * gain, atol=1.5 / 32768)
    assert sorted(result["downloaded_files"]) == sorted(str(tmp_path / "out" / n) for n in result["files"].values())

    status = client.get_job_status(result["task_id"])
    assert status["status"] == "completed" and status["progress"] == 100
    assert status["models_used"] == ["fake-gain.ckpt"] and status["total_models"] == 1
    assert status["original_filename"] == "song.wav" and "error" not in status or status["error"] is None
    name = "song_(Vocals)_fake-gain.wav"
    legacy = client.download_file(result["task_id"], name, tmp_path / "legacy.wav")
    assert Path(legacy).read_bytes() == (tmp_path / "out" / name).read_bytes()
    raw = HTTP.get(f"{server.url}/download/{result['task_id']}/{next(iter(result['files']))}", headers=AUTH)
    assert raw.headers["content-disposition"].startswith("attachment; filename=")


def test_token_is_required_on_every_route_but_health(server, tmp_path):
    write_wav(tmp_path / "a.wav")
    for path in ("/", "/models", "/models-json", "/presets", "/status/abc", "/download/abc/def", "/openapi.json",
                 "/docs", "/no-such-route"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = HTTP.get(server.url + path, headers=headers)
            assert r.status_code == 401, (path, headers, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer" and "token" in r.json()["detail"]
    assert submit(server.url, tmp_path / "a.wav", headers={}, model="fake-gain.ckpt").status_code == 401
    assert job_dirs(server) == job_dirs(server)  # nothing stored by refused requests
    health = HTTP.get(server.url + "/health")
    assert health.status_code == 200
    assert health.json()["version"] == vsep_core.__version__ and health.json()["status"] == "healthy"
    assert HTTP.get(server.url + "/models", headers=AUTH).status_code == 200
    with AudioSeparatorAPIClient(server.url, token="") as anonymous:
        with pytest.raises(RemoteAPIError) as info:
            anonymous.list_models("json")
        assert info.value.status_code == 401


def test_bad_submissions_are_rejected_before_anything_is_stored(server, tmp_path):
    write_wav(tmp_path / "a.wav")
    before = job_dirs(server)
    cases = [
        ({"model": "nope.ckpt"}, 400, "unknown model 'nope.ckpt'"),
        ({"models": '["fake-gain.ckpt", "nope.onnx"]'}, 400, "nope.onnx"),
        ({"models": "fake-gain.ckpt"}, 400, "JSON"),
        ({"preset": "no_such_preset"}, 400, "unknown preset"),
        ({"preset": "fake_pair", "model": "fake-gain.ckpt"}, 400, "only one of"),
        ({"custom_output_names": '{"Vocals": "../../x"}'}, 400, "plain file names"),
        ({"custom_output_names": "[1]"}, 400, "JSON dict"),
        ({"output_format": "mp3"}, 400, "flac or wav"),
        ({"output_format": "../x"}, 422, None),
        ({"normalization_threshold": "1.5"}, 422, None),
        ({"fake_gain": "9"}, 422, None),
        ({"ensemble_weights": '["a"]'}, 400, "numbers"),
    ]
    for form, code, text in cases:
        r = submit(server.url, tmp_path / "a.wav", **form)
        assert r.status_code == code, (form, r.text)
        if text:
            assert text in r.json()["detail"], (form, r.text)
    r = HTTP.post(f"{server.url}/separate", headers=AUTH, data={"model": "fake-gain.ckpt"})
    assert r.status_code == 400 and "'file'" in r.json()["detail"]
    assert job_dirs(server) == before


def test_path_traversal_filename_is_stored_safely_and_jobs_do_not_share_files(server, tmp_path):
    first = write_wav(tmp_path / "a.wav", seed=1)
    second = write_wav(tmp_path / "b.wav", seed=2)
    ids = []
    for path in (tmp_path / "a.wav", tmp_path / "b.wav"):
        r = submit(server.url, path, filename="../../../../evil.wav", model="fake-gain.ckpt")
        assert r.status_code == 200, r.text
        assert r.json()["original_filename"] == "evil.wav"
        ids.append(r.json()["task_id"])
    docs = [wait_for(server.url, task_id, ("completed",)) for task_id in ids]
    assert docs[0]["files"] == docs[1]["files"]  # same names, separate directories
    root = server.data_dir
    assert not (root.parent / "evil.wav").exists() and not list(root.parent.parent.glob("evil*"))
    assert all(p.resolve().is_relative_to((root / "jobs").resolve()) for p in root.rglob("evil*"))
    file_id = next(k for k, v in docs[0]["files"].items() if "Vocals" in v)
    for task_id, data in zip(ids, (first, second), strict=True):
        body = HTTP.get(f"{server.url}/download/{task_id}/{file_id}", headers=AUTH).content
        (tmp_path / "got.wav").write_bytes(body)
        np.testing.assert_allclose(sf.read(tmp_path / "got.wav", dtype="float32")[0], data * 0.5, atol=1.5 / 32768)


def test_downloads_serve_only_that_jobs_files(server, tmp_path):
    write_wav(tmp_path / "one.wav")
    write_wav(tmp_path / "two.wav")
    a = submit(server.url, tmp_path / "one.wav", model="fake-gain.ckpt").json()["task_id"]
    b = submit(server.url, tmp_path / "two.wav", model="fake-gain.ckpt").json()["task_id"]
    files_a = wait_for(server.url, a, ("completed",))["files"]
    files_b = wait_for(server.url, b, ("completed",))["files"]
    b_id, b_name = next(iter(files_b.items()))
    for path in (f"/download/{a}/{b_id}", f"/download/{a}/{b_name}", f"/download/{a}/..%2F{b}%2Foutput%2F{b_name}",
                 f"/download/{a}/..%2F..%2Fjobs.sqlite3", f"/download/{a}/one.wav", "/download/unknown/x"):
        r = HTTP.get(server.url + path, headers=AUTH)
        assert r.status_code == 404, (path, r.status_code)
    for file_id, name in files_a.items():
        assert HTTP.get(f"{server.url}/download/{a}/{file_id}", headers=AUTH).status_code == 200
        assert HTTP.get(f"{server.url}/download/{a}/{name}", headers=AUTH).status_code == 200  # legacy by name


def test_failing_model_reports_its_error(server, client, tmp_path):
    write_wav(tmp_path / "a.wav")
    task_id = client.separate_audio(str(tmp_path / "a.wav"), model="fake-fail.ckpt")["task_id"]
    doc = wait_for(server.url, task_id, ("error",))
    assert doc["error"] == "RuntimeError: fake-fail.ckpt always fails" and doc["files"] == {}
    assert not (server.data_dir / "jobs" / task_id / "output").exists()
    missing = client.get_job_status("0" * 32)
    assert missing["status"] == "not_found" and missing["task_id"] == "0" * 32


def test_cancel_queued_and_running_jobs(server, client, tmp_path):
    write_wav(tmp_path / "a.wav")
    slow = client.separate_audio(str(tmp_path / "a.wav"), model="fake-slow.ckpt")["task_id"]
    wait_for(server.url, slow, ("processing",))
    queued = client.separate_audio(str(tmp_path / "a.wav"), model="fake-gain.ckpt")["task_id"]
    assert client.get_job_status(queued)["status"] == "submitted"
    assert client.cancel_job(queued)["status"] == "cancelled"
    started = time.monotonic()
    client.cancel_job(slow)
    doc = wait_for(server.url, slow, ("cancelled",), timeout=10)
    assert time.monotonic() - started < 8 and doc["files"] == {}  # the 20 s job was stopped, not waited for
    with pytest.raises(RemoteAPIError) as info:
        client.cancel_job(slow)
    assert info.value.status_code == 409
    with pytest.raises(RemoteAPIError) as info:
        client.cancel_job("f" * 32)
    assert info.value.status_code == 404
    after = client.separate_audio_and_wait(str(tmp_path / "a.wav"), model="fake-gain.ckpt", poll_interval=0.1,
                                           timeout=30, download=False)
    assert after["status"] == "completed"  # the slot started a fresh worker process


def test_two_clients_at_once(server, tmp_path):
    inputs = {name: write_wav(tmp_path / f"{name}.wav", seconds=0.5, seed=i) for i, name in enumerate(("x", "y"))}
    results = {}

    def run(name: str) -> None:
        with AudioSeparatorAPIClient(server.url, token=TOKEN) as api:
            results[name] = api.separate_audio_and_wait(str(tmp_path / f"{name}.wav"), model="fake-gain.ckpt",
                                                        poll_interval=0.1, timeout=30,
                                                        output_dir=str(tmp_path / name), output_format="wav")

    threads = [threading.Thread(target=run, args=(n,)) for n in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results["x"]["task_id"] != results["y"]["task_id"]
    for name, data in inputs.items():
        assert results[name]["status"] == "completed"
        got = sf.read(tmp_path / name / f"{name}_(Instrumental)_fake-gain.wav", dtype="float32")[0]
        np.testing.assert_allclose(got, data * 0.25, atol=1.5 / 32768)


def test_models_presets_root_and_openapi(server, client):
    assert client.list_models("json") == {"Fake": {
        "Fake gain": {"filename": "fake-gain.ckpt", "stems": ["vocals*", "instrumental"]},
        "Fake slow gain": {"filename": "fake-slow.ckpt", "stems": ["vocals*", "instrumental"]},
        "Fake failure": {"filename": "fake-fail.ckpt", "stems": ["vocals*", "instrumental"]}}}
    text = client.list_models()["text"]
    assert text.splitlines()[1].split() == ["Model", "Filename", "Arch", "Output", "Stems", "(SDR)", "Friendly", "Name"]
    assert "fake-gain.ckpt" in text and "fake-slow.ckpt" not in client.list_models(filter_by="gain.")["text"]
    assert client.list_presets()["presets"]["fake_pair"]["models"] == ["fake-gain.ckpt", "fake-slow.ckpt"]
    root = HTTP.get(server.url + "/", headers=AUTH).json()
    assert root["version"] == vsep_core.__version__ and "POST /separate" in root["endpoints"]
    schema = HTTP.get(server.url + "/openapi.json", headers=AUTH).json()
    form = schema["components"]["schemas"]
    separate = next(v for k, v in form.items() if k.startswith("Body_separate"))["properties"]
    assert {"file", "model", "models", "preset", "output_format", "fake_gain", "mdxc_overlap"} - set(separate) == \
        {"mdxc_overlap"}  # fields come from the backend's architectures
    assert schema["paths"]["/status/{task_id}"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/health"]["get"]
    assert client.get_server_version() == vsep_core.__version__


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """No token; 0.05 MiB uploads; results kept ~1 s; one job may wait."""
    args = ["--max-upload-mb", "0.05", "--retention-hours", "0.0003", "--max-queue", "1"]
    with LiveServer(tmp_path_factory.mktemp("limited") / "data", args=args, env={"VSEP_FAKE_SLOW_S": "20"}) as live:
        yield live


def test_oversized_upload_is_rejected_without_storing_it(limited, tmp_path):
    write_wav(tmp_path / "big.wav", seconds=1.0)  # 176 kB > 52 kB
    r = submit(limited.url, tmp_path / "big.wav", headers={}, model="fake-gain.ckpt")
    assert r.status_code == 413 and "0.05 MiB" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit must hold while streaming too
        # A well-formed multipart start, so the parser keeps reading instead of refusing the shape (400).
        yield (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
               b"Content-Type: audio/wav\r\n\r\n")
        for _ in range(40):
            yield b"\0" * 4096

    r = HTTP.post(limited.url + "/separate", content=chunks(),
                   headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413
    assert job_dirs(limited) == set()
    write_wav(tmp_path / "small.wav", seconds=0.1)
    assert submit(limited.url, tmp_path / "small.wav", headers={}, model="fake-gain.ckpt").status_code == 200


def test_results_expire_after_the_retention_time(limited, tmp_path):
    write_wav(tmp_path / "s.wav", seconds=0.1)
    task_id = submit(limited.url, tmp_path / "s.wav", headers={}, model="fake-gain.ckpt").json()["task_id"]
    files = wait_for(limited.url, task_id, ("completed", "expired"), headers={})["files"]
    doc = wait_for(limited.url, task_id, ("expired",), timeout=10, headers={})
    assert doc["files"] == {} and "retention" in doc["error"]
    if files:
        r = HTTP.get(f"{limited.url}/download/{task_id}/{next(iter(files))}")
        assert r.status_code == 410 and "submit the job again" in r.json()["detail"]
    assert not (limited.data_dir / "jobs" / task_id).exists()


def test_a_full_queue_answers_503(limited, tmp_path):
    write_wav(tmp_path / "s.wav", seconds=0.1)
    slow = submit(limited.url, tmp_path / "s.wav", headers={}, model="fake-slow.ckpt").json()["task_id"]
    wait_for(limited.url, slow, ("processing",), headers={})
    waiting = submit(limited.url, tmp_path / "s.wav", headers={}, model="fake-gain.ckpt")
    assert waiting.status_code == 200
    r = submit(limited.url, tmp_path / "s.wav", headers={}, model="fake-gain.ckpt")
    assert r.status_code == 503 and "queue is full" in r.json()["detail"]
    for task_id in (waiting.json()["task_id"], slow):
        assert HTTP.post(f"{limited.url}/cancel/{task_id}").status_code == 200


def test_restart_keeps_finished_jobs_and_fails_the_interrupted_one(tmp_path):
    data = write_wav(tmp_path / "s.wav", seconds=0.2)
    first = LiveServer(tmp_path / "data", token=TOKEN, env={"VSEP_FAKE_SLOW_S": "60"}).start()
    try:
        done = submit(first.url, tmp_path / "s.wav", model="fake-gain.ckpt").json()["task_id"]
        files = wait_for(first.url, done, ("completed",))["files"]
        running = submit(first.url, tmp_path / "s.wav", model="fake-slow.ckpt").json()["task_id"]
        wait_for(first.url, running, ("processing",))
        queued = submit(first.url, tmp_path / "s.wav", model="fake-gain.ckpt").json()["task_id"]
        assert wait_for(first.url, queued, ("submitted",))["status"] == "submitted"
    finally:
        first.kill()  # SIGKILL the server and its worker: a crash
    with LiveServer(tmp_path / "data", token=TOKEN) as second:
        interrupted = wait_for(second.url, running, ("error",))
        assert "server stopped while this job was running" in interrupted["error"]
        assert wait_for(second.url, queued, ("completed",))["progress"] == 100
        assert wait_for(second.url, done, ("completed",))["files"] == files
        with AudioSeparatorAPIClient(second.url, token=TOKEN) as api:
            for file_id, name in files.items():
                path = api.download_file_by_hash(done, file_id, name, tmp_path / name)
                gain = 0.5 if "Vocals" in name else 0.25
                np.testing.assert_allclose(sf.read(path, dtype="float32")[0], data * gain, atol=1.5 / 32768)


def test_openapi_schema_survives_fuzzing(server):
    """schemathesis: no 5xx, documented status codes and schemas, invalid input refused with 4xx."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        negative_data_rejection,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
              negative_data_rejection]
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/separate", "/status/{task_id}", "/download/{task_id}/{file_hash}",
                                              "/cancel/{task_id}", "/models", "/models-json", "/presets", "/health",
                                              "/"}
    calls = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=6, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            calls.append(case.operation.path)
            case.call_and_validate(headers=AUTH, timeout=30, checks=checks)

        fuzz()
    assert len(calls) >= 3 * len(operations)


def worker_processes(parent: int) -> list[int]:
    """The multiprocessing worker processes (not the resource tracker) whose parent is `parent` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if int(fields[1]) == parent and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_orphaned_worker_exits_quietly_after_the_server_is_killed(tmp_path):
    import os
    import signal

    write_wav(tmp_path / "s.wav", seconds=0.2)
    live = LiveServer(tmp_path / "data", token=TOKEN, env={"VSEP_FAKE_SLOW_S": "60"}).start()
    workers: list[int] = []
    try:
        running = submit(live.url, tmp_path / "s.wav", model="fake-slow.ckpt").json()["task_id"]
        deadline = time.monotonic() + 30
        while wait_for(live.url, running, ("processing",))["progress"] <= 5:  # until the worker reports progress
            assert time.monotonic() < deadline
            time.sleep(0.1)
        workers = worker_processes(live.process.pid)
        assert workers
        os.kill(live.process.pid, signal.SIGKILL)  # the server alone: its worker is left running a job
        live.process.wait(10)
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{pid}").exists() for pid in workers):
            assert time.monotonic() < deadline, "the orphaned worker kept running"
            time.sleep(0.1)
    finally:
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    log = live.log()
    assert "Traceback" not in log and "BrokenPipe" not in log, log
