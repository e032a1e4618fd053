"""BandIt v2: band layout, network shapes, loading, claims and one-line errors, on tiny random-weight models."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch
from bandit_testlib import TINY, make_ctx, random_state, write_model, write_yaml
from vsep_bandit.bands import check_layout, musical_layout
from vsep_bandit.config import claims_file, describes_bandit_v2, load_yaml, network_config
from vsep_bandit.model import build_network, load_model, read_state_dict

from vsep_core.chunking import DemixPlan, demix
from vsep_core.errors import ModelDataError, ModelLoadError
from vsep_core.testlib import (
    assert_channels_independent,
    changed_config,
    one_line_error,
    save_with_code,
    yaml_load_error,
)


@pytest.mark.parametrize(("n_fft", "n_bands"), [(2048, 64), (256, 16), (512, 24)])
def test_musical_layout_covers_every_bin_and_weights_sum_to_one(n_fft: int, n_bands: int) -> None:
    layout = musical_layout(n_fft, n_bands)
    n_freqs = n_fft // 2 + 1
    check_layout(layout, n_freqs)
    total = np.zeros(n_freqs)
    for (start, end), weights in zip(layout.bands, layout.weights, strict=True):
        assert weights.shape == (end - start,)
        total[start:end] += weights
    np.testing.assert_allclose(total, 1.0)
    starts = [s for s, _ in layout.bands]
    assert starts == sorted(starts) and layout.bands[0][0] == 0 and layout.bands[-1][1] == n_freqs


def test_layout_does_not_depend_on_the_sample_rate() -> None:
    assert musical_layout(2048, 64, 44100).bands == musical_layout(2048, 64, 48000).bands


@pytest.mark.parametrize("length", [1, 777, 4800, 13001])
def test_network_output_shape_and_exact_length(length: int) -> None:
    net = build_network(network_config(TINY)).eval()
    with torch.inference_mode():
        out = net(torch.randn(2, 2, max(length, 300)))
    assert out.shape == (2, 3, 2, max(length, 300))
    assert torch.isfinite(out).all()


def test_channels_are_separated_independently() -> None:
    """Each channel is a mono signal: swapping the input channels swaps the output channels."""
    assert_channels_independent(build_network(network_config(TINY)).eval(), 2000, channel_axis=2)


def test_state_dict_names_follow_msst(tiny_model: Path) -> None:
    state = read_state_dict(tiny_model)
    assert "band_split.norm_fc_modules.0.combined.1.weight" in state
    assert "tf_model.seqband.2.rnn.weight_ih_l0_reverse" in state  # ResidualRNNs at even indices
    assert "mask_estim.sfx.norm_mlp.3.combined.2.0.weight" in state
    assert state["mask_estim.speech.freq_weights/0"].dtype == torch.float64


@pytest.mark.parametrize("length", [1000, 4800, 9601, 30000])
def test_separate_returns_every_stem_exactly_as_long_as_the_input(tiny_model: Path, length: int) -> None:
    model = load_model(make_ctx(tiny_model))
    assert model.sample_rate == 48000 and model.stems == ["speech", "music", "sfx"]
    audio = np.random.default_rng(0).standard_normal((2, length)).astype(np.float32) * 0.1
    calls = []
    out = model.separate(audio, lambda done, total: calls.append((done, total)))
    assert list(out) == ["speech", "music", "sfx"]
    for stem in out.values():
        assert stem.shape == (2, length) and stem.dtype == np.float32 and np.isfinite(stem).all()
    assert calls and calls[-1][0] == calls[-1][1]


def test_separate_is_msst_demix_of_the_network(tiny_model: Path) -> None:
    """The model is core's demix (yaml chunk, overlap, batch) around the network: nothing else in between."""
    model = load_model(make_ctx(tiny_model))
    audio = np.random.default_rng(1).standard_normal((2, 15000)).astype(np.float32) * 0.1
    expected = demix(audio, model._run, DemixPlan.generic(4800, 2), 2)
    out = model.separate(audio)
    for i, stem in enumerate(model.stems):
        np.testing.assert_array_equal(out[stem], expected[i])


def test_user_overlap_and_batch_size_override_the_yaml(tiny_model: Path) -> None:
    model = load_model(make_ctx(tiny_model, overlap=4, batch_size=3))
    assert model.plan == DemixPlan.generic(4800, 4) and model.batch_size == 3


def test_normalize_standardises_and_restores(tmp_path: Path) -> None:
    config = changed_config(TINY, **{"inference.normalize": True})
    path = write_model(tmp_path, "norm", config, seed=2)
    plain = write_model(tmp_path, "plain", TINY, state=torch.load(path, weights_only=True))
    audio = (np.random.default_rng(2).standard_normal((2, 6000)) * 0.2 + 0.05).astype(np.float32)
    a = load_model(make_ctx(path)).separate(audio)
    mono = audio.mean(0)
    mean, std = float(mono.mean()), float(mono.std())
    b = load_model(make_ctx(plain)).separate((audio - mean) / std)
    for stem in a:
        np.testing.assert_allclose(a[stem], b[stem] * std + mean, rtol=1e-4, atol=1e-5)


def test_mono_yaml_keeps_one_channel(tmp_path: Path) -> None:
    path = write_model(tmp_path, "mono", changed_config(TINY, **{"audio.num_channels": 1}), seed=3)
    model = load_model(make_ctx(path))
    assert model.settings.channels == 1
    out = model.separate(np.zeros((1, 5000), np.float32))
    assert all(s.shape == (1, 5000) for s in out.values())


