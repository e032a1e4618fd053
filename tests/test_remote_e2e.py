"""`vsep serve` + `vsep remote` end to end: the real CLI, the real Separator and the vsep-gain test plugin.

Remote results must be byte-identical to a local run with the same settings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import GAIN_PLUGIN, cli_env, make_tone
from vsep_core import Separator
from vsep_core.cli import main
from vsep_core.remote import AudioSeparatorAPIClient
from vsep_core.remote.testing import LiveServer

TOKEN = "e2e-token"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("gain-models")
    (d / "vocal_split.gain").write_text(json.dumps({"stems": {"Vocals": 0.25, "Instrumental": 0.75}}))
    (d / "local_trio.gain").write_text(json.dumps({"stems": {"Drums": 0.5, "Bass": 0.3, "Other": 0.2}}))
    return d


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    import soundfile as sf

    path = tmp_path_factory.mktemp("input") / "My Song.flac"
    sf.write(path, make_tone(1.5), 44100, subtype="PCM_24")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, models):
    assert str(GAIN_PLUGIN) in cli_env()["PYTHONPATH"]
    data = tmp_path_factory.mktemp("e2e") / "data"
    command = [sys.executable, "-m", "vsep_core.cli", "serve", "--data-dir", str(data), "--model_file_dir",
               str(models), "--device", "cpu"]
    live = LiveServer(data, token=TOKEN, command=command, env=cli_env(), startup_timeout=60)
    with live:
        yield live


def local_run(tmp_path: Path, models: Path, song: Path, model, **kwargs) -> dict[str, bytes]:
    out = tmp_path / "local"
    sep = Separator(model_file_dir=str(models), output_dir=str(out), device="cpu", **kwargs)
    sep.load_model(model)
    return {Path(p).name: Path(p).read_bytes() for p in sep.separate(str(song))}


@pytest.mark.parametrize(("model", "kwargs", "remote_params"), [
    ("vocal_split.gain", {"output_format": "FLAC"}, {}),
    ("local_trio.gain", {"output_format": "WAV", "gain_params": {"scale": 1.5}, "output_bit_depth": 16},
     {"output_format": "wav", "gain_scale": 1.5, "output_bit_depth": 16}),
    (["vocal_split.gain", "local_trio.gain"], {"output_format": "FLAC", "ensemble_algorithm": "avg_wave"},
     {"ensemble_algorithm": "avg_wave"}),
])
def test_remote_results_are_byte_identical_to_a_local_run(server, models, song, tmp_path, model, kwargs,
                                                          remote_params):
    expected = local_run(tmp_path, models, song, model, **kwargs)
    with AudioSeparatorAPIClient(server.url, token=TOKEN) as client:
        selection = {"models": model} if isinstance(model, list) else {"model": model}
        result = client.separate_audio_and_wait(str(song), **selection, poll_interval=0.1, timeout=60,
                                                output_dir=str(tmp_path / "remote"), **remote_params)
    assert result["status"] == "completed", result
    got = {Path(p).name: Path(p).read_bytes() for p in result["downloaded_files"]}
    assert sorted(got) == sorted(expected) and len(got) >= 2
    for name, body in expected.items():
        assert got[name] == body, name


def test_unknown_model_and_bad_parameters_are_refused(server, song):
    with AudioSeparatorAPIClient(server.url, token=TOKEN) as client:
        from vsep_core.remote.api_client import RemoteAPIError

        with pytest.raises(RemoteAPIError, match="no installed plugin claims") as info:
            client.separate_audio(str(song), model="nope.gain")
        assert info.value.status_code == 400
        with pytest.raises(RemoteAPIError, match="output format") as info:
            client.separate_audio(str(song), model="vocal_split.gain", output_format="xyz")
        with pytest.raises(RemoteAPIError) as info:
            client.separate_audio(str(song), model="vocal_split.gain", gain_scale=99)
        assert info.value.status_code == 422
        presets = client.list_presets()
        assert "vocal_balanced" in presets and presets["vocal_balanced"]["models"]
        listing = client.list_models("json")
        assert listing["Gain"]["Gain: vocal split"]["filename"] == "vocal_split.gain"


def test_remote_cli_separate_status_models_download(server, models, song, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VSEP_API_URL", server.url)
    monkeypatch.setenv("VSEP_API_TOKEN", TOKEN)
    out = tmp_path / "cli"
    rc = main(["remote", "separate", str(song), "-m", "vocal_split.gain", "--poll_interval", "0.1",
               "--output_dir", str(out), "--output_format", "wav", "--param", "gain_scale=0.5"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    expected = local_run(tmp_path, models, song, "vocal_split.gain", output_format="WAV", gain_params={"scale": 0.5})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == expected
    assert all(str(out / name) in printed for name in expected)

    assert main(["remote", "models"]) == 0
    assert "vocal_split.gain" in capsys.readouterr().out
    with AudioSeparatorAPIClient(server.url) as client:  # token from VSEP_API_TOKEN
        task_id = client.separate_audio(str(song), model="vocal_split.gain")["task_id"]
        for _ in range(300):
            if client.get_job_status(task_id)["status"] == "completed":
                break
            import time

            time.sleep(0.1)
    assert main(["remote", "status", task_id]) == 0
    status_out = capsys.readouterr().out
    assert "completed" in status_out and "My Song_(Vocals)_vocal_split.flac" in status_out  # names, not hashes
    assert main(["remote", "download", task_id, "My Song_(Vocals)_vocal_split.flac", "--output_dir",
                 str(tmp_path / "dl")]) == 0
    assert (tmp_path / "dl" / "My Song_(Vocals)_vocal_split.flac").stat().st_size > 1000
    assert main(["remote", "status", "0" * 32]) == 1
    assert "no job" in capsys.readouterr().err
    monkeypatch.setenv("VSEP_API_TOKEN", "wrong")
    assert main(["remote", "models"]) == 1
    assert "401" in capsys.readouterr().err
    for files in ([song], [song, song]):  # a refused call is printed once, whatever the number of files
        assert main(["remote", "separate", *map(str, files), "-m", "vocal_split.gain", "--output_dir", str(out)]) == 1
        text = capsys.readouterr().err
        err = [line for line in text.splitlines() if line.lower().startswith("error:")]
        assert len(err) == 1 and "401" in err[0] and text.count("401") == 1, text
    monkeypatch.setenv("VSEP_API_TOKEN", TOKEN)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    assert main(["remote", "separate", str(broken), "-m", "vocal_split.gain", "--poll_interval", "0.1",
                 "--output_dir", str(out)]) == 1
    text = capsys.readouterr().err
    err = [line for line in text.splitlines() if line.lower().startswith("error:")]
    assert len(err) == 1 and "broken.wav" in err[0], text  # the job's error, once


def test_serve_refuses_a_public_address_without_a_token(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("VSEP_API_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)]) == 2
    assert "refusing to listen on 0.0.0.0 without a token" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_remote_without_a_server_url_says_how_to_give_one(capsys, monkeypatch):
    monkeypatch.delenv("VSEP_API_URL", raising=False)
    monkeypatch.delenv("AUDIO_SEPARATOR_API_URL", raising=False)
    assert main(["remote", "models"]) == 1
    assert "VSEP_API_URL" in capsys.readouterr().err


def test_help_does_not_import_the_server_stack():
    import subprocess

    code = ("import sys; from vsep_core.cli import main\n"
            "for argv in (['--help'], ['serve', '--help'], ['remote', '--help'], ['remote', 'separate', '--help']):\n"
            "    assert main(argv) == 0, argv\n"
            "heavy = {'fastapi', 'uvicorn', 'starlette', 'vsep_core.remote.server', 'torch'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--max-upload-mb" in proc.stdout and "--api_url" in proc.stdout and "--mdxc_overlap" in proc.stdout


def test_a_request_shaped_like_the_reference_clients_is_accepted(server, song, tmp_path):
    """audio-separator's client always sends every parameter, booleans as "True"/"False"."""
    import time

    import httpx

    form = {"model": "vocal_split.gain", "output_format": "flac", "normalization_threshold": "0.9",
            "amplification_threshold": "0.0", "invert_using_spec": "False", "sample_rate": "44100",
            "use_soundfile": "False", "use_autocast": "False", "mdx_segment_size": "256", "mdx_overlap": "0.25",
            "mdx_batch_size": "1", "mdx_hop_length": "1024", "mdx_enable_denoise": "False", "vr_batch_size": "1",
            "vr_window_size": "512", "vr_aggression": "5", "vr_enable_tta": "False", "vr_high_end_process": "False",
            "vr_enable_post_process": "False", "vr_post_process_threshold": "0.2", "demucs_segment_size": "Default",
            "demucs_shifts": "2", "demucs_overlap": "0.25", "demucs_segments_enabled": "True",
            "mdxc_segment_size": "256", "mdxc_override_model_segment_size": "False", "mdxc_overlap": "8",
            "mdxc_batch_size": "1", "mdxc_pitch_shift": "0"}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        with open(song, "rb") as fh:
            submitted = http.post("/separate", data=form, files={"file": (song.name, fh)})
        assert submitted.status_code == 200, submitted.text
        task_id = submitted.json()["task_id"]
        for _ in range(300):
            status = http.get(f"/status/{task_id}").json()
            if status["status"] in ("completed", "error"):
                break
            time.sleep(0.1)
        assert status["status"] == "completed", status
        assert sorted(status["files"].values()) == ["My Song_(Instrumental)_vocal_split.flac",
                                                    "My Song_(Vocals)_vocal_split.flac"]


