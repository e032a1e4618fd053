"""Separation with tiny random-weight models: lengths, channels, chunking, batching, pitch shift, stems."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from mdxc_testlib import SR, TINY_BS, TINY_MDX23C, parity_db, tones, write_model
from vsep_mdxc.model import MDXCModel, load_model, pitch_resample
from vsep_mdxc.plugin import MDXCParams

from vsep_core.api import SeparationModel
from vsep_core.errors import ModelDataError, ModelLoadError, UsageError

KINDS = ["mdx23c", "bs", "mel"]


def _recorder(calls: list[tuple[int, int]]) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        calls.append((done, total))

    return progress


def _load(models: dict, kind: str, **params: object) -> MDXCModel:
    from mdxc_testlib import make_ctx

    ckpt, yml = models[kind]
    return load_model(make_ctx(ckpt, yml, **params))


@pytest.mark.parametrize("kind", KINDS)
def test_stems_are_as_long_as_the_input(tiny_models: dict, kind: str) -> None:
    """Odd lengths, several chunks: every stem has the input's shape, float32, finite, in `stems` order."""
    model = _load(tiny_models, kind)
    assert isinstance(model, SeparationModel)
    assert model.sample_rate == SR
    audio = tones(0.37)[:, :16_313]
    out = model.separate(audio)
    assert list(out) == model.stems == ["Instrumental", "Vocals"]
    for stem in out.values():
        assert stem.shape == audio.shape and stem.dtype == np.float32
        assert np.isfinite(stem).all() and np.abs(stem).max() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_clip_shorter_than_one_chunk(tiny_models: dict, kind: str) -> None:
    """An input shorter than one chunk is one (padded) chunk; the target covers its whole length."""
    model = _load(tiny_models, kind, segment_size=64)
    audio = tones(0.05)  # 2205 samples; chunks are 1984 (MDX23C) / 4032 (RoFormers) samples at dim_t 32/64
    out = model.separate(audio)
    assert all(s.shape == audio.shape for s in out.values())
    assert np.abs(out["Vocals"][:, -32:]).max() > 0  # no silent tail (the reference leaves up to a hop at 0)
    tiny = tones(0.002)  # 88 samples: shorter than half the STFT (128), zero-padded for the reflect padding
    assert all(s.shape == tiny.shape and np.isfinite(s).all() for s in model.separate(tiny).values())


@pytest.mark.parametrize("kind", KINDS)
def test_mono_input(tiny_models: dict, kind: str) -> None:
    """A mono input runs through the stereo model as two equal channels and comes back mono."""
    model = _load(tiny_models, kind)
    mono = tones(0.2, channels=1)
    out = model.separate(mono)
    stereo = model.separate(np.repeat(mono, 2, axis=0))
    for name, stem in out.items():
        assert stem.shape == mono.shape
        np.testing.assert_allclose(stem[0], stereo[name].mean(axis=0), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_size_does_not_change_the_result(tiny_models: dict, kind: str) -> None:
    """batch_size 2 (and 3, leaving a short last batch) gives what batch_size 1 gives."""
    audio = tones(0.4, seed=3)
    ref = _load(tiny_models, kind, batch_size=1).separate(audio)
    for batch in (2, 3):
        got = _load(tiny_models, kind, batch_size=batch).separate(audio)
        for name in ref:
            np.testing.assert_allclose(got[name], ref[name], atol=2e-6, rtol=0)


@pytest.mark.parametrize("kind", ["mdx23c", "bs"])
def test_overlap_changes_the_chunking(tiny_models: dict, kind: str) -> None:
    """More overlap means more windows (progress totals) and a different but close result."""
    audio = tones(0.5, seed=4)
    totals: dict[int, int] = {}
    outs = {}
    for overlap in (1, 4):
        calls: list[tuple[int, int]] = []
        outs[overlap] = _load(tiny_models, kind, overlap=overlap).separate(audio, _recorder(calls))
        assert calls[-1][0] == calls[-1][1]
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)
        totals[overlap] = calls[-1][1]
    assert totals[4] > 3 * totals[1] - 4
    assert not np.allclose(outs[1]["Vocals"], outs[4]["Vocals"])


def test_target_model_residual_adds_up(tiny_models: dict) -> None:
    """For a target model the secondary stem is mix - target: the stems sum to the input (peak < 0.9)."""
    model = _load(tiny_models, "bs")
    audio = tones(0.3, peak=0.2)
    out = model.separate(audio)
    assert max(np.abs(s).max() for s in out.values()) < 0.9  # no per-stem normalisation kicked in
    np.testing.assert_allclose(out["Vocals"] + out["Instrumental"], audio, atol=1e-6)


