"""Downloads against a real HTTP server on localhost serving the oracle's model files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from vsep_core import catalog, config, download
from vsep_core.api import DownloadFile, ModelRecord
from vsep_core.errors import DownloadError
from vsep_core.sources import uvr_model_file

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO.parent / "shared" / "reference" / "models"
CKPT = (MODELS / "model_mel_band_roformer_ep_3005_sdr_11.4360.ckpt").read_bytes()  # 2.9 MB
YAML = (MODELS / "model_mel_band_roformer_ep_3005_sdr_11.4360.yaml").read_bytes()
TH = (MODELS / "955717e8-8726e21a.th").read_bytes()  # 0.8 MB
PTH = (MODELS / "2_HP-UVR.pth").read_bytes()  # 1.4 MB


@pytest.fixture(scope="module")
def server():
    srv = HTTPServer(threaded=True)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()


@pytest.fixture
def http(server: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    """The server, emptied, with every model repository pointed at it and fast retries."""
    server.clear()
    for env, path in (("VSEP_UVR_PUBLIC_REPO_URL", "/public"), ("VSEP_UVR_VIP_REPO_URL", "/vip"),
                      ("VSEP_AUDIO_SEPARATOR_REPO_URL", "/fallback"), ("VSEP_DEMUCS_REPO_URL", "/demucs")):
        monkeypatch.setenv(env, server.url_for(path))
    monkeypatch.delenv("VSEP_OFFLINE", raising=False)
    monkeypatch.setattr(download, "BACKOFF_S", 0.01)
    return server


def serving(data: bytes, *, chunk: int = 65536, delay: float = 0.0, drop_after: int | None = None,
            honour_range: bool = True, requests: list | None = None):
    """A werkzeug handler serving ``data`` with Range support; ``drop_after`` closes the
    connection after that many body bytes (the headers promise the whole length)."""

    def handler(request: Request) -> Response:
        rng = request.headers.get("Range")
        if requests is not None:
            requests.append(rng)
        start, status, headers = 0, 200, {"Accept-Ranges": "bytes"}
        if rng and honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                return Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            status, headers["Content-Range"] = 206, f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        headers["Content-Length"] = str(len(body))

        def gen():
            sent = 0
            for i in range(0, len(body), chunk):
                if delay:
                    time.sleep(delay)
                piece = body[i:i + chunk]
                if drop_after is not None and sent + len(piece) > drop_after:
                    yield piece[:drop_after - sent]
                    raise ConnectionAbortedError("test server drops the connection")
                sent += len(piece)
                yield piece

        return Response(gen(), status=status, headers=headers, direct_passthrough=True)

    return handler


def record_of(*files: DownloadFile, filename: str | None = None, config_name: str | None = None) -> ModelRecord:
    return ModelRecord(filename=filename or files[0].name, architecture="MDXC", friendly_name="test model",
                       files=list(files), config=config_name)


def requested_paths(server: HTTPServer) -> list[str]:
    return [req.path for req, _ in server.log]


def test_model_and_its_yaml_download_with_yaml_fallback(http: HTTPServer, tmp_path: Path) -> None:
    record = catalog.resolve_model("mel_band_roformer_karaoke_becruily.ckpt", tmp_path)
    yaml_name = "config_mel_band_roformer_karaoke_becruily.yaml"
    assert record.config == yaml_name
    http.expect_request(f"/public/{record.filename}").respond_with_handler(serving(CKPT))
    http.expect_request(f"/public/mdx_model_data/mdx_c_configs/{yaml_name}").respond_with_data("", status=404)
    http.expect_request(f"/fallback/{yaml_name}").respond_with_data(YAML)

    paths = download.ensure_model_files(record, tmp_path, show_progress=False)

    assert paths == {record.filename: tmp_path / record.filename, yaml_name: tmp_path / yaml_name}
    assert paths[record.filename].read_bytes() == CKPT
    assert paths[yaml_name].read_bytes() == YAML
    assert not list(tmp_path.glob("*.part"))
    assert f"/fallback/{yaml_name}" in requested_paths(http)


def test_packaged_config_is_the_last_resort(http: HTTPServer, tmp_path: Path) -> None:
    record = catalog.resolve_model(config.DEFAULT_MODEL_FILENAME, tmp_path)
    http.expect_request(f"/public/{record.filename}").respond_with_handler(serving(CKPT))

    paths = download.ensure_model_files(record, tmp_path, show_progress=False)

    # Both repositories answer 404 for the yaml, so the copy packaged with vsep-mdxc is used.
    assert f"/fallback/{record.config}" in requested_paths(http)
    assert "freqs_per_bands" in paths[record.config].read_text()


def test_packaged_config_is_copied_offline_without_network(http: HTTPServer, tmp_path: Path) -> None:
    record = catalog.resolve_model(config.DEFAULT_MODEL_FILENAME, tmp_path)
    (tmp_path / record.filename).write_bytes(CKPT)

    paths = download.ensure_model_files(record, tmp_path, offline=True, show_progress=False)

    assert requested_paths(http) == []
    assert "freqs_per_bands" in paths[record.config].read_text()


def test_repository_config_wins_over_the_packaged_one(http: HTTPServer, tmp_path: Path) -> None:
    record = catalog.resolve_model(config.DEFAULT_MODEL_FILENAME, tmp_path)
    (tmp_path / record.filename).write_bytes(CKPT)
    http.expect_request(f"/fallback/{record.config}").respond_with_data(YAML)

    paths = download.ensure_model_files(record, tmp_path, show_progress=False)

    assert paths[record.config].read_bytes() == YAML


def test_several_files_download_in_parallel(http: HTTPServer, tmp_path: Path) -> None:
    record = catalog.resolve_model("htdemucs_ft.yaml", tmp_path)
    assert len(record.files) == 5
    lock, active, peak = threading.Lock(), [0], [0]

    def tracked(request: Request) -> Response:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.3)  # the others arrive while this one is in flight
        with lock:
            active[0] -= 1
        return serving(TH)(request)

    for f in record.files:
        path = "/public/htdemucs_ft.yaml" if f.name.endswith(".yaml") else f"/demucs/hybrid_transformer/{f.name}"
        http.expect_request(path).respond_with_handler(tracked)

    paths = download.ensure_model_files(record, tmp_path, show_progress=True)  # Rich bars on stderr

    assert all(p.read_bytes() == TH for p in paths.values())
    assert 2 <= peak[0] <= config.MAX_DOWNLOAD_WORKERS


def test_dropped_connection_resumes_with_range_and_is_byte_identical(http: HTTPServer, tmp_path: Path) -> None:
    seen: list = []
    first = serving(CKPT, drop_after=1_000_000, requests=seen)
    rest = serving(CKPT, requests=seen)
    http.expect_ordered_request("/public/m.ckpt").respond_with_handler(first)
    http.expect_ordered_request("/public/m.ckpt").respond_with_handler(rest)

    paths = download.ensure_model_files(record_of(uvr_model_file("m.ckpt")), tmp_path, show_progress=False)

    assert paths["m.ckpt"].read_bytes() == CKPT
    assert seen[0] is None and seen[1] == "bytes=1000000-"
    assert not (tmp_path / "m.ckpt.part").exists()


def test_truncated_body_is_detected_and_not_renamed(http: HTTPServer, tmp_path: Path) -> None:
    # Every answer promises the whole file and stops half way, ignoring Range.
    short = serving(CKPT, drop_after=len(CKPT) // 2, honour_range=False)
    http.expect_request("/public/m.ckpt").respond_with_handler(short)
    http.expect_request("/fallback/m.ckpt").respond_with_handler(short)

    with pytest.raises(DownloadError, match="m.ckpt"):
        download.ensure_model_files(record_of(uvr_model_file("m.ckpt")), tmp_path, show_progress=False)

    assert not (tmp_path / "m.ckpt").exists()
    assert 0 < (tmp_path / "m.ckpt.part").stat().st_size < len(CKPT)


def test_complete_body_of_the_wrong_size_is_not_renamed(http: HTTPServer, tmp_path: Path) -> None:
    http.expect_request("/public/m.ckpt").respond_with_handler(serving(CKPT[:-100]))
    http.expect_request("/fallback/m.ckpt").respond_with_handler(serving(CKPT[:-100]))

    with pytest.raises(DownloadError, match=f"catalogue expects {len(CKPT)}"):
        download.ensure_model_files(record_of(uvr_model_file("m.ckpt", size=len(CKPT))), tmp_path,
                                    show_progress=False)

    assert not (tmp_path / "m.ckpt").exists()


def test_sha256_mismatch_is_not_renamed(http: HTTPServer, tmp_path: Path) -> None:
    http.expect_request("/public/m.ckpt").respond_with_handler(serving(CKPT))
    http.expect_request("/fallback/m.ckpt").respond_with_handler(serving(CKPT))

    with pytest.raises(DownloadError, match="sha256"):
        download.ensure_model_files(record_of(uvr_model_file("m.ckpt", sha256="0" * 64)), tmp_path,
                                    show_progress=False)

    assert not (tmp_path / "m.ckpt").exists()


def test_primary_404_falls_back(http: HTTPServer, tmp_path: Path) -> None:
    http.expect_request("/public/2_HP-UVR.pth").respond_with_data("not here", status=404)
    http.expect_request("/fallback/2_HP-UVR.pth").respond_with_handler(serving(PTH))

    paths = download.ensure_model_files(record_of(uvr_model_file("2_HP-UVR.pth")), tmp_path, show_progress=False)

    assert paths["2_HP-UVR.pth"].read_bytes() == PTH
    assert requested_paths(http) == ["/public/2_HP-UVR.pth", "/fallback/2_HP-UVR.pth"]


def test_server_error_is_retried(http: HTTPServer, tmp_path: Path) -> None:
    http.expect_ordered_request("/public/2_HP-UVR.pth").respond_with_data("busy", status=500)
    http.expect_ordered_request("/public/2_HP-UVR.pth").respond_with_handler(serving(PTH))

    paths = download.ensure_model_files(record_of(uvr_model_file("2_HP-UVR.pth")), tmp_path, show_progress=False)

    assert paths["2_HP-UVR.pth"].read_bytes() == PTH
    assert requested_paths(http) == ["/public/2_HP-UVR.pth"] * 2


def test_vip_model_comes_from_the_vip_repository(http: HTTPServer, tmp_path: Path) -> None:
    record = catalog.resolve_model("UVR-MDX-NET_Main_340.onnx", tmp_path)
    assert record.vip
    http.expect_request("/vip/UVR-MDX-NET_Main_340.onnx").respond_with_data(b"onnx bytes")

    download.ensure_model_files(record, tmp_path, show_progress=False)

    assert (tmp_path / "UVR-MDX-NET_Main_340.onnx").read_bytes() == b"onnx bytes"


def test_offline_missing_file_is_a_clear_error_without_network(http: HTTPServer, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    record = record_of(DownloadFile("present.ckpt"), DownloadFile("absent.yaml"))
    (tmp_path / "present.ckpt").write_bytes(b"x")
    with pytest.raises(DownloadError, match=r"offline.*absent\.yaml"):
        download.ensure_model_files(record, tmp_path, offline=True, show_progress=False)
    monkeypatch.setenv("VSEP_OFFLINE", "1")
    with pytest.raises(DownloadError, match="absent.yaml"):
        download.ensure_model_files(record, tmp_path, show_progress=False)
    assert http.log == []
    (tmp_path / "absent.yaml").write_bytes(b"y")
    assert download.ensure_model_files(record, tmp_path, show_progress=False)["absent.yaml"] == tmp_path / "absent.yaml"
    assert http.log == []


def test_a_part_that_is_already_whole_is_verified_and_renamed(http: HTTPServer, tmp_path: Path) -> None:
    (tmp_path / "m.ckpt.part").write_bytes(PTH)
    seen: list = []
    http.expect_request("/public/m.ckpt").respond_with_handler(serving(PTH, requests=seen))

    download.ensure_model_files(record_of(uvr_model_file("m.ckpt")), tmp_path, show_progress=False)

    assert seen == [f"bytes={len(PTH)}-"]  # answered 416 with the full length: nothing left to fetch
    assert (tmp_path / "m.ckpt").read_bytes() == PTH and not (tmp_path / "m.ckpt.part").exists()


def test_complete_files_are_not_fetched_again(http: HTTPServer, tmp_path: Path) -> None:
    (tmp_path / "m.ckpt").write_bytes(CKPT)
    download.ensure_model_files(record_of(uvr_model_file("m.ckpt", size=len(CKPT))), tmp_path, show_progress=False)
    assert http.log == []


def test_candidate_urls_follow_the_reference_order(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("VSEP_UVR_PUBLIC_REPO_URL", "VSEP_AUDIO_SEPARATOR_REPO_URL", "VSEP_DEMUCS_REPO_URL"):
        monkeypatch.delenv(env, raising=False)
    record = catalog.resolve_model("mel_band_roformer_karaoke_becruily.ckpt", Path("."))
    ckpt, yaml_file = record.files
    assert download.candidate_urls(record, ckpt) == [f"{config.UVR_PUBLIC_REPO_URL}/{ckpt.name}",
                                                     f"{config.AUDIO_SEPARATOR_REPO_URL}/{ckpt.name}"]
    assert download.candidate_urls(record, yaml_file) == [config.get_mdx_yaml_url(yaml_file.name),
                                                          config.get_fallback_url(yaml_file.name)]
    demucs = catalog.resolve_model("htdemucs.yaml", Path("."))
    assert download.candidate_urls(demucs, demucs.files[0])[0] == (
        "https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/955717e8-8726e21a.th")
    monkeypatch.setenv("VSEP_DEMUCS_REPO_URL", "http://mirror.test/d/")
    assert download.candidate_urls(demucs, demucs.files[0])[0] == (
        "http://mirror.test/d/hybrid_transformer/955717e8-8726e21a.th")


CHILD = textwrap.dedent("""
    import logging, sys
    from pathlib import Path
    from vsep_core.api import ModelRecord
    from vsep_core.download import ensure_model_files
    from vsep_core.sources import uvr_model_file
    logging.basicConfig(level=logging.INFO)
    record = ModelRecord("m.ckpt", "MDXC", "test", [uvr_model_file("m.ckpt")])
    ensure_model_files(record, Path(sys.argv[1]), show_progress=False)