def test_lightning_checkpoint_layout_loads(tmp_path: Path) -> None:
    """The authors' Zenodo files: {'state_dict': {'model.*', 'loss_handler.*'}, 'epoch': ...}."""
    state = random_state(TINY, seed=4)
    wrapped = {"epoch": 3, "global_step": 10,
               "state_dict": {**{f"model.{k}": v for k, v in state.items()}, "loss_handler.weight": torch.ones(2)}}
    path = tmp_path / "checkpoint-multi.ckpt"
    torch.save(wrapped, path)
    write_yaml(path.with_suffix(".yaml"), TINY)
    got = read_state_dict(path)
    assert set(got) == set(state)
    torch.testing.assert_close(got["band_split.norm_fc_modules.0.combined.1.weight"],
                               state["band_split.norm_fc_modules.0.combined.1.weight"])
    load_model(make_ctx(path))


def test_checkpoint_holding_code_is_refused_in_one_line(tmp_path: Path) -> None:
    path = save_with_code(tmp_path / "evil.ckpt", random_state(TINY))
    write_yaml(path.with_suffix(".yaml"), TINY)
    message = one_line_error(ModelLoadError, load_model, make_ctx(path))
    assert "was refused, nothing in it ran" in message and "evil.ckpt" in message


def test_ordered_dict_checkpoint_as_msst_saves(tmp_path: Path) -> None:
    path = tmp_path / "od.ckpt"
    torch.save(collections.OrderedDict(random_state(TINY, seed=5)), path)
    write_yaml(path.with_suffix(".yaml"), TINY)
    assert load_model(make_ctx(path)).stems == ["speech", "music", "sfx"]


@pytest.mark.parametrize(("change", "needle", "error"), [
    ({"kwargs.stems": None}, "kwargs.stems", ModelDataError),
    ({"kwargs.in_channels": 2}, "kwargs.in_channels", ModelDataError),
    ({"kwargs.rnn_type": "Mamba"}, "kwargs.rnn_type", ModelDataError),
    ({"kwargs.band_type": "mel"}, "kwargs.band_type", ModelDataError),
    ({"kwargs.flux_capacitor": 3}, "kwargs.flux_capacitor", ModelDataError),
    ({"inference.num_overlap": None}, "inference.num_overlap", ModelDataError),
    ({"audio.chunk_size": None}, "audio.chunk_size", ModelDataError),
    ({"audio.chunk_size": -5}, "audio.chunk_size", ModelDataError),
    ({"audio.num_channels": 6}, "audio.num_channels", ModelDataError),
    ({"training.instruments": ["speech", "music"]}, "training.instruments", ModelDataError),
    ({"training.model_type": "scnet"}, "scnet", ModelDataError),
    ({"kwargs.emb_dim": 12}, "band_split.norm_fc_modules.0.combined.1.weight", ModelLoadError),
    ({"kwargs.n_sqm_modules": 2}, "tf_model.seqband.4", ModelLoadError),
    ({"kwargs.stems": ["speech", "music", "sfx", "crowd"], "training.instruments": None}, "mask_estim.crowd",
     ModelLoadError),
])
def test_bad_yaml_or_mismatched_checkpoint_is_one_line_naming_it(tmp_path: Path, change: dict, needle: str,
                                                                 error: type[Exception]) -> None:
    # a bad yaml key (ModelDataError), or a yaml the checkpoint does not match (ModelLoadError naming a tensor)
    path = write_model(tmp_path, "m", TINY, seed=6)
    assert needle in yaml_load_error(lambda p: load_model(make_ctx(p)), path, changed_config(TINY, **change), error)


def test_explicit_model_type(tiny_model: Path) -> None:
    assert load_model(make_ctx(tiny_model, model_type="bandit_v2")).stems
    with pytest.raises(ModelDataError, match="scnet"):
        load_model(make_ctx(tiny_model, model_type="scnet"))


def test_claims_from_the_yaml_keys(tmp_path: Path, tiny_model: Path) -> None:
    assert claims_file(tiny_model)
    no_cls = write_model(tmp_path, "no_cls", changed_config(TINY, cls=None), seed=8)
    assert claims_file(no_cls)
    roformer = tmp_path / "roformer.ckpt"
    roformer.write_bytes(b"")
    write_yaml(roformer.with_suffix(".yaml"), {"audio": {"chunk_size": 8}, "model": {"dim": 8, "freqs_per_bands": [1]}})
    assert not claims_file(roformer)
    stated = tmp_path / "stated.ckpt"
    stated.write_bytes(b"")
    write_yaml(stated.with_suffix(".yaml"), changed_config(TINY, **{"training.model_type": "bandit"}))
    assert not claims_file(stated)  # says it is the older BandIt: not ours
    lonely = tmp_path / "lonely.ckpt"
    lonely.write_bytes(b"")
    assert not claims_file(lonely)
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"")
    broken.with_suffix(".yaml").write_text("kwargs: [unclosed", encoding="utf-8")
    assert not claims_file(broken)


def test_msst_yaml_with_python_tuple_reads_safely(tiny_model: Path) -> None:
    config = load_yaml(tiny_model.with_suffix(".yaml"))
    assert config["training"]["mixup_probs"] == (0.2, 0.02) and describes_bandit_v2(config)
