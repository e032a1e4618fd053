"""The networks on their own: shapes, checkpoint layouts, strict loading."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from mdxc_testlib import REFERENCE, TINY_BS, TINY_MDX23C, TINY_MEL, build_net, make_ctx, write_model
from vsep_mdxc.model import load_model, load_weights_strict, read_checkpoint
from vsep_mdxc.roformer import RotaryEmbedding, mel_band_membership, roformer_config
from vsep_mdxc.tfc_tdf import TFCTDFConfig, TFCTDFNet

from vsep_core.errors import ModelLoadError


def _run(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return net(x)


@pytest.mark.parametrize("targets", [1, 3])
def test_mdx23c_shapes(targets: int) -> None:
    """One target gives [b, ch, samples]; several give [b, n, ch, samples]; length = the chunk."""
    cfg = copy.deepcopy(TINY_MDX23C)
    if targets == 1:
        cfg["training"]["target_instrument"] = "Vocals"
    else:
        cfg["training"]["instruments"] = ["Vocals", "Drums", "Bass"]
    net = build_net(cfg)
    chunk = 64 * 31
    out = _run(net, torch.randn(2, 2, chunk))
    expected = (2, 2, chunk) if targets == 1 else (2, 3, 2, chunk)
    assert tuple(out.shape) == expected
    assert torch.isfinite(out).all() and out.abs().max() > 0


@pytest.mark.parametrize("norm,act", [("BatchNorm", "relu"), ("GroupNorm2", "elu1.5"), (None, "gelu")])
def test_mdx23c_norm_and_activation_variants(norm: str | None, act: str) -> None:
    """Every `norm`/`act` the reference knows builds, runs, and has the matching parameters."""
    cfg = copy.deepcopy(TINY_MDX23C)
    cfg["model"]["norm"], cfg["model"]["act"] = norm, act
    net = build_net(cfg)
    names = set(net.state_dict())
    key = "encoder_blocks.0.tfc_tdf.blocks.0.tfc1.0.running_mean"
    assert (key in names) == (norm == "BatchNorm")
    assert ("encoder_blocks.0.tfc_tdf.blocks.0.tfc1.0.weight" in names) == (norm is not None)
    out = _run(net, torch.randn(1, 2, 64 * 31))
    assert out.shape == (1, 2, 2, 64 * 31)


def test_mdx23c_instancenorm_runs_as_group_norm_with_the_same_result() -> None:
    """InstanceNorm is built as GroupNorm(c, c) (the faster CPU kernel): same tensors, and the output equals the
    network with torch's InstanceNorm2d(c, affine=True) in its place, to float rounding."""
    net = build_net(copy.deepcopy(TINY_MDX23C)).eval()
    norms = [(name, m) for name, m in net.named_modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.num_groups == m.num_channels for _, m in norms)
    plain = copy.deepcopy(net)
    for name, m in norms:
        parent, _, leaf = name.rpartition(".")
        swapped = torch.nn.InstanceNorm2d(m.num_channels, affine=True)
        swapped.load_state_dict(m.state_dict())
        setattr(plain.get_submodule(parent), leaf, swapped)
    assert set(plain.state_dict()) == set(net.state_dict())
    x = torch.randn(2, 2, 64 * 31)
    ours, theirs = _run(net, x), _run(plain, x)
    assert theirs.abs().max() > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5 * float(theirs.abs().max()))


@pytest.mark.parametrize("norm,act", [("InstanceNorm", "gelu"), ("BatchNorm", "relu"), ("GroupNorm2", "elu1.5"),
                                      (None, "gelu")])
def test_mdx23c_in_place_activations_give_the_plain_result(norm: str | None, act: str) -> None:
    """Without autograd the activations after norms and the residual adds run in place: the same output as the
    plain path (autograd on), and the input is left alone."""
    cfg = copy.deepcopy(TINY_MDX23C)
    cfg["model"]["norm"], cfg["model"]["act"] = norm, act
    net = build_net(cfg).eval()
    x = torch.randn(1, 2, 64 * 31)
    kept = x.clone()
    with torch.no_grad():
        fast = net(x)
    with torch.enable_grad():
        plain = net(x).detach()
    assert torch.equal(x, kept) and plain.abs().max() > 0
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)


