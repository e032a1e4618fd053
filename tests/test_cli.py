"""The real `vsep` CLI in fresh processes, with the vsep-gain test plugin installed by entry point."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import cli_env, run_vsep


def test_help_and_version_are_fast_and_import_no_torch():
    code = ("import sys, time; t = time.perf_counter(); from vsep_core.cli import main; "
            "rc = main(['--help']); assert rc == 0; "
            "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules, 'heavy import'; "
            "print(time.perf_counter() - t, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    assert "separate" in proc.stdout and "plugins" in proc.stdout
    started = time.perf_counter()
    version = run_vsep("--version")
    assert version.returncode == 0 and version.stdout.startswith("vsep ")
    assert time.perf_counter() - started < 5  # generous: includes interpreter start on a loaded CI box


def test_plugins_lists_third_party_plugin_with_version_and_architecture():
    proc = run_vsep("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["gain"]["distribution"] == "vsep-gain" and rows["gain"]["version"] == "0.1.0"
    assert rows["gain"]["architectures"] == ["Gain"]
    assert rows["mdxc"]["architectures"] == ["MDXC"]


def test_generated_flags_of_a_third_party_plugin():
    proc = run_vsep("separate", "--help")
    assert proc.returncode == 0
    assert "--gain_scale" in proc.stdout and "--mdxc_overlap" in proc.stdout and "--vr_window_size" in proc.stdout


def test_env_reports_versions_and_codecs():
    proc = run_vsep("env", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    for key in ("python", "os", "cpu", "ram_gb", "torch", "onnxruntime", "onnxruntime_providers", "libsndfile",
                "ffmpeg", "cuda_available", "mps_available", "model_dir"):
        assert key in info
    assert info["libsndfile"].startswith("1.") and "CPUExecutionProvider" in info["onnxruntime_providers"]
    flat = run_vsep("--env_info")
    assert flat.returncode == 0 and "libsndfile" in flat.stdout


def test_separate_with_a_plugin_model_writes_named_stems(tmp_path, audio_file, gain_model_dir):
    song = audio_file("my song.flac", subtype="PCM_24", amplitude=0.3)
    out = tmp_path / "out"
    proc = run_vsep("separate", song, "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir,
                    "--output_dir", out, "--output_format", "FLAC", "--gain_scale", "2", "--normalization", "1.0")
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["my song_(Instrumental)_vocal_split.flac", "my song_(Vocals)_vocal_split.flac"]
    mix = sf.read(str(song), dtype="float32")[0]
    vocals, rate = sf.read(str(out / "my song_(Vocals)_vocal_split.flac"), dtype="float32")
    assert sf.info(str(out / "my song_(Vocals)_vocal_split.flac")).subtype == "PCM_24"
    assert rate == 44100 and vocals.shape == mix.shape
    assert np.allclose(vocals, mix * 0.5, atol=1e-4)  # gain 0.25 x --gain_scale 2


def test_flat_form_single_stem_and_custom_names(tmp_path, audio_file, gain_model_dir):
    song = audio_file("a.wav")
    out = tmp_path / "o"
    proc = run_vsep(song, "-m", "local_trio.gain", "--model_file_dir", gain_model_dir, "--output_dir", out,
                    "--output_format", "WAV", "--single_stem", "bass")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in out.iterdir()] == ["a_(Bass)_local_trio.wav"]
    proc = run_vsep(song, "-m", "local_trio.gain", "--model_file_dir", gain_model_dir, "--output_dir", out,
                    "--output_format", "MP3", "--custom_output_names", '{"drums": "beat"}')
    assert proc.returncode == 0, proc.stderr
    assert {"beat.mp3", "a_(Bass)_local_trio.mp3", "a_(Other)_local_trio.mp3"} <= {p.name for p in out.iterdir()}


def test_resampled_inputs_keep_their_length_in_output_rate(tmp_path, audio_file, gain_model_dir):
    for rate in (48000, 22050):
        song = audio_file(f"r{rate}.wav", seconds=0.5, rate=rate)
        out = tmp_path / f"o{rate}"
        proc = run_vsep("separate", song, "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir,
                        "--output_dir", out, "--output_format", "WAV", "--sample_rate", "32000")
        assert proc.returncode == 0, proc.stderr
        for f in out.iterdir():
            info = sf.info(str(f))
            assert info.samplerate == 32000 and info.frames == 16000


def test_directory_and_list_inputs_and_mono(tmp_path, audio_file, gain_model_dir):
    music = tmp_path / "music"
    (music / "sub").mkdir(parents=True)
    a = audio_file("a.wav", channels=1)
    a.rename(music / "sub" / "a.wav")
    b = audio_file("b.flac")
    out = tmp_path / "out"
    proc = run_vsep(music, b, "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir, "--output_dir", out)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a_(Instrumental)_vocal_split.flac", "a_(Vocals)_vocal_split.flac",
                     "b_(Instrumental)_vocal_split.flac", "b_(Vocals)_vocal_split.flac"]
    assert sf.info(str(out / "a_(Vocals)_vocal_split.flac")).channels == 2


def test_chunk_duration_gives_the_same_result(tmp_path, audio_file, gain_model_dir):
    song = audio_file("long.wav", seconds=3.0)
    outs = []
    for extra in ([], ["--chunk_duration", "1"]):
        out = tmp_path / f"o{len(extra)}"
        proc = run_vsep(song, "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir, "--output_dir", out,
                        "--output_format", "WAV", "--output_bit_depth", "32", *extra)
        assert proc.returncode == 0, proc.stderr
        outs.append(sf.read(str(out / "long_(Vocals)_vocal_split.wav"), dtype="float32")[0])
    assert outs[0].shape == outs[1].shape
    assert np.max(np.abs(outs[0] - outs[1])) < 1e-5


def _assert_clean_failure(proc, out, needle):
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert lines and needle in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


@pytest.mark.parametrize("case,needle", [
    ("missing", "not found"), ("empty", "empty"), ("text", "cannot decode"), ("truncated", "cannot decode"),
    ("zero", "no audio samples"), ("emptydir", "no audio files"),
])
def test_bad_inputs_fail_in_one_line_and_leave_nothing(tmp_path, audio_file, gain_model_dir, case, needle):
    target = tmp_path / "in.wav"
    if case == "empty":
        target.write_bytes(b"")
    elif case == "text":
        target.write_text("hello, I am a text file\n" * 50)
    elif case == "truncated":
        good = audio_file("good.flac", seconds=2)
        target = tmp_path / "cut.flac"
        target.write_bytes(good.read_bytes()[:3000])
    elif case == "zero":
        sf.write(str(target), np.zeros((0, 2), np.float32), 44100)
    elif case == "emptydir":
        target = tmp_path / "nothing"
        target.mkdir()
    out = tmp_path / "out"
    proc = run_vsep("separate", target, "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir,
                    "--output_dir", out)
    _assert_clean_failure(proc, out, needle)


def test_unknown_model_and_bad_flag_values(tmp_path, audio_file, gain_model_dir):
    song = audio_file()
    out = tmp_path / "out"
    proc = run_vsep(song, "-m", "vocal_splt.gain", "--model_file_dir", gain_model_dir, "--output_dir", out)
    _assert_clean_failure(proc, out, "vocal_splt.gain")
    proc = run_vsep(song, "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir, "--gain_scale", "99")
    assert proc.returncode == 2 and "--gain_scale" in proc.stderr
    proc = run_vsep(song, "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir, "--output_format", "XYZ",
                    "--output_dir", out)
    _assert_clean_failure(proc, out, "XYZ")
    proc = run_vsep(song, "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir, "--single_stem", "piano",
                    "--output_dir", out)
    _assert_clean_failure(proc, out, "piano")


def test_unwritable_output_dir(tmp_path, audio_file, gain_model_dir):
    song = audio_file()
    blocker = tmp_path / "file_not_dir"
    blocker.write_text("x")
    proc = run_vsep(song, "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir,
                    "--output_dir", blocker / "out")
    assert proc.returncode == 1 and "error:" in proc.stderr and "Traceback" not in proc.stderr
    assert blocker.read_text() == "x"


def test_one_bad_file_fails_the_run_after_the_others(tmp_path, audio_file, gain_model_dir):
    good = audio_file("good.wav")
    bad = tmp_path / "bad.wav"
    bad.write_text("nope" * 100)
    out = tmp_path / "out"
    proc = run_vsep(bad, good, "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir, "--output_dir", out)
    assert proc.returncode == 1 and "bad.wav" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["good_(Instrumental)_vocal_split.flac",
                                                     "good_(Vocals)_vocal_split.flac"]
