"""Audio I/O through real files: every output format and bit depth, normalisation, resampling, errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vsep_core import audio
from vsep_core.errors import AudioReadError, UsageError


def test_no_ffmpeg_binary_is_needed(tmp_path):
    # With an empty PATH no ffmpeg binary can be found; writing and reading MP3 and M4A still work.
    code = (
        "import numpy as np; from vsep_core import audio; from pathlib import Path\n"
        "x = np.zeros((2, 4410), np.float32) + 0.1\n"
        "for ext in ('mp3', 'm4a', 'opus'):\n"
        f"    p = audio.write_audio(Path(r'{tmp_path}') / ('o.' + ext), x, 44100, ext.upper())\n"
        "    assert audio.read_audio(p)[0].shape[0] == 2\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={"PATH": ""}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "AIFF"])
@pytest.mark.parametrize("bit_depth,subtype", [(16, "PCM_16"), (24, "PCM_24"), (32, "FLOAT")])
def test_lossless_round_trip(tmp_path, fmt, bit_depth, subtype):
    if fmt == "FLAC" and bit_depth == 32:
        with pytest.raises(UsageError, match="FLAC cannot store 32-bit"):
            audio.output_subtype(fmt, bit_depth)
        return
    x = (np.random.default_rng(1).uniform(-0.5, 0.5, (2, 4410))).astype(np.float32)
    path = audio.write_audio(tmp_path / f"out.{fmt.lower()}", x, 44100, fmt, bit_depth)
    info = sf.info(str(path))
    assert info.subtype == subtype and info.samplerate == 44100 and info.frames == 4410
    back, _ = audio.read_audio(path)
    tolerance = {16: 1 / 2**15, 24: 1 / 2**23, 32: 0}[bit_depth]
    assert np.max(np.abs(back - x)) <= tolerance + 1e-7


@pytest.mark.parametrize("fmt,ext", [("MP3", "mp3"), ("OGG", "ogg"), ("OPUS", "opus"), ("M4A", "m4a")])
def test_lossy_round_trip(tmp_path, fmt, ext):
    t = np.arange(44100) / 44100
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    path = audio.write_audio(tmp_path / f"out.{ext}", x, 44100, fmt, bitrate="192k")
    back, info = audio.read_audio(path)
    assert back.shape[0] == 2
    # Codecs add priming delay; the length is within a few codec frames and the tone survives.
    assert abs(back.shape[1] * 44100 / info.sample_rate - 44100) < 6000
    spectrum = np.abs(np.fft.rfft(back[0, :info.sample_rate // 2]))
    peak_hz = np.argmax(spectrum) * info.sample_rate / (info.sample_rate // 2)
    assert abs(peak_hz - 440) < 5


def test_mp3_bitrate_is_honoured(tmp_path):
    x = np.random.default_rng(2).uniform(-0.3, 0.3, (2, 44100 * 2)).astype(np.float32)
    small = audio.write_audio(tmp_path / "a.mp3", x, 44100, "MP3", bitrate="96k")
    big = audio.write_audio(tmp_path / "b.mp3", x, 44100, "MP3", bitrate="320k")
    assert big.stat().st_size > 2.5 * small.stat().st_size


def test_bit_depth_of_inputs(audio_file):
    assert audio.probe(audio_file("a.flac", subtype="PCM_24")).bit_depth == 24
    assert audio.probe(audio_file("b.wav", subtype="PCM_16")).bit_depth == 16
    assert audio.probe(audio_file("c.wav", subtype="FLOAT")).bit_depth == 32


def test_normalize_matches_reference_formula():
    x = np.array([[0.5, -1.8, 0.2]], np.float32)
    y = audio.normalize(x, 0.9, 0.0)
    assert np.isclose(np.max(np.abs(y)), 0.9) and np.allclose(y / x, 0.5)
    quiet = np.array([[0.01, -0.02]], np.float32)
    assert np.isclose(np.max(np.abs(audio.normalize(quiet, 0.9, 0.5))), 0.5)
    assert np.array_equal(audio.normalize(quiet, 0.9, 0.0), quiet)
    assert audio.normalization_gain(0.0, 0.9, 0.5) == 1.0  # silence is not amplified


def test_resample_keeps_exact_length():
    x = np.random.default_rng(3).standard_normal((2, 48000)).astype(np.float32)
    y = audio.resample(x, 48000, 44100, length=44100)
    assert y.shape == (2, 44100)


def test_mono_becomes_stereo_and_multichannel_is_refused():
    mono = np.ones((1, 10), np.float32)
    assert audio.match_channels(mono, 2).shape == (2, 10)
    with pytest.raises(AudioReadError, match="6 channels"):
        audio.match_channels(np.ones((6, 10), np.float32), 2)


@pytest.mark.parametrize("content,message", [
    (None, "not found"), (b"", "empty"), (b"this is not audio at all" * 20, "cannot decode"),
])
def test_bad_inputs(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioReadError, match=message):
        audio.read_audio(path)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_truncated_file_is_read_as_far_as_it_goes_with_a_warning(tmp_path, audio_file, caplog, fmt):
    good = audio_file(f"x.{fmt}", seconds=2.0)
    data = good.read_bytes()
    bad = tmp_path / f"cut.{fmt}"
    bad.write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING", logger="vsep"):
        mix, _ = audio.read_audio(bad)
    assert [r.message for r in caplog.records if "looks truncated" in r.message and "cut." in r.message]
    assert 0 < np.count_nonzero(np.abs(mix).max(axis=0)) < 2.0 * 44100 * 0.75  # about half of it decodes
    whole, _ = audio.read_audio(good)
    assert not [r for r in caplog.records if "x." in r.message]


def test_zero_length_audio_is_refused(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(str(path), np.zeros((0, 2), np.float32), 44100)
    with pytest.raises(AudioReadError, match="no audio samples"):
        audio.read_audio(path)


def test_failed_write_leaves_nothing(tmp_path):
    x = np.zeros((2, 100), np.float32)
    with pytest.raises(UsageError):
        audio.write_audio(tmp_path / "out.flac", x, 44100, "FLAC", bit_depth=32)
    assert list(tmp_path.iterdir()) == []


def test_directory_search_is_recursive(tmp_path, audio_file):
    sub = tmp_path / "album" / "cd1"
    sub.mkdir(parents=True)
    a = audio_file("a.wav")
    shutil.move(a, sub / "a.WAV")
    (tmp_path / "album" / "notes.txt").write_text("x")
    assert audio.find_audio_files([tmp_path / "album"]) == [sub / "a.WAV"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AudioReadError, match="no audio files"):
        audio.find_audio_files([empty])


def test_m4a_input_decodes_through_pyav(tmp_path):
    t = np.arange(22050) / 44100
    x = np.stack([0.4 * np.sin(2 * np.pi * 330 * t)] * 2).astype(np.float32)
    path = audio.write_audio(tmp_path / "in.m4a", x, 44100, "M4A")
    back, info = audio.read_audio(Path(path))
    assert info.sample_rate == 44100 and back.shape[0] == 2 and back.shape[1] > 20000


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    path = audio.write_audio(tmp_path / "p.wav", np.zeros((2, 10), np.float32), 44100, "WAV")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
