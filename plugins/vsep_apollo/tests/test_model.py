"""Apollo: network shapes, loading, claims and one-line errors, on tiny random-weight models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from apollo_testlib import TINY, make_ctx, random_state, write_model, write_yaml
from vsep_apollo.config import claims_file, network_config
from vsep_apollo.model import load_model, read_state_dict
from vsep_apollo.network import Apollo, ApolloConfig, rotary_tables

from vsep_core.chunking import DemixPlan, demix
from vsep_core.errors import ModelDataError, ModelLoadError
from vsep_core.testlib import (
    assert_channels_independent,
    changed_config,
    one_line_error,
    save_with_code,
    yaml_load_error,
)


def test_band_widths_cover_the_spectrum() -> None:
    cfg = ApolloConfig(sr=44100, win=20, feature_dim=256, layer=6)
    assert cfg.win_samples == 882
    widths = cfg.band_widths
    assert len(widths) == 80 and widths[:79] == [5] * 79 and sum(widths) == 882 // 2 + 1


def test_rotary_tables_rotate_pairs() -> None:
    cos, sin = rotary_tables(4, 3)
    assert cos.shape == sin.shape == (3, 4)
    torch.testing.assert_close(cos[0], torch.ones(4))
    torch.testing.assert_close(cos[:, 0], cos[:, 1])  # each frequency serves a pair


@pytest.mark.parametrize("length", [900, 4410, 7001])
def test_network_output_shape_and_exact_length(length: int) -> None:
    net = Apollo(network_config(TINY)).eval()
    with torch.inference_mode():
        out = net(torch.randn(2, 2, length))
    assert out.shape == (2, 2, length) and torch.isfinite(out).all()


def test_channels_are_restored_independently() -> None:
    assert_channels_independent(Apollo(network_config(TINY)).eval(), 3000, channel_axis=1)


def test_state_dict_names_follow_the_published_weights(tiny_model: Path) -> None:
    raw = torch.load(tiny_model, weights_only=True)
    assert set(raw) == {"state_dict"}  # the published pytorch_model.bin shape
    state = read_state_dict(tiny_model)
    for name in ("BN.0.0.weight", "BN.79.1.bias", "net.0.band_net.cos_freq", "net.0.band_net.MLP_output.weight",
                 "net.0.seq_net.blocks.2.conv.4.weight", "output.79.1.weight"):
        assert name in state


@pytest.mark.parametrize("length", [1000, 4410, 13231])
def test_restore_returns_one_output_exactly_as_long_as_the_input(tiny_model: Path, length: int) -> None:
    model = load_model(make_ctx(tiny_model))
    assert model.sample_rate == 44100 and model.stems == ["Restored"]
    audio = np.random.default_rng(0).standard_normal((2, length)).astype(np.float32) * 0.1
    out = model.separate(audio)
    assert list(out) == ["Restored"]
    assert out["Restored"].shape == (2, length) and out["Restored"].dtype == np.float32
    assert np.isfinite(out["Restored"]).all()


def test_restore_is_msst_demix_of_the_network(tiny_model: Path) -> None:
    model = load_model(make_ctx(tiny_model))
    audio = np.random.default_rng(1).standard_normal((2, 12000)).astype(np.float32) * 0.1
    expected = demix(audio, model._run, DemixPlan.generic(4410, 2), 2)
    np.testing.assert_array_equal(model.separate(audio)["Restored"], expected)


def test_plain_state_dict_and_bin_suffix_load(tmp_path: Path) -> None:
    path = write_model(tmp_path, "plain", TINY, seed=2, wrap=False, suffix=".bin")
    assert load_model(make_ctx(path)).stems == ["Restored"]


def test_mono_yaml_keeps_one_channel(tmp_path: Path) -> None:
    path = write_model(tmp_path, "mono", changed_config(TINY, **{"audio.num_channels": 1}), seed=3)
    out = load_model(make_ctx(path)).separate(np.zeros((1, 5000), np.float32))
    assert out["Restored"].shape == (1, 5000)


def test_checkpoint_holding_code_is_refused_in_one_line(tmp_path: Path) -> None:
    path = save_with_code(tmp_path / "evil.bin", random_state(TINY))
    write_yaml(path.with_suffix(".yaml"), TINY)
    message = one_line_error(ModelLoadError, load_model, make_ctx(path))
    assert "was refused, nothing in it ran" in message


@pytest.mark.parametrize(("change", "needle", "error"), [
    ({"model.layer": None}, "model.layer", ModelDataError),
    ({"model.feature_dim": 24}, "model.feature_dim", ModelDataError),
    ({"model.win": 1}, "model.win", ModelDataError),
    ({"model.bottleneck": 3}, "model.bottleneck", ModelDataError),
    ({"inference.num_overlap": None}, "inference.num_overlap", ModelDataError),
    ({"audio.chunk_size": 0}, "audio.chunk_size", ModelDataError),
    ({"training.model_type": "bs_roformer"}, "bs_roformer", ModelDataError),
    ({"model.feature_dim": 32}, "BN.0.1.weight", ModelLoadError),
    ({"model.layer": 2}, "net.1.", ModelLoadError),
    ({"model.win": 40}, "BN.0.0.weight", ModelLoadError),
])
def test_bad_yaml_or_mismatched_checkpoint_is_one_line_naming_it(tmp_path: Path, change: dict, needle: str,
                                                                 error: type[Exception]) -> None:
    # a bad yaml key (ModelDataError), or a yaml the checkpoint does not match (ModelLoadError naming a tensor)
    path = write_model(tmp_path, "m", TINY, seed=4)
    assert needle in yaml_load_error(lambda p: load_model(make_ctx(p)), path, changed_config(TINY, **change), error)


def test_explicit_model_type(tiny_model: Path) -> None:
    assert load_model(make_ctx(tiny_model, model_type="apollo")).stems == ["Restored"]
    with pytest.raises(ModelDataError, match="bandit_v2"):
        load_model(make_ctx(tiny_model, model_type="bandit_v2"))


def test_claims_from_the_yaml_keys(tmp_path: Path, tiny_model: Path) -> None:
    assert claims_file(tiny_model)
    other = tmp_path / "scnet.ckpt"
    other.write_bytes(b"")
    write_yaml(other.with_suffix(".yaml"), {"audio": {"chunk_size": 8}, "model": {"sr": 44100, "dims": [4, 32]}})
    assert not claims_file(other)
    bandit = tmp_path / "bandit.ckpt"
    bandit.write_bytes(b"")
    write_yaml(bandit.with_suffix(".yaml"), {"kwargs": {"stems": ["speech"], "n_sqm_modules": 2}})
    assert not claims_file(bandit)
    lonely = tmp_path / "lonely.bin"
    lonely.write_bytes(b"")
    assert not claims_file(lonely)