""")


def _child(http: HTTPServer, model_dir: Path) -> subprocess.Popen:
    env = dict(os.environ, VSEP_UVR_PUBLIC_REPO_URL=http.url_for("/public"),
               VSEP_AUDIO_SEPARATOR_REPO_URL=http.url_for("/fallback"))
    env.pop("VSEP_OFFLINE", None)
    return subprocess.Popen([sys.executable, "-c", CHILD, str(model_dir)], env=env, stderr=subprocess.PIPE,
                            text=True)


def test_two_processes_produce_one_complete_file(http: HTTPServer, tmp_path: Path) -> None:
    release = threading.Event()

    def held(request: Request) -> Response:  # sends a little, then holds until the second process waits
        def gen():
            yield CKPT[:65536]
            release.wait(30)
            yield CKPT[65536:]

        return Response(gen(), headers={"Content-Length": str(len(CKPT))}, direct_passthrough=True)

    http.expect_request("/public/m.ckpt").respond_with_handler(held)
    first = _child(http, tmp_path)
    deadline = time.monotonic() + 30
    while not (tmp_path / "m.ckpt.part").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    second = _child(http, tmp_path)
    waiting = ""
    for line in second.stderr:  # the second process blocks on the first one's lock
        waiting += line
        if "waiting for another vsep process" in line:
            break
    release.set()
    errs = [first.communicate(timeout=30)[1], waiting + second.communicate(timeout=30)[1]]

    assert [first.returncode, second.returncode] == [0, 0], errs
    assert "waiting for another vsep process" in errs[1]
    assert (tmp_path / "m.ckpt").read_bytes() == CKPT
    assert requested_paths(http) == ["/public/m.ckpt"]  # the second found the file done and fetched nothing
    assert not (tmp_path / "m.ckpt.part").exists()


def test_interrupted_download_leaves_a_part_that_the_next_run_resumes(http: HTTPServer, tmp_path: Path) -> None:
    seen: list = []
    http.expect_request("/public/m.ckpt").respond_with_handler(
        serving(CKPT, chunk=65536, delay=0.05, requests=seen))
    part = tmp_path / "m.ckpt.part"
    proc = _child(http, tmp_path)
    deadline = time.monotonic() + 30
    while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    proc.communicate(timeout=30)

    assert proc.returncode != 0
    assert not (tmp_path / "m.ckpt").exists()
    kept = part.stat().st_size
    assert 0 < kept < len(CKPT)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["m.ckpt.part"]

    http.clear()
    http.expect_request("/public/m.ckpt").respond_with_handler(serving(CKPT, requests=seen))
    paths = download.ensure_model_files(record_of(uvr_model_file("m.ckpt")), tmp_path, show_progress=False)

    assert paths["m.ckpt"].read_bytes() == CKPT
    assert seen[-1] == f"bytes={kept}-"
    assert not part.exists()


def test_config_names_and_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for env in ("VSEP_UVR_PUBLIC_REPO_URL", "VSEP_UVR_VIP_REPO_URL", "VSEP_AUDIO_SEPARATOR_REPO_URL",
                "VSEP_UVR_MODEL_DATA_URL_PREFIX", "VSEP_MODEL_DIR", "AUDIO_SEPARATOR_MODEL_DIR"):
        monkeypatch.delenv(env, raising=False)
    assert config.UVR_PUBLIC_REPO_URL == "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models"
    assert config.UVR_VIP_REPO_URL == "https://github.com/Anjok0109/ai_magic/releases/download/v5"
    assert config.AUDIO_SEPARATOR_REPO_URL == (
        "https://github.com/nomadkaraoke/python-audio-separator/releases/download/model-configs")
    assert config.UVR_MODEL_DATA_URL_PREFIX == "https://raw.githubusercontent.com/TRvlvr/application_data/main"
    assert (config.MAX_DOWNLOAD_WORKERS, config.DOWNLOAD_CHUNK_SIZE, config.DOWNLOAD_TIMEOUT) == (4, 262144, 300)
    assert (config.HTTP_POOL_CONNECTIONS, config.HTTP_POOL_MAXSIZE) == (10, 10)
    assert config.DEFAULT_MODEL_FILENAME == "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
    assert config.get_repo_url() == config.UVR_PUBLIC_REPO_URL
    assert config.get_repo_url(is_vip=True) == config.UVR_VIP_REPO_URL
    assert config.get_mdx_yaml_url("a.yaml") == f"{config.UVR_PUBLIC_REPO_URL}/mdx_model_data/mdx_c_configs/a.yaml"
    assert config.get_fallback_url("a.ckpt") == f"{config.AUDIO_SEPARATOR_REPO_URL}/a.ckpt"
    assert config.get_uvr_model_data_url("vr") == (
        f"{config.UVR_MODEL_DATA_URL_PREFIX}/vr_model_data/model_data_new.json")

    monkeypatch.setenv("VSEP_UVR_PUBLIC_REPO_URL", "http://mirror.test/pub/")
    monkeypatch.setenv("VSEP_AUDIO_SEPARATOR_REPO_URL", "http://mirror.test/as")
    assert config.get_repo_url() == "http://mirror.test/pub"
    assert config.get_mdx_yaml_url("a.yaml") == "http://mirror.test/pub/mdx_model_data/mdx_c_configs/a.yaml"
    assert config.get_fallback_url("a.ckpt") == "http://mirror.test/as/a.ckpt"
    assert config.rewrite_url(f"{config.UVR_PUBLIC_REPO_URL}/htdemucs.yaml") == "http://mirror.test/pub/htdemucs.yaml"
    assert config.UVR_PUBLIC_REPO_URL.startswith("https://github.com/")  # the constant itself never changes

    cache = config.default_model_dir()
    assert cache.parts[-2:] == ("vsep", "models") and not str(cache).startswith("/tmp")
    monkeypatch.setenv("AUDIO_SEPARATOR_MODEL_DIR", str(tmp_path / "legacy"))
    assert config.default_model_dir() == tmp_path / "legacy"
    monkeypatch.setenv("VSEP_MODEL_DIR", str(tmp_path / "vsep"))
    assert config.default_model_dir() == tmp_path / "vsep"


def test_vsep_download_command(http: HTTPServer, tmp_path: Path) -> None:
    import importlib

    from typer.testing import CliRunner

    for name in ("models", "download"):  # registered on the app, as the real CLI has them
        importlib.import_module(f"vsep_core.cli.{name}")
    from vsep_core.cli.app import app

    (tmp_path / "vr_model_data.json").write_text((MODELS / "vr_model_data.json").read_text())
    http.expect_request("/public/2_HP-UVR.pth").respond_with_handler(serving(PTH))
    runner = CliRunner()
    offline = runner.invoke(app, ["download", "2_HP-UVR.pth", "--model_file_dir", str(tmp_path), "--offline"])
    assert isinstance(offline.exception, DownloadError) and http.log == []

    done = runner.invoke(app, ["download", "2_HP-UVR.pth", "--model_file_dir", str(tmp_path)])

    assert done.exit_code == 0, done.output
    assert "2_HP-UVR.pth" in done.output and (tmp_path / "2_HP-UVR.pth").read_bytes() == PTH


def test_a_file_without_a_source_is_an_error_naming_its_plugin(http: HTTPServer, tmp_path: Path) -> None:
    record = ModelRecord("own.bin", "Gain", "third party", [DownloadFile("own.bin")], package="vsep-gain")
    with pytest.raises(DownloadError, match=r"own\.bin.*no download source.*vsep-gain"):
        download.ensure_model_files(record, tmp_path, show_progress=False)
    assert http.log == []  # core never guesses a repository for a plugin's file


def test_the_environment_reads_offline_the_same_way_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from vsep_core.errors import UsageError

    for value, expected in (("1", True), ("true", True), ("ON", True), ("0", False), ("false", False), ("", False)):
        monkeypatch.setenv("VSEP_OFFLINE", value)
        assert config.offline_from_env() is expected
    monkeypatch.setenv("VSEP_OFFLINE", "maybe")
    with pytest.raises(UsageError, match="VSEP_OFFLINE"):
        config.offline_from_env()