def test_mdx23c_convolutions_in_strips_give_the_whole_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Convolutions larger than the cache run in strips of rows (vsep_core.conv_strips): with a cache small
    enough that the tiny network's 3x3, downscaling and transposed convolutions all run in strips, the
    output equals the whole-layer network's."""
    from vsep_core import conv_strips

    net = build_net(copy.deepcopy(TINY_MDX23C)).eval()
    x = torch.randn(1, 2, 64 * 31)
    used: list[str] = []
    for name in ("_conv2d_in_strips", "_transposed_in_strips"):
        original = getattr(conv_strips, name)
        monkeypatch.setattr(conv_strips, name, lambda *a, _o=original, _n=name: used.append(_n) or _o(*a))
    outputs = {}
    for cache in ("0", "16K"):
        monkeypatch.setenv("VSEP_CONV_STRIPS", cache)
        conv_strips.last_level_cache_bytes.cache_clear()
        outputs[cache] = _run(net, x)
    conv_strips.last_level_cache_bytes.cache_clear()
    kinds = {(type(m).__name__, m.kernel_size) for m in net.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.kernel_size != (1, 1)}
    assert ("Conv2d", (3, 3)) in kinds and ("ConvTranspose2d", (2, 2)) in kinds
    assert used.count("_conv2d_in_strips") > 4 and "_transposed_in_strips" in used
    assert outputs["0"].abs().max() > 0
    torch.testing.assert_close(outputs["16K"], outputs["0"], rtol=1e-5, atol=1e-6)


def test_mdx23c_unknown_activation() -> None:
    """An activation name the reference does not know is an error, not a silent default."""
    cfg = copy.deepcopy(TINY_MDX23C)
    cfg["model"]["act"] = "swish"
    with pytest.raises(ValueError, match="swish"):
        TFCTDFNet(TFCTDFConfig.from_yaml(cfg, 2))


@pytest.mark.parametrize("base", [TINY_BS, TINY_MEL], ids=["bs", "mel"])
@pytest.mark.parametrize("stems", [1, 2])
def test_roformer_shapes(base: dict, stems: int) -> None:
    """[b, 2, n] in -> [b, 2, n] (one stem) or [b, stems, 2, n] out, exactly as long as the input."""
    cfg = copy.deepcopy(base)
    cfg["model"]["num_stems"] = stems
    net = build_net(cfg)
    n = 64 * 40 + 17  # not a multiple of the hop
    out = _run(net, torch.randn(3, 2, n))
    assert tuple(out.shape) == ((3, 2, n) if stems == 1 else (3, stems, 2, n))
    assert torch.isfinite(out).all()


def test_roformer_mono_model() -> None:
    """stereo: false builds a one-channel network with half-size band inputs."""
    cfg = copy.deepcopy(TINY_BS)
    cfg["model"]["stereo"] = False
    net = build_net(cfg)
    assert net.state_dict()["band_split.to_features.0.0.gamma"].shape == (16 * 2,)
    assert _run(net, torch.randn(2, 1, 3000)).shape == (2, 1, 3000)


def test_roformer_options_change_layout() -> None:
    """mask_estimator_depth, mlp_expansion_factor and linear_transformer_depth shape the state dict."""
    cfg = copy.deepcopy(TINY_BS)
    cfg["model"].update(mask_estimator_depth=3, mlp_expansion_factor=2, linear_transformer_depth=1)
    sd = build_net(cfg).state_dict()
    # BS: depth 3 -> two hidden layers of width dim * 2
    assert sd["mask_estimators.0.to_freqs.0.0.0.weight"].shape == (16, 8)
    assert sd["mask_estimators.0.to_freqs.0.0.2.weight"].shape == (16, 16)
    assert sd["mask_estimators.0.to_freqs.0.0.4.weight"].shape == (16 * 2 * 2 * 2, 16)
    assert "mask_estimators.0.to_freqs.0.0.6.weight" not in sd
    # the linear-attention transformer comes first in each depth step
    assert sd["layers.0.0.layers.0.0.temperature"].shape == (2, 1, 1)
    assert "layers.0.1.layers.0.0.rotary_embed.freqs" in sd
    assert "final_norm.gamma" in sd
    mel = copy.deepcopy(TINY_MEL)
    mel["model"].update(mask_estimator_depth=1, mlp_expansion_factor=3)
    msd = build_net(mel).state_dict()
    assert msd["mask_estimators.0.to_freqs.0.0.0.weight"].shape == (24, 8)  # Mel: depth hidden layers
    assert "final_norm.gamma" not in msd and "layers.0.0.norm.gamma" in msd