def test_loud_input_is_normalised_first(tiny_models: dict) -> None:
    """The model asks core to scale an input peaking above the threshold to it (keeping the stems at that
    level): through core, a loud input gives the stems of the input scaled to 0.9."""
    from vsep_core.testing import separate_as_core

    model = _load(tiny_models, "bs")
    assert model.input_peak_normalization == "keep_level"
    quiet = tones(0.3, peak=0.45)
    loud = quiet * 4.0  # peak 1.8 -> normalised to 0.9 = 2 x quiet
    out_loud = separate_as_core(model, loud)
    out_quiet = separate_as_core(model, quiet * 2.0)
    for name in out_loud:
        assert parity_db(out_loud[name], out_quiet[name]) > 100
    first = next(iter(out_quiet))  # a mix already at the threshold is what the model itself sees
    assert parity_db(model.separate(quiet * 2.0)[first], out_quiet[first]) > 100


def test_pitch_shift(tiny_models: dict) -> None:
    """pitch_shift 0 is the plain path; +2 runs, keeps lengths, and changes the result; resampling round-trips."""
    audio = tones(0.4, seed=6)
    plain = _load(tiny_models, "mel").separate(audio)
    zero = _load(tiny_models, "mel", pitch_shift=0).separate(audio)
    shifted = _load(tiny_models, "mel", pitch_shift=2).separate(audio)
    for name in plain:
        np.testing.assert_array_equal(zero[name], plain[name])
        assert shifted[name].shape == audio.shape and np.isfinite(shifted[name]).all()
        assert parity_db(shifted[name], plain[name]) < 60
    rate = SR * 2 ** (-3 / 12)
    there = pitch_resample(audio, SR, rate)
    assert abs(there.shape[1] - audio.shape[1] * rate / SR) <= 2
    back = pitch_resample(there, rate, SR)[:, : audio.shape[1]]
    core = slice(2000, audio.shape[1] - 2000)
    assert parity_db(back[:, core], audio[:, core]) > 25  # the 0.1-amplitude noise above the new Nyquist is lost


def test_short_clip_rule_and_override(tiny_models: dict) -> None:
    """< 10 s uses segment_size; >= 10 s uses the yaml dim_t unless override_model_segment_size."""
    def windows(model: MDXCModel, audio: np.ndarray) -> int:
        calls: list[tuple[int, int]] = []
        model.separate(audio, _recorder(calls))
        return calls[-1][1]

    long = tones(10.05, channels=2, seed=7)
    short = long[:, : 4 * SR]
    yaml_dim_t = _load(tiny_models, "mdx23c", segment_size=64, overlap=1, batch_size=64)  # yaml dim_t 32
    override = _load(tiny_models, "mdx23c", segment_size=64, overlap=1, batch_size=64,
                     override_model_segment_size=True)
    n_long_yaml = windows(yaml_dim_t, long)
    assert n_long_yaml > 1.8 * windows(override, long)  # chunks of 31 vs 63 hops
    assert windows(yaml_dim_t, short) == windows(override, short)


def test_invalid_settings(tiny_models: dict) -> None:
    """Overlap larger than a chunk, an MDX23C segment the U-Net cannot halve, and too many channels fail clearly."""
    with pytest.raises(UsageError, match="overlap"):
        _load(tiny_models, "bs", overlap=300, segment_size=4).separate(tones(0.1))
    with pytest.raises(UsageError, match="segment"):
        _load(tiny_models, "bs", segment_size=2).separate(tones(0.1))
    with pytest.raises(UsageError, match="multiple of 4"):
        _load(tiny_models, "mdx23c", segment_size=30).separate(tones(0.1))
    with pytest.raises(UsageError, match="2-channel"):
        _load(tiny_models, "bs").separate(np.zeros((3, 1000), dtype=np.float32))


def test_yaml_from_model_data_or_beside_the_checkpoint(tiny_models: dict, tmp_path: Path) -> None:
    """Parsed yaml in ctx.model_data is used; without it config_path, then <ckpt>.yaml, is read."""
    from mdxc_testlib import make_ctx

    ckpt, yml = tiny_models["bs"]
    audio = tones(0.1)
    via_path = load_model(make_ctx(ckpt, yml)).separate(audio)
    via_data = load_model(make_ctx(ckpt, None, model_data=copy.deepcopy(TINY_BS))).separate(audio)
    beside = load_model(make_ctx(ckpt, None)).separate(audio)  # tiny_bs_roformer.yaml sits beside it
    for name in via_path:
        np.testing.assert_array_equal(via_path[name], via_data[name])
        np.testing.assert_array_equal(via_path[name], beside[name])
    lonely = tmp_path / "lonely.ckpt"
    lonely.write_bytes(ckpt.read_bytes())
    with pytest.raises(ModelDataError, match="yaml"):
        load_model(make_ctx(lonely, None))


def test_unsupported_yaml_is_a_load_error(tmp_path: Path) -> None:
    """A yaml of another MSST network (SCNet) is refused with the reason."""
    cfg = copy.deepcopy(TINY_MDX23C)
    cfg["model"] = {"audio_channels": 2, "nfft": 4096, "hop_size": 1024}
    ckpt, yml = write_model(tmp_path, TINY_MDX23C, "scnet_like")
    yml.write_text(yml.read_text().replace("model:", "model_unused:") + "model:\n  nfft: 4096\n")
    from mdxc_testlib import make_ctx

    with pytest.raises(ModelLoadError, match="not supported"):
        load_model(make_ctx(ckpt, yml))


