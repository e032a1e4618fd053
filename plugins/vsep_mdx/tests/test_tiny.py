"""The MDX pipeline on tiny ONNX networks built here: identity gives back the mix, levels, shapes, errors."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest
from mdx_testlib import TINY_DATA, TINY_PARAMS, make_ctx, parity_db, tones, write_tiny_onnx
from vsep_mdx.model import gain_factor, load_model, physical_cores, secondary_stem_name

from vsep_core.api import SeparationModel
from vsep_core.errors import ModelDataError, ModelLoadError


@pytest.fixture
def identity(tmp_path):
    return write_tiny_onnx(tmp_path / "identity.onnx")


def test_identity_network_gives_back_the_mix(identity):
    model = load_model(make_ctx(identity, TINY_DATA, **TINY_PARAMS))
    assert isinstance(model, SeparationModel)
    assert model.sample_rate == 44100 and model.stems == ["Instrumental", "Vocals"]
    mix = tones(1.0)
    stems = model.separate(mix)
    assert list(stems) == ["Instrumental", "Vocals"]
    db, gain = parity_db(stems["Vocals"], mix)
    assert db > 60 and abs(gain) < 0.001
    assert np.max(np.abs(stems["Instrumental"])) < 1e-3 * np.max(np.abs(mix))  # compensate 1: nothing left


def test_hop_that_does_not_divide_n_fft(identity):
    """hop 300 takes the torch.istft branch of the inverse STFT; the mix still comes back."""
    model = load_model(make_ctx(identity, TINY_DATA, hop_length=300, segment_size=32))
    assert model.settings.chunk_size == 300 * 31
    mix = tones(0.5)
    assert parity_db(model.separate(mix)["Vocals"], mix)[0] > 60


@pytest.mark.parametrize(("overlap", "min_db"), [(0.001, 30), (0.25, 60), (0.5, 60), (0.95, 60)])
def test_overlap_add_is_exact_at_any_overlap(identity, overlap, min_db):
    """Windowed overlap-add divided by the window sum gives the mix back; with almost no overlap the chunk
    edges (reflect-padded STFT, band-limited) show, as in the reference."""
    mix = tones(0.5)
    stems = load_model(make_ctx(identity, TINY_DATA, overlap=overlap, batch_size=8, **TINY_PARAMS)).separate(mix)
    assert parity_db(stems["Vocals"], mix)[0] > min_db


@pytest.mark.parametrize(("peak", "amplify"), [(1.7, 0.0), (0.9, 0.0), (0.2, 0.0), (0.2, 0.5)])
def test_stems_keep_the_input_level(tmp_path, peak, amplify):
    """Section 8.1: primary = model(k * m) / k, secondary = m - compensate * primary, whatever k is (core
    applies k and 1/k: the model declares restore_level)."""
    from vsep_core.testing import separate_as_core

    model = load_model(make_ctx(write_tiny_onnx(tmp_path / "half.onnx", expression="half"),
                                dict(TINY_DATA, compensate=1.5), **TINY_PARAMS))
    assert model.input_peak_normalization == "restore_level"
    mix = tones(0.5, peak=peak)
    stems = separate_as_core(model, mix, amplification=amplify)
    db, gain = parity_db(stems["Vocals"], 0.5 * mix)
    assert db > 60 and abs(gain) < 0.001
    np.testing.assert_allclose(stems["Instrumental"], mix - np.float32(1.5) * stems["Vocals"], atol=1e-6)
    assert parity_db(stems["Instrumental"], 0.25 * mix)[0] > 60


def test_denoise_cancels_the_even_part_of_the_network(tmp_path):
    path = write_tiny_onnx(tmp_path / "square.onnx", expression="square")
    mix = tones(0.5)
    plain = load_model(make_ctx(path, TINY_DATA, **TINY_PARAMS)).separate(mix)
    denoised = load_model(make_ctx(path, TINY_DATA, enable_denoise=True, **TINY_PARAMS)).separate(mix)
    assert parity_db(plain["Vocals"], mix)[0] < 20  # f(x) = x + x**2 / 2 is far from the identity ...
    assert parity_db(denoised["Vocals"], mix)[0] > 60  # ... and (f(x) - f(-x)) / 2 = x


def test_fixed_batch_dimension_is_run_in_groups(tmp_path):
    path = write_tiny_onnx(tmp_path / "batch1.onnx", batch=1, expression="square")
    mix = tones(1.0)
    one = load_model(make_ctx(path, TINY_DATA, **TINY_PARAMS)).separate(mix)
    three = load_model(make_ctx(path, TINY_DATA, batch_size=3, enable_denoise=True, **TINY_PARAMS)).separate(mix)
    assert parity_db(three["Vocals"], mix)[0] > 60
    assert parity_db(one["Vocals"], mix)[0] < 20


def test_segment_size_on_a_dynamic_time_axis_runs_as_asked(identity, caplog):
    with caplog.at_level(logging.INFO, logger="vsep"):
        model = load_model(make_ctx(identity, TINY_DATA, hop_length=256, segment_size=48))
    assert model.settings.segment_size == 48 and model.settings.chunk_size == 256 * 47
    assert "dynamic" in caplog.text
    mix = tones(0.5)
    assert parity_db(model.separate(mix)["Vocals"], mix)[0] > 60


def test_segment_size_on_a_fixed_time_axis_runs_as_asked(tmp_path):
    """A graph whose input/output say 256 frames runs at segment 512 as the reference runs it (which converts
    the graph to torch): the same numbers as the same network saved with a dynamic time axis."""
    data = {**TINY_DATA, "mdx_dim_t_set": 8}
    fixed = write_tiny_onnx(tmp_path / "fixed.onnx", frames=256, expression="square")
    dynamic = write_tiny_onnx(tmp_path / "dynamic.onnx", expression="square")
    mix = tones(1.5)
    ours = load_model(make_ctx(fixed, data, hop_length=256, segment_size=512))
    assert ours.settings.segment_size == 512
    out = ours.separate(mix)
    want = load_model(make_ctx(dynamic, data, hop_length=256, segment_size=512)).separate(mix)
    at_256 = load_model(make_ctx(dynamic, data, hop_length=256, segment_size=256)).separate(mix)
    for stem in want:
        assert parity_db(out[stem], want[stem])[0] > 140
        assert parity_db(out[stem], at_256[stem])[0] < 100  # the segment size matters for this network


def test_segment_size_on_a_graph_that_hard_codes_frames_falls_back_to_dim_t(tmp_path, caplog):
    path = write_tiny_onnx(tmp_path / "fixed.onnx", frames=32, expression="per_frame")
    with caplog.at_level(logging.WARNING, logger="vsep"):
        model = load_model(make_ctx(path, TINY_DATA, hop_length=256, segment_size=64))
    assert model.settings.segment_size == 32
    assert "segment_size 64 ignored" in caplog.text
    mix = tones(0.5)
    assert parity_db(model.separate(mix)["Vocals"], mix)[0] > 60


def test_mono_identity(identity):
    mix = tones(0.5, channels=1)
    stems = load_model(make_ctx(identity, TINY_DATA, **TINY_PARAMS)).separate(mix)
    assert stems["Vocals"].shape == (1, mix.shape[1])
    assert parity_db(stems["Vocals"], mix)[0] > 60


def test_spectral_inversion_of_an_identity_is_near_silent(identity):
    mix = tones(1.0)
    stems = load_model(make_ctx(identity, TINY_DATA, invert_using_spec=True, **TINY_PARAMS)).separate(mix)
    assert stems["Instrumental"].shape == mix.shape
    residual = np.sum(stems["Instrumental"].astype(np.float64) ** 2) / np.sum(mix.astype(np.float64) ** 2)
    assert residual < 1e-4  # the two chunk schedules (overlap 0.25 and 0.02) differ only at chunk edges


def test_spectral_inversion_of_a_half_mask_is_the_other_half(tmp_path):
    path = write_tiny_onnx(tmp_path / "half.onnx", expression="half")
    mix = tones(1.0, peak=1.2)
    stems = load_model(make_ctx(path, TINY_DATA, invert_using_spec=True, **TINY_PARAMS)).separate(mix)
    db, gain = parity_db(stems["Instrumental"], 0.5 * mix)
    assert db > 30 and abs(gain) < 0.01


def test_three_channels_are_refused(identity):
    model = load_model(make_ctx(identity, TINY_DATA, **TINY_PARAMS))
    with pytest.raises(ValueError, match="3 channels"):
        model.separate(np.zeros((3, 1000), np.float32))


def test_silence_gives_silence(identity):
    stems = load_model(make_ctx(identity, TINY_DATA, **TINY_PARAMS)).separate(np.zeros((2, 5000), np.float32))
    assert all(np.all(v == 0) for v in stems.values())


def test_corrupt_onnx_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelLoadError, match="broken.onnx is not a valid ONNX model.*delete"):
        load_model(make_ctx(bad, TINY_DATA, **TINY_PARAMS))
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(make_ctx(tmp_path / "missing.onnx", TINY_DATA))


def test_missing_or_wrong_hash_parameters_are_clear_errors(identity, tmp_path):
    data = dict(TINY_DATA)
    del data["mdx_dim_f_set"]
    with pytest.raises(ModelDataError, match="mdx_dim_f_set"):
        load_model(make_ctx(identity, data, **TINY_PARAMS))
    narrow = write_tiny_onnx(tmp_path / "narrow.onnx", dim_f=256)
    with pytest.raises(ModelDataError, match="256 frequency bins"):
        load_model(make_ctx(narrow, TINY_DATA, **TINY_PARAMS))
    with pytest.raises(ModelDataError, match="too short"):
        load_model(make_ctx(identity, TINY_DATA, hop_length=256, segment_size=4))


def test_helpers():
    assert secondary_stem_name("Vocals") == "Instrumental"
    assert secondary_stem_name("Instrumental") == "Vocals"
    assert secondary_stem_name("Reverb") == "No Reverb"
    assert secondary_stem_name("No Noise") == "Noise"
    assert gain_factor(1.8, 0.9, 0.0) == pytest.approx(0.5)
    assert gain_factor(0.3, 0.9, 0.6) == pytest.approx(2.0)
    assert gain_factor(0.0, 0.9, 0.6) == 1.0
    assert 1 <= physical_cores() <= (len(__import__("os").sched_getaffinity(0)))


def test_plugin_registers_mdx_and_stays_light():
    from vsep_mdx.plugin import MDXParams, vsep_architectures

    (arch,) = vsep_architectures()
    assert arch.name == "MDX" and arch.flag_prefix == "mdx" and arch.params is MDXParams
    assert ".onnx" in arch.extensions
    code = ("import sys, vsep_mdx.plugin; heavy = {'torch', 'onnxruntime'} & set(sys.modules); "
            "sys.exit(f'heavy imports: {heavy}' if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_loader_through_the_architecture(identity):
    from vsep_mdx.plugin import vsep_architectures

    (arch,) = vsep_architectures()
    model = arch.load(make_ctx(identity, TINY_DATA, **TINY_PARAMS))
    mix = tones(0.3)
    assert parity_db(model.separate(mix)["Vocals"], mix)[0] > 60


def test_io_binding_path_gives_the_plain_result(tmp_path):
    """The I/O-binding call used on CUDA, exercised here with CPU buffers."""
    import torch

    model = load_model(make_ctx(write_tiny_onnx(tmp_path / "sq.onnx", expression="square"), TINY_DATA,
                                **TINY_PARAMS))
    spec = torch.randn(3, 4, 512, 32)
    plain = model.network._run(spec)
    bound = model.network._run_bound(spec)
    assert bound.shape == spec.shape
    torch.testing.assert_close(bound, plain)
    torch.testing.assert_close(bound, spec + 0.5 * spec * spec)


def test_providers_really_created_are_logged(identity, caplog):
    from dataclasses import replace

    from vsep_core.api import Device

    ctx = replace(make_ctx(identity, TINY_DATA, **TINY_PARAMS),
                  device=Device("cpu", ("NoSuchExecutionProvider", "CPUExecutionProvider")))
    with caplog.at_level(logging.INFO, logger="vsep"):
        model = load_model(ctx)
    assert model.onnx_providers == ["CPUExecutionProvider"]
    assert "providers ['CPUExecutionProvider']" in caplog.text
    assert "did not create ['NoSuchExecutionProvider']" in caplog.text
