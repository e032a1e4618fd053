"""The pipeline in-process: parts read from disk, crossfades, bounded memory, exact lengths."""

from __future__ import annotations

import tracemalloc

import numpy as np
import soundfile as sf

from tests.fixtures.vsep_gain.vsep_gain.plugin import GainModel
from vsep_core import pipeline
from vsep_core.audio import probe


def _opts(tmp_path, **kw):
    return pipeline.OutputOptions(output_dir=tmp_path / "out", output_format="WAV", output_bit_depth=32,
                                  normalization_threshold=1.0, **kw)


def test_parts_from_a_48k_file_match_the_whole(tmp_path, audio_file):
    song = audio_file("s48.wav", seconds=4.0, rate=48000, subtype="FLOAT")
    model = GainModel({"Vocals": 0.5, "Instrumental": 0.5}, 1.0)
    whole = pipeline.separate_file(model, "m", song, _opts(tmp_path))
    parted = pipeline.separate_file(model, "m", song, pipeline.OutputOptions(
        output_dir=tmp_path / "parts", output_format="WAV", output_bit_depth=32, normalization_threshold=1.0,
        chunk_duration=1.3))
    a = sf.read(str(whole[0]), dtype="float32")[0]
    b = sf.read(str(parted[0]), dtype="float32")[0]
    assert a.shape == b.shape == (4 * 44100, 2)
    assert np.max(np.abs(a - b)) < 1e-3
    assert sf.info(str(whole[0])).samplerate == 44100


def _peak_bytes(tmp_path, seconds: int, chunk: float) -> tuple[int, list]:
    rate = 44100
    path = tmp_path / f"long{seconds}.wav"
    with sf.SoundFile(str(path), "w", rate, 2, subtype="PCM_16") as f:
        rng = np.random.default_rng(0)
        for _ in range(seconds // 10):
            f.write((0.1 * rng.standard_normal((rate * 10, 2))).astype(np.float32))
    model = GainModel({"A": 0.1, "B": 0.2, "C": 0.3, "D": 0.4}, 1.0)
    opts = pipeline.OutputOptions(output_dir=tmp_path / f"out{seconds}", output_format="FLAC", chunk_duration=chunk)
    tracemalloc.start()
    written = pipeline.separate_file(model, "m", path, opts)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, written


def test_memory_does_not_grow_with_the_song(tmp_path):
    short_peak, _ = _peak_bytes(tmp_path, 30, 3.0)
    long_peak, written = _peak_bytes(tmp_path, 120, 3.0)
    one_stem = 120 * 44100 * 2 * 4
    # Four times the song, about the same peak; far below even one stem of the long song in RAM.
    assert long_peak < 1.25 * short_peak, (short_peak, long_peak)
    assert long_peak < one_stem / 2
    assert [probe(p).frames for p in written] == [120 * 44100] * 4


def test_disk_stem_reads_back_what_was_appended(tmp_path):
    stem = pipeline.DiskStem(tmp_path / "s.f32", 2, 10)
    data = np.arange(20, dtype=np.float32).reshape(2, 10)
    stem.append(data[:, :4])
    stem.append(data[:, 4:])
    assert stem.shape == (2, 10)
    assert np.array_equal(stem[:, 3:7], data[:, 3:7])
    assert np.array_equal(np.asarray(stem), data)
    assert np.array_equal(stem[0, 8:], data[0, 8:])
    stem.close()


def test_stem_names_and_sanitising():
    assert pipeline.model_name_of("model_bs_roformer_ep_317_sdr_12.9755.ckpt") == "model_bs_roformer_ep_317_sdr_12"
    assert pipeline.sanitize_filename('a<b>:"c"/d|e?*') == "a_b_c_d_e"
    from pathlib import Path

    name = pipeline.stem_output_name(Path("/x/my: song.flac"), "Vocals", "htdemucs", "flac")
    assert name == "my_ song_(Vocals)_htdemucs.flac"
    assert pipeline.stem_output_name(Path("a.wav"), "vocals", "m", "wav", {"VOCALS": "lead"}) == "lead.wav"
