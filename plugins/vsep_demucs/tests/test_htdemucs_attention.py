"""HTDemucs's transformer attention runs through scaled_dot_product_attention: equal to nn.MultiheadAttention."""

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