def test_multi_stem_roformer_order(tmp_path: Path) -> None:
    """A 4-stem RoFormer without target returns the instruments in yaml order."""
    cfg = copy.deepcopy(TINY_BS)
    cfg["model"]["num_stems"] = 4
    cfg["training"] = {"instruments": ["Drums", "Bass", "Other", "Vocals"], "target_instrument": None}
    ckpt, yml = write_model(tmp_path, cfg, "bs_roformer_4stem")
    from mdxc_testlib import make_ctx

    model = load_model(make_ctx(ckpt, yml))
    out = model.separate(tones(0.2))
    assert list(out) == ["Drums", "Bass", "Other", "Vocals"]
    assert not np.allclose(out["Drums"], out["Bass"])


def test_params_defaults_follow_the_yaml(tiny_models: dict) -> None:
    """overlap/batch_size None -> yaml inference.num_overlap/batch_size."""
    model = _load(tiny_models, "mdx23c")
    assert (model.settings.overlap, model.settings.batch_size) == (4, 1)
    model = _load(tiny_models, "mdx23c", overlap=2, batch_size=5)
    assert (model.settings.overlap, model.settings.batch_size) == (2, 5)
    assert MDXCParams().overlap is None


def test_mono_model_runs_each_channel_on_its_own(tmp_path: Path) -> None:
    """A `stereo: false` model separates a stereo input channel by channel."""
    from mdxc_testlib import make_ctx

    cfg = copy.deepcopy(TINY_BS)
    cfg["model"]["stereo"] = False
    ckpt, yml = write_model(tmp_path, cfg, "mono_bs_roformer")
    model = load_model(make_ctx(ckpt, yml))
    audio = tones(0.2, peak=0.05)
    out = model.separate(audio)
    right = model.separate(audio[1:])
    assert out["Vocals"].shape == audio.shape
    np.testing.assert_allclose(out["Vocals"][1], right["Vocals"][0], atol=1e-6)
    assert not np.allclose(out["Vocals"][0], out["Vocals"][1])


@pytest.mark.parametrize("kind", ["bs", "mel"])
def test_roformer_bf16_keeps_the_sensitive_parts_in_fp32(tiny_models: dict, kind: str) -> None:
    """precision bf16: the transformers' matrices are held in bf16 (everything else fp32) and the stems stay
    within 40 dB of fp32's without being fp32's (bf16 really ran)."""
    import dataclasses

    import torch
    from mdxc_testlib import make_ctx
    from vsep_mdxc.roformer import Attention, FeedForward

    ckpt, yml = tiny_models[kind]
    audio = tones(0.3)
    fp32 = load_model(make_ctx(ckpt, yml)).separate(audio)
    model = load_model(dataclasses.replace(make_ctx(ckpt, yml), precision="bf16"))
    half = {name for name, p in model.net.named_parameters() if p.dtype == torch.bfloat16}
    assert half
    for name, module in model.net.named_modules():
        if isinstance(module, Attention):
            assert {f"{name}.to_qkv.weight", f"{name}.to_out.0.weight"} <= half
            assert f"{name}.norm.gamma" not in half and f"{name}.to_gates.weight" not in half
        if isinstance(module, FeedForward):
            assert {f"{name}.net.1.weight", f"{name}.net.4.bias"} <= half
    assert not any(n.startswith(("mask_estimators.", "band_split.")) or "rotary" in n for n in half)
    out = model.separate(audio)
    for stem in fp32:
        assert out[stem].dtype == np.float32
        assert 40 <= parity_db(out[stem], fp32[stem]) < 100


def test_mdx23c_half_precision_is_autocast(tiny_models: dict) -> None:
    """MDX23C in bf16 runs under bf16 autocast (weights stay fp32): close to fp32, not identical."""
    import dataclasses

    import torch
    from mdxc_testlib import make_ctx

    ckpt, yml = tiny_models["mdx23c"]
    audio = tones(0.3)
    fp32 = load_model(make_ctx(ckpt, yml)).separate(audio)
    model = load_model(dataclasses.replace(make_ctx(ckpt, yml), precision="bf16"))
    assert all(p.dtype == torch.float32 for p in model.net.parameters())
    out = model.separate(audio)
    for stem in fp32:
        assert 25 <= parity_db(out[stem], fp32[stem]) < 100


@pytest.mark.slow
def test_use_torch_compile_gives_the_eager_result(tiny_models: dict) -> None:
    """--use_torch_compile runs the network through torch.compile (inductor) with the eager result."""
    import dataclasses

    import torch
    from mdxc_testlib import make_ctx

    ckpt, yml = tiny_models["bs"]
    audio = tones(0.2)
    eager = load_model(make_ctx(ckpt, yml)).separate(audio)
    model = load_model(dataclasses.replace(make_ctx(ckpt, yml), use_torch_compile=True))
    assert isinstance(model.net, torch._dynamo.eval_frame.OptimizedModule)
    compiled = model.separate(audio)
    for stem in eager:
        assert parity_db(compiled[stem], eager[stem]) > 80