def test_unknown_form_fields_are_refused_naming_the_closest_field(server, song):
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}"}
    for field, value, closest in (("normalization", "5", "normalization_threshold"),
                                  ("gain_scal", "0.5", "gain_scale"), ("zzz_unheard_of", "1", None)):
        with open(song, "rb") as fh:
            r = httpx.post(f"{server.url}/separate", headers=headers, timeout=30,
                           data={"model": "vocal_split.gain", field: value}, files={"file": (song.name, fh)})
        assert r.status_code == 400, r.text
        detail = r.json()["detail"]
        assert f"unknown form field {field!r}" in detail and "\n" not in detail
        assert (f"did you mean {closest!r}" in detail) if closest else "did you mean" not in detail


def test_each_validation_error_is_one_detail_line(server, song):
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}"}
    with open(song, "rb") as fh:
        r = httpx.post(f"{server.url}/separate", headers=headers, timeout=30,
                       data={"model": "vocal_split.gain", "normalization_threshold": "5", "gain_scale": "99",
                             "chunk_duration": "0.01"}, files={"file": (song.name, fh)})
    assert r.status_code == 422, r.text
    body = r.json()
    assert isinstance(body["detail"], str) and "\n" not in body["detail"]
    parts = body["detail"].split("; ")
    assert len(parts) == 3 == len(body["errors"])  # the structured list stays, in its own field
    for name, given in (("normalization_threshold", "5"), ("gain_scale", "99"), ("chunk_duration", "0.01")):
        assert any(p.startswith(f"{name}: ") and repr(given) in p for p in parts), body["detail"]


def test_job_errors_name_the_uploaded_file_never_a_server_path(server, tmp_path):
    broken = tmp_path / "x.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    with AudioSeparatorAPIClient(server.url, token=TOKEN) as client:
        task_id = client.separate_audio(str(broken), model="vocal_split.gain")["task_id"]
        import time

        deadline = time.monotonic() + 60
        while (status := client.get_job_status(task_id))["status"] not in ("error", "completed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert status["status"] == "error"
    error = status["error"]
    assert "x.wav" in error and str(server.data_dir) not in error and str(server.data_dir.resolve()) not in error
    assert "/jobs/" not in error and task_id not in error