def test_skip_connection_changes_the_output() -> None:
    """skip_connection (MSST) adds earlier depth steps' outputs; with depth 2 the result differs."""
    cfg = copy.deepcopy(TINY_BS)
    cfg["model"]["depth"] = 2
    plain = build_net(cfg, seed=5)
    cfg["model"]["skip_connection"] = True
    skip = build_net(cfg, seed=5)
    skip.load_state_dict(plain.state_dict())
    x = torch.randn(1, 2, 4000)
    a, b = _run(plain, x), _run(skip, x)
    assert a.shape == b.shape
    assert not torch.allclose(a, b)


def test_rotary_is_relative() -> None:
    """Rotations keep norms and make <q_m, k_n> depend on m - n only."""
    rot = RotaryEmbedding(8)
    q = torch.randn(8).expand(6, 8).clone()
    k = torch.randn(8).expand(6, 8).clone()
    with torch.inference_mode():
        rq, rk = rot.rotate(q[None]), rot.rotate(k[None])
    assert torch.allclose(rq.norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    dots = (rq[0][:, None, :] * rk[0][None, :, :]).sum(-1)
    assert torch.allclose(dots[1, 0], dots[5, 4], atol=1e-5)
    assert torch.allclose(dots[0, 2], dots[3, 5], atol=1e-5)
    assert not torch.allclose(dots[0, 0], dots[0, 3])


def test_mel_band_membership_matches_the_oracle_checkpoint() -> None:
    """The Mel bands of the oracle's yaml give exactly the band input sizes of its checkpoint."""
    ckpt = REFERENCE / "models" / "model_mel_band_roformer_ep_3005_sdr_11.4360.ckpt"
    assert ckpt.is_file(), f"oracle checkpoint {ckpt} not found (CI has the oracles)"
    member = mel_band_membership(44100, 2048, 60)
    assert member.any(axis=0).all()
    sd = torch.load(ckpt, weights_only=True)
    sizes = [sd[f"band_split.to_features.{b}.0.gamma"].shape[0] for b in range(60)]
    assert sizes == [int(n) * 2 * 2 for n in member.sum(axis=1)]


def test_bs_freqs_must_cover_the_spectrum() -> None:
    """freqs_per_bands summing to the wrong bin count is a clear error."""
    cfg = copy.deepcopy(TINY_BS)
    cfg["model"]["freqs_per_bands"] = (16, 16, 32, 64)
    with pytest.raises(ValueError, match="129"):
        build_net(cfg)


def test_strict_load_names_the_mismatching_tensor(tmp_path: Path) -> None:
    """A checkpoint of another size fails with the first mismatching tensor's name."""
    other = copy.deepcopy(TINY_BS)
    other["model"]["dim"] = 12
    ckpt, _ = write_model(tmp_path, other, "bs_roformer_dim12")
    _, yml = write_model(tmp_path, TINY_BS, "bs_roformer_dim8")
    with pytest.raises(ModelLoadError, match=r"'layers\.0\.0\.layers\.0\.0\.norm\.gamma' has shape \(12,\)"):
        load_model(make_ctx(ckpt, yml))


def test_strict_load_missing_and_extra_tensors() -> None:
    """Missing and unexpected tensors are both refused, each by name."""
    net = build_net(TINY_BS)
    state = net.state_dict()
    missing = {k: v for k, v in state.items() if k != "final_norm.gamma"}
    with pytest.raises(ModelLoadError, match="'final_norm.gamma'.*missing"):
        load_weights_strict(build_net(TINY_BS), missing, "x.ckpt")
    extra = dict(state, **{"mask_estimators.1.to_freqs.0.0.0.weight": torch.zeros(2)})
    with pytest.raises(ModelLoadError, match=r"'mask_estimators\.1\.to_freqs\.0\.0\.0\.weight'.*lacks"):
        load_weights_strict(build_net(TINY_BS), extra, "x.ckpt")
    # rotary frequencies are a constant: a file without them still loads, with the computed values
    no_rotary = {k: v for k, v in state.items() if not k.endswith("rotary_embed.freqs")}
    target = build_net(TINY_BS, seed=9)
    load_weights_strict(target, no_rotary, "x.ckpt")
    assert torch.equal(target.state_dict()["final_norm.gamma"], state["final_norm.gamma"])


def test_read_checkpoint_layouts(tmp_path: Path) -> None:
    """Plain, nested ('state_dict', 'model') and DataParallel-prefixed checkpoints all read the same."""
    state = build_net(TINY_MEL).state_dict()
    layouts = {
        "plain": state,
        "lightning": {"state_dict": state, "epoch": 3},
        "model": {"model": state},
        "prefixed": {f"module.{k}": v for k, v in state.items()},
    }
    for name, obj in layouts.items():
        path = tmp_path / f"{name}.ckpt"
        torch.save(obj, path)
        got = read_checkpoint(path)
        assert list(got) == list(state), name
        assert all(torch.equal(got[k], state[k]) for k in state)


def test_read_checkpoint_refuses_code(tmp_path: Path) -> None:
    """A pickle that would construct arbitrary objects is refused (weights_only)."""
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as fh:
        pickle.dump({"w": np.random.default_rng(0)}, fh, protocol=2)
    with pytest.raises(ModelLoadError, match="was refused, nothing in it ran; delete"):
        read_checkpoint(path)


def test_roformer_config_aliases_and_defaults() -> None:
    """Community alias names are understood; num_stems/num_bands fall back to the checkpoint's counts."""
    cfg = roformer_config({"dim": 8, "depth": 1, "n_heads": 2, "head_dim": 4, "n_mels": 16, "n_fft": 256}, "mel",
                          num_stems=3)
    assert (cfg.heads, cfg.dim_head, cfg.num_bands, cfg.stft_n_fft, cfg.num_stems) == (2, 4, 16, 256, 3)
    assert cfg.mask_estimator_depth == 1  # Mel default
    bs = roformer_config({"dim": 8, "depth": 1, "freqs_per_bands": [1, 2]}, "bs")
    assert bs.mask_estimator_depth == 2 and bs.num_stems == 1 and bs.freqs_per_bands == (1, 2)
    with pytest.raises(ValueError, match="freqs_per_bands"):
        roformer_config({"dim": 8, "depth": 1}, "bs")


def test_read_checkpoint_with_metadata_beside_tensors(tmp_path: Path) -> None:
    """A dict of tensors plus a few metadata entries keeps the tensors; one without tensors is refused."""
    state = build_net(TINY_BS).state_dict()
    path = tmp_path / "meta.ckpt"
    torch.save({**state, "epoch": 7, "note": "x"}, path)
    assert list(read_checkpoint(path)) == list(state)
    torch.save({"epoch": 7}, path)
    with pytest.raises(ModelLoadError, match="no state dict"):
        read_checkpoint(path)


def test_rotary_complex_form_equals_the_half_rotation() -> None:
    """The complex-multiply rotation (CPU/CUDA) gives the half-rotation's numbers (MPS's form), along
    any sequence axis and on strided views such as q and k inside a fused qkv projection."""
    rot = RotaryEmbedding(16)
    qkv = torch.randn(2, 11, 3, 4, 16)  # [b, n, (q k v), h, d]
    with torch.inference_mode():
        fast = rot.rotate(qkv[:, :, :2], seq_dim=1)
        for j in range(2):
            per_head = qkv[:, :, j].transpose(1, 2)  # [b, h, n, d]
            slow = rot._rotate_half(per_head)
            torch.testing.assert_close(fast[:, :, j].transpose(1, 2), slow, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(rot.rotate(per_head), slow, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(fast[:, 1:], qkv[:, 1:, :2])  # positions > 0 really rotate


def test_transformer_groups_of_sequences_give_the_whole_batch_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running the sequences in token-bounded groups (memory) gives the one-batch result."""
    from vsep_mdxc.roformer import Transformer

    torch.manual_seed(0)
    tf = Transformer(dim=16, depth=2, heads=2, dim_head=8, norm_output=True, rotary_embed=RotaryEmbedding(8)).eval()
    x = torch.randn(7, 5, 16)
    with torch.inference_mode():
        whole = tf(x)
        monkeypatch.setattr(Transformer, "max_elements", 10 * 16)  # 10 tokens of dim 16: groups of 2 sequences
        calls: list[int] = []
        monkeypatch.setattr(tf, "_stack", lambda part, f=tf._stack: calls.append(part.shape[0]) or f(part))
        grouped = tf(x)
    assert calls == [2, 2, 2, 1]
    torch.testing.assert_close(grouped, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("base", [TINY_BS, TINY_MEL], ids=["bs", "mel"])
@pytest.mark.parametrize(("options", "max_tokens"), [
    ({}, 4096),  # every sequence of an axis in one group
    ({}, 1),  # one band / one frame per group: the time groups are views of the activations themselves
    ({"depth": 2, "skip_connection": True}, 3),
    ({"linear_transformer_depth": 1}, 5),
], ids=["one-group", "one-sequence-groups", "skip-connection", "linear-attention"])
def test_inference_runs_the_axial_stack_in_place_with_the_training_result(
        base: dict, options: dict, max_tokens: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inference (groups of sequences updated in place, residual adds in place, norms fused) gives what the
    autograd path (new tensors everywhere) gives, for several items, group sizes and layouts."""
    from vsep_mdxc.roformer import Transformer

    cfg = copy.deepcopy(base)
    cfg["model"].update(options)
    net = build_net(cfg, seed=3).eval()
    monkeypatch.setattr(Transformer, "max_elements", max_tokens * cfg["model"]["dim"])
    x = torch.randn(2, 2, 3000)
    with torch.enable_grad():
        reference = net(x).detach()
    inplace = _run(net, x)
    torch.testing.assert_close(inplace, reference, rtol=1e-5, atol=1e-6)
    assert reference.abs().max() > 0


@pytest.mark.parametrize("base", [TINY_BS, TINY_MEL], ids=["bs", "mel"])
def test_half_matmuls_folds_the_norm_gains_and_stays_close_to_fp32(base: dict) -> None:
    """bf16 matrices with the RMSNorm gains folded into them: the same network to bf16 accuracy, and the
    folded norms hold gains of one (the product would otherwise apply them twice)."""
    from vsep_mdxc.roformer import Attention, FeedForward, half_matmuls

    net = build_net(copy.deepcopy(base), seed=4).eval()
    x = torch.randn(1, 2, 4000)
    fp32 = _run(net, x)
    assert half_matmuls(net, torch.bfloat16) > 0
    attention = next(m for m in net.modules() if isinstance(m, Attention))
    feed_forward = next(m for m in net.modules() if isinstance(m, FeedForward))
    assert attention.norm_folded and feed_forward.norm_folded
    assert torch.equal(attention.norm.gamma, torch.ones_like(attention.norm.gamma))
    assert attention.to_qkv.weight.dtype == torch.bfloat16 and attention.to_gates.weight.dtype == torch.float32
    half = _run(net, x)
    error = (half - fp32).pow(2).sum() / fp32.pow(2).sum()
    assert 10 * torch.log10(1 / error) > 30  # dB; bf16 keeps ~8 bits per product
    assert not torch.equal(half, fp32)


@pytest.mark.parametrize("base", [TINY_BS, TINY_MEL], ids=["bs", "mel"])
def test_onednn_transformer_linears_give_the_blas_result(base: dict, monkeypatch: pytest.MonkeyPatch,
                                                        request: pytest.FixtureRequest) -> None:
    """The transformers' linear layers in oneDNN (forced here; the loader measures which is faster): the same
    separation to float32 rounding; band split and mask estimators keep nn.Linear."""
    from torch import nn
    from vsep_mdxc.roformer import Attention, FeedForward, onednn_transformer_linears

    from vsep_core import matmul

    monkeypatch.setenv("VSEP_ONEDNN_LINEAR", "1")
    matmul.onednn_linear_is_faster.cache_clear()
    request.addfinalizer(matmul.onednn_linear_is_faster.cache_clear)  # the next test measures afresh
    net = build_net(copy.deepcopy(base), seed=5).eval()
    x = torch.randn(1, 2, 4000)
    blas = _run(net, x)
    changed = onednn_transformer_linears(net)
    inside = {id(m) for t in net.modules() if isinstance(t, (Attention, FeedForward)) for m in t.modules()}
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert changed == sum(id(m) in inside for m in linears) > 0
    assert all(isinstance(m, matmul.OneDNNLinear) == (id(m) in inside) for m in linears)
    onednn = _run(net, x)
    torch.testing.assert_close(onednn, blas, rtol=1e-4, atol=1e-5)
    assert blas.abs().max() > 0
