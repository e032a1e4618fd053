"""The library facade: the reference's constructor, validation, params merging, separate()."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from vsep_core import Separator
from vsep_core.errors import SeparationError, UsageError


@pytest.mark.parametrize("kwargs,needle", [
    ({"normalization_threshold": 0}, "normalization_threshold"),
    ({"normalization_threshold": 1.5}, "1.5"),
    ({"amplification_threshold": -0.1}, "amplification_threshold"),
    ({"sample_rate": 0}, "sample_rate"),
    ({"sample_rate": 12_800_000}, "12800000"),
    ({"sample_rate": "abc"}, "abc"),
    ({"chunk_duration": 0}, "chunk_duration"),
    ({"chunk_duration": 0.01}, r"chunk_duration must be at least 1\.0 s, not 0\.01"),  # thousands of parts
    ({"output_format": "XYZ"}, "XYZ"),
    ({"mdxc_params": {"overlap": 0}}, "overlap"),
    ({"mdx_params": {"no_such_key": 1}}, "no_such_key"),
])
def test_validation_names_the_bad_value(tmp_path, kwargs, needle):
    with pytest.raises(UsageError, match=needle):
        Separator(model_file_dir=tmp_path, output_dir=tmp_path, info_only=True, **kwargs)


def test_partial_params_are_merged_over_defaults(tmp_path):
    sep = Separator(model_file_dir=tmp_path, output_dir=tmp_path, info_only=True,
                    mdx_params={"batch_size": 4}, vr_params={"aggression": 10})
    assert sep.mdx_params == {"hop_length": 1024, "segment_size": 256, "overlap": 0.25, "batch_size": 4,
                              "enable_denoise": False}
    assert sep.vr_params["aggression"] == 10 and sep.vr_params["window_size"] == 512
    assert sep.mdxc_params["overlap"] is None and sep.mdxc_params["segment_size"] == 256
    assert sep.demucs_params["segments_enabled"] is True


def test_reference_constructor_signature_and_methods(tmp_path):
    sep = Separator(log_level=logging.WARNING, log_formatter=None, model_file_dir=str(tmp_path),
                    output_dir=str(tmp_path), output_format="FLAC", output_bitrate=None,
                    normalization_threshold=0.9, amplification_threshold=0.0, output_single_stem=None,
                    invert_using_spec=False, sample_rate=44100, use_soundfile=False, use_autocast=False,
                    use_directml=False, chunk_duration=None, mdx_params=None, vr_params=None, demucs_params=None,
                    mdxc_params=None, ensemble_algorithm=None, ensemble_weights=None, ensemble_preset=None,
                    info_only=False)
    assert str(sep.torch_device) == "cpu" and sep.onnx_execution_provider == ["CPUExecutionProvider"]
    assert "libavcodec" in (sep.check_ffmpeg_installed() or "") or "FFmpeg" in (sep.check_ffmpeg_installed() or "")
    assert "onnxruntime" in sep.log_onnxruntime_packages()
    assert sep.get_package_distribution("vsep-core") is not None
    assert sep.get_package_distribution("surely-not-installed-xyz") is None
    info = sep.get_system_info()
    assert info["python"] and info["model_dir"] == str(tmp_path)


def test_separate_returns_paths_and_collects_failures(tmp_path, audio_file, gain_model_dir):
    out = tmp_path / "out"
    sep = Separator(model_file_dir=gain_model_dir, output_dir=out, output_format="WAV")
    sep.load_model("vocal_split.gain")
    song = audio_file("s.wav")
    files = sep.separate(str(song))
    assert sorted(files) == sorted(str(out / f"s_({s})_vocal_split.wav") for s in ("Vocals", "Instrumental"))
    bad = tmp_path / "bad.wav"
    bad.write_text("junk" * 100)
    with pytest.raises(SeparationError) as info:
        sep.separate([str(bad), str(song)])
    assert [p for p, _ in info.value.failures] == [str(bad)]
    assert len(info.value.successful_files) == 2


def test_no_model_loaded_is_a_clear_error(tmp_path, audio_file):
    sep = Separator(model_file_dir=tmp_path, output_dir=tmp_path)
    with pytest.raises(UsageError, match="load_model"):
        sep.separate(str(audio_file()))


def test_custom_output_names_in_separate(tmp_path, audio_file, gain_model_dir):
    sep = Separator(model_file_dir=gain_model_dir, output_dir=tmp_path / "o", output_format="FLAC")
    sep.load_model("vocal_split.gain")
    files = sep.separate(str(audio_file("t.wav")), custom_output_names={"VOCALS": "lead"})
    assert any(f.endswith("lead.flac") for f in files)


def test_amplification_raises_quiet_stems(tmp_path, audio_file, gain_model_dir):
    sep = Separator(model_file_dir=gain_model_dir, output_dir=tmp_path / "o", output_format="WAV",
                    amplification_threshold=0.8, output_bit_depth=32)
    sep.load_model("vocal_split.gain")
    files = sep.separate(str(audio_file("q.wav", amplitude=0.05)))
    for f in files:
        peak = np.max(np.abs(sf.read(f, dtype="float32")[0]))
        assert abs(peak - 0.8) < 1e-3


def test_single_stem_can_be_the_extracted_instrumental(tmp_path, audio_file, gain_model_dir):
    # local_trio.gain gives Drums 0.5, Bass 0.3, Other 0.2: no vocals, so the first stem is the target
    song = audio_file("trio.wav", seconds=0.3)
    sep = Separator(model_file_dir=gain_model_dir, output_dir=tmp_path / "out", output_format="WAV",
                    output_bit_depth=32, normalization_threshold=1.0, output_single_stem="Instrumental",
                    extract_instrumental=True, info_only=True)
    sep.load_model("local_trio.gain")
    [path] = sep.separate(str(song))
    assert "(Instrumental)" in path
    mix = sf.read(song, dtype="float32", always_2d=True)[0]
    got = sf.read(path, dtype="float32", always_2d=True)[0]
    assert np.allclose(got, mix * 0.5, atol=1e-5)  # mix - Drums
