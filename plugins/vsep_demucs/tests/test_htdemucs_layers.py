"""HTDemucs layers run faster ways (scaled_dot_product_attention, convolutions as matrix products): same results."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from vsep_demucs.htdemucs import CrossAttentionLayer, SelfAttentionLayer, _attention


@pytest.mark.parametrize("cross", [False, True])
def test_attention_equals_multihead_attention(cross: bool) -> None:
    """Self (q is kv) and cross (other length) attention, random weights and biases, several heads."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    q = torch.randn(2, 37, 32)
    kv = torch.randn(2, 23, 32) if cross else q
    with torch.inference_mode():
        expected = mha(q, kv, kv, need_weights=False)[0]
        ours = _attention(mha, q, kv)
    assert ours.shape == expected.shape == (2, 37, 32)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_layers_use_it_with_the_checkpoint_names() -> None:
    """The layers keep nn.MultiheadAttention's parameters (checkpoint keys) and give its output."""
    torch.manual_seed(1)
    kw = dict(d_model=16, nhead=2, dim_feedforward=32, activation=torch.nn.functional.gelu, norm_first=True,
              norm_out=True, layer_scale=True)
    self_layer, cross_layer = SelfAttentionLayer(**kw).eval(), CrossAttentionLayer(**kw).eval()
    assert "self_attn.in_proj_weight" in self_layer.state_dict()
    assert "cross_attn.out_proj.weight" in cross_layer.state_dict()
    x, y = torch.randn(1, 9, 16), torch.randn(1, 5, 16)
    with torch.inference_mode():
        got = self_layer._sa(x), cross_layer._ca(x, y)
        want = (self_layer.self_attn(x, x, x, need_weights=False)[0],
                cross_layer.cross_attn(x, y, y, need_weights=False)[0])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch,cin,cout,kernel,dilation,bias", [
    (7, 6, 24, 1, 1, True), (1, 5, 3, 1, 1, False), (7, 16, 4, 3, 1, True), (3, 16, 4, 3, 2, True),
    (2, 8, 8, 3, 4, False), (1, 8, 16, 5, 2, True)])
def test_conv1d_as_matmul_equals_the_convolution(batch: int, cin: int, cout: int, kernel: int, dilation: int,
                                                 bias: bool) -> None:
    """DConv's convolutions as batched matrix products: the same output as nn.Conv1d (float rounding)."""
    from vsep_demucs.htdemucs import conv1d_as_matmul

    torch.manual_seed(kernel * 10 + dilation)
    conv = nn.Conv1d(cin, cout, kernel, dilation=dilation, padding=dilation * (kernel // 2), bias=bias)
    x = torch.randn(batch, cin, 41)
    with torch.inference_mode():
        expected, ours = conv(x), conv1d_as_matmul(conv, x)
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_conv1d_as_matmul_leaves_other_convolutions_alone() -> None:
    """Strided or short inputs run the convolution itself."""
    from vsep_demucs.htdemucs import conv1d_as_matmul

    conv = nn.Conv1d(4, 4, 3, stride=2, padding=1)
    x = torch.randn(2, 4, 20)
    with torch.inference_mode():
        assert torch.equal(conv1d_as_matmul(conv, x), conv(x))
        short = nn.Conv1d(4, 4, 3, dilation=4, padding=4)
        torch.testing.assert_close(conv1d_as_matmul(short, x[..., :3]), short(x[..., :3]))


@pytest.mark.parametrize("batch", [1, 6])
def test_dconv_equals_its_plain_sequential_layers(batch: int) -> None:
    """DConv (convolutions as matrix products, LayerScale + residual in one pass) = x + layer(x) per layer."""
    from vsep_demucs.htdemucs import DConv

    torch.manual_seed(batch)
    dconv = DConv(16, compress=4, depth=2, init=0.5).eval()
    x = torch.randn(batch, 16, 50)
    with torch.inference_mode():
        expected = x
        for layer in dconv.layers:
            expected = expected + layer(expected)
        ours = dconv(x)
    assert (ours - x).abs().max() > 1e-3
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
