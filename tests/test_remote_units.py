"""Remote API pieces without a server: names, the job store, the sweeper, the client on a mock transport."""

from __future__ import annotations

import hashlib
import json
import logging
import time

import httpx
import pytest

from vsep_core.remote import AudioSeparatorAPIClient
from vsep_core.remote.api_client import RemoteAPIError
from vsep_core.remote.files import Storage, file_hash, is_plain_name, safe_filename
from vsep_core.remote.store import COMPLETED, ERROR, EXPIRED, PROCESSING, SUBMITTED, Job, JobStore
from vsep_core.remote.worker import Sweeper


@pytest.mark.parametrize(("given", "expected"), [
    ("song.flac", "song.flac"),
    ("../../etc/passwd", "passwd"),
    ("..\\..\\boot.ini", "boot.ini"),
    ("/abs/path/x.wav", "x.wav"),
    ("..", "input"),
    (".hidden.wav", "hidden.wav"),
    ("a\x00b\nc.wav", "abc.wav"),
    ('bad:name?"<>|.wav', "bad_name_____.wav"),
    ("", "input"),
    ("Ünïcödé (Mix).flac", "Ünïcödé (Mix).flac"),
])
def test_safe_filename(given, expected):
    assert safe_filename(given) == expected


def test_safe_filename_trims_long_names_keeping_the_extension():
    name = safe_filename("é" * 300 + ".flac")
    assert name.endswith(".flac") and len(name.encode()) <= 180


def test_plain_names_and_download_ids():
    assert is_plain_name("vocals") and not is_plain_name("../x") and not is_plain_name("a/b") and not is_plain_name("")
    assert file_hash("a.flac") == hashlib.sha256(b"a.flac").hexdigest()[:16]  # the reference's download id
    assert file_hash("a.flac") != file_hash("b.flac") and file_hash("a.flac") == file_hash("a.flac")


def _job(task_id: str, status: str = SUBMITTED, **kw) -> Job:
    return Job(task_id=task_id, status=status, original_filename="x.wav", input_name="x.wav",
               models_used=["m"], total_models=1, **kw)


def test_store_survives_reopen_and_marks_running_jobs_failed(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.add(_job("a"))
    store.add(_job("b"))
    store.update("b", status=PROCESSING, progress=40)
    store.add(_job("c", options={"separator": {"output_format": "wav"}}))
    store.close()

    store = JobStore(tmp_path / "jobs.sqlite3")
    assert [j.task_id for j in store.with_status(SUBMITTED)] == ["a", "c"]
    assert store.get("c").options == {"separator": {"output_format": "wav"}}
    assert store.interrupt_running("server died") == ["b"]
    b = store.get("b")
    assert b.status == ERROR and b.error == "server died" and b.progress == 0
    assert store.get("missing") is None


def test_store_conditional_update(tmp_path):
    store = JobStore(tmp_path / "s.db")
    store.add(_job("a"))
    assert store.update("a", only_if_status=(PROCESSING,), status=COMPLETED) is None
    assert store.get("a").status == SUBMITTED
    job = store.update("a", only_if_status=(SUBMITTED,), status=PROCESSING, files={"h": "f.wav"})
    assert job.status == PROCESSING and job.files == {"h": "f.wav"}
    public = job.public()
    assert set(public) >= {"task_id", "status", "progress", "original_filename", "models_used", "total_models",
                           "current_model_index", "files"}
    assert "error" not in public


def test_sweeper_applies_retention_then_size_cap(tmp_path):
    store = JobStore(tmp_path / "s.db")
    storage = Storage(tmp_path / "jobs")
    now = time.time()
    for task_id, age_h, size in (("old", 30, 10), ("mid", 5, 600), ("new", 1, 600), ("queued", 0, 0)):
        store.add(_job(task_id))
        (storage.output_dir(task_id)).mkdir(parents=True)
        (storage.output_dir(task_id) / "f.wav").write_bytes(b"x" * size)
        if task_id != "queued":
            store.update(task_id, status=COMPLETED, size_bytes=size, finished_at=now - age_h * 3600)
    sweeper = Sweeper(store, storage, retention_s=24 * 3600, max_bytes=1000)
    assert sorted(sweeper.sweep(now)) == ["mid", "old"]
    assert store.get("old").status == EXPIRED and "retention" in store.get("old").error
    assert store.get("mid").status == EXPIRED and "cap" in store.get("mid").error
    assert store.get("new").status == COMPLETED and storage.output_file("new", "f.wav") is not None
    assert not storage.job_dir("old").exists() and not storage.job_dir("mid").exists()
    assert store.get("queued").status == SUBMITTED and storage.job_dir("queued").exists()
    sweeper.forget_after_s = 0
    sweeper.sweep(now + 1)
    assert store.get("old") is None


def _client(handler, **kw) -> AudioSeparatorAPIClient:
    return AudioSeparatorAPIClient("http://remote.test/", logging.getLogger("t"),
                                   transport=httpx.MockTransport(handler), **kw)


def test_client_sends_token_and_retries_idempotent_calls(monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.headers.get("authorization")))
        if len(seen) < 3:
            return httpx.Response(503, json={"detail": "busy"})
        return httpx.Response(200, json={"status": "healthy", "version": "9.9"})

    monkeypatch.setenv("VSEP_API_TOKEN", "s3cret")
    assert _client(handler).get_server_version() == "9.9"
    assert seen == [("GET", "/health", "Bearer s3cret")] * 3


