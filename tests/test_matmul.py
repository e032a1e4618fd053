"""float32 linear layers in oneDNN: same results as nn.Linear, the choice per CPU and its override."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vsep_core import matmul

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


@pytest.fixture
def forced(monkeypatch):
    """Set VSEP_ONEDNN_LINEAR and forget the cached choice, before and after."""
    def force(value: str) -> None:
        monkeypatch.setenv("VSEP_ONEDNN_LINEAR", value)
        matmul.onednn_linear_is_faster.cache_clear()
    yield force
    matmul.onednn_linear_is_faster.cache_clear()


@pytest.mark.parametrize("shape", [(7, 48), (3, 11, 48), (2, 5, 9, 48)])
@pytest.mark.parametrize("bias", [True, False])
def test_onednn_linear_is_nn_linear(shape, bias):
    torch.manual_seed(0)
    plain = nn.Linear(48, 80, bias=bias)
    fast = nn.Linear(48, 80, bias=bias)
    fast.load_state_dict(plain.state_dict())
    fast.__class__ = matmul.OneDNNLinear
    x = torch.randn(*shape)
    strided = torch.randn(*shape[:-1], 96)[..., ::2]  # a non-contiguous input
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fast(strided), plain(strided), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(matmul.linear_gelu_(fast, x), F.gelu(plain(x)), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(matmul.linear_gelu_(plain, x, "tanh"), F.gelu(plain(x), approximate="tanh"))
    out = fast(x.requires_grad_())  # autograd takes nn.Linear's path: gradients reach the weights
    out.sum().backward()
    assert fast.weight.grad is not None and fast.weight.grad.abs().sum() > 0


def test_use_onednn_linears_follows_the_choice(forced):
    net = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4), nn.Conv1d(2, 2, 1))
    net[2].to(torch.bfloat16)  # a half-precision matrix stays nn.Linear
    keys = list(net.state_dict())
    forced("0")
    assert matmul.use_onednn_linears(net) == 0 and type(net[0]) is nn.Linear
    forced("1")
    assert matmul.use_onednn_linears(net) == 1
    assert type(net[0]) is matmul.OneDNNLinear and type(net[2]) is nn.Linear
    assert list(net.state_dict()) == keys  # checkpoints load as before


def test_the_choice_is_measured_once_per_process(forced, monkeypatch):
    forced("")
    calls = []
    real = matmul._onednn_linear
    monkeypatch.setattr(matmul, "_onednn_linear", lambda *a: calls.append(1) or real(*a))
    first = matmul.onednn_linear_is_faster()
    assert isinstance(first, bool) and len(calls) == 4  # a warm-up and three timed products
    assert matmul.onednn_linear_is_faster() is first and len(calls) == 4


def test_flop_counting_sees_the_products():
    """Under a FLOP counter (and fake tensors) the layer is aten's linear: `vsep advise` and benchmarks count it."""
    from torch.utils.flop_counter import FlopCounterMode

    layer = nn.Linear(32, 64)
    layer.__class__ = matmul.OneDNNLinear
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        matmul.linear_gelu_(layer, layer(torch.randn(10, 32)).narrow(-1, 0, 32))
    assert counter.get_total_flops() == 2 * (2 * 10 * 32 * 64)