def test_client_does_not_retry_a_submission_and_reports_the_detail(tmp_path):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"detail": "the queue is full"})

    song = tmp_path / "s.wav"
    song.write_bytes(b"RIFF")
    with pytest.raises(RemoteAPIError, match="queue is full") as info:
        _client(handler, token="t").separate_audio(str(song), model="m.ckpt")
    assert info.value.status_code == 503 and len(calls) == 1


def test_client_form_fields_follow_the_reference(tmp_path):
    captured = {}

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.read().decode("latin-1")
        captured["body"] = body
        return httpx.Response(200, json={"task_id": "t1", "status": "submitted"})

    song = tmp_path / "s.wav"
    song.write_bytes(b"RIFF....")
    _client(handler).separate_audio(str(song), models=["a.ckpt", "b.onnx"], model="ignored.ckpt",
                                    invert_using_spec=True, custom_output_names={"Vocals": "v"}, mdxc_overlap=4)
    body = captured["body"]
    assert 'name="models"\r\n\r\n["a.ckpt", "b.onnx"]' in body and 'name="model"' not in body
    assert 'name="invert_using_spec"\r\n\r\nTrue' in body and 'name="mdxc_overlap"\r\n\r\n4' in body
    assert 'name="custom_output_names"\r\n\r\n{"Vocals": "v"}' in body
    assert 'filename="s.wav"' in body and "RIFF...." in body
    assert 'name="normalization_threshold"' not in body  # unset -> the server's default
    with pytest.raises(FileNotFoundError):
        _client(handler).separate_audio(str(tmp_path / "missing.wav"))
    with pytest.raises(ValueError):
        _client(handler).separate_audio()


def test_client_status_not_found_and_download_is_atomic(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/status/"):
            return httpx.Response(404, json={"task_id": "x", "status": "not_found", "progress": 0, "error": "gone"})
        if request.url.path == "/download/t/good":
            return httpx.Response(200, content=b"A" * 3_000_000)
        return httpx.Response(404, json={"detail": "job t has no file"})

    client = _client(handler)
    assert client.get_job_status("x")["status"] == "not_found"
    target = tmp_path / "out" / "v.flac"
    assert client.download_file_by_hash("t", "good", "v.flac", target) == str(target)
    assert target.read_bytes() == b"A" * 3_000_000
    with pytest.raises(RemoteAPIError, match="has no file"):
        client.download_file("t", "../evil.flac", tmp_path / "evil.flac")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "v.flac"]  # no partial files left


def test_separate_and_wait_reports_failure_and_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)
    states = iter([{"status": "processing", "progress": 5, "current_model_index": 0, "total_models": 1},
                   {"status": "error", "progress": 0, "error": "model exploded"}])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"task_id": "t9", "status": "submitted"})
        return httpx.Response(200, json=next(states, {"status": "processing", "progress": 50}))

    song = tmp_path / "s.wav"
    song.write_bytes(b"x")
    result = _client(handler).separate_audio_and_wait(str(song), model="m", poll_interval=0)
    assert result == {"task_id": "t9", "status": "error", "error": "model exploded", "files": []}
    result = _client(handler).separate_audio_and_wait(str(song), model="m", poll_interval=0, timeout=0.05)
    assert result["status"] == "timeout" and result["task_id"] == "t9"


def test_list_models_shapes():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/models-json":
            return httpx.Response(200, json={"MDX": {}})
        assert request.url.params.get("filter_sort_by") == "vocals"
        return httpx.Response(200, text="Model Filename  Arch\n")

    client = _client(handler)
    assert client.list_models("json") == {"MDX": {}}
    assert client.list_models(filter_by="vocals") == {"text": "Model Filename  Arch\n"}
    assert json.loads(json.dumps(client.list_models("json"))) == {"MDX": {}}
