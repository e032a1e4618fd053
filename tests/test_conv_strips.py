"""Convolutions in cache-sized strips (vsep_core.conv_strips): the same result as the whole-tensor convolution."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vsep_core import conv_strips
from vsep_core.conv_strips import _strip_plan, conv_in_strips, last_level_cache_bytes
from vsep_core.envinfo import cpu_cache_bytes, parse_byte_size
from vsep_core.errors import UsageError

SMALL_CACHE = 64 * 1024  # bytes: makes strips of a few rows out of test-sized tensors


def _layer(cls: type, *args: object, seed: int = 0, **kwargs: object) -> nn.Module:
    torch.manual_seed(seed)
    return cls(*args, **kwargs).eval()


CONVS = [
    pytest.param(lambda: _layer(nn.Conv2d, 6, 8, 3, 1, 1, bias=False), (1, 6, 67, 40), id="3x3-pad1"),
    pytest.param(lambda: _layer(nn.Conv2d, 6, 8, 3, 1, 1), (2, 6, 50, 33), id="3x3-bias-batch2"),
    pytest.param(lambda: _layer(nn.Conv2d, 6, 10, 2, 2, 0, bias=False), (1, 6, 66, 40), id="down-2x2-stride2"),
    pytest.param(lambda: _layer(nn.Conv2d, 6, 8, 3, 1, 2, dilation=2), (1, 6, 61, 30), id="dilated"),
    pytest.param(lambda: _layer(nn.Conv2d, 6, 8, (5, 3), (2, 1), (1, 1)), (1, 6, 71, 30), id="5x3-stride2-pad1"),
    pytest.param(lambda: _layer(nn.Conv2d, 6, 8, 3, 1, 1, groups=2), (1, 6, 60, 30), id="groups"),
    pytest.param(lambda: _layer(nn.ConvTranspose2d, 8, 6, 2, 2, bias=False), (1, 8, 33, 40), id="transposed-2x2"),
    pytest.param(lambda: _layer(nn.ConvTranspose2d, 8, 6, (2, 3), (2, 1), padding=(0, 1)), (2, 8, 31, 20),
                 id="transposed-bias-batch2"),
]


@pytest.mark.parametrize(("make", "shape"), CONVS)
def test_strips_equal_the_whole_convolution(make, shape) -> None:
    conv = make()
    x = torch.randn(shape)
    with torch.inference_mode():
        rows = _strip_plan(conv, x, SMALL_CACHE)
        assert 2 <= rows < conv(x).shape[2]  # the case really runs in several strips, the last one shorter or not
        whole = conv(x)
        stripped = conv_in_strips(conv, x, SMALL_CACHE)
    assert stripped.shape == whole.shape
    torch.testing.assert_close(stripped, whole, rtol=1e-5, atol=1e-6)


def test_bfloat16_strips_equal_the_whole_convolution() -> None:
    conv = _layer(nn.Conv2d, 6, 8, 3, 1, 1).to(torch.bfloat16)
    x = torch.randn(1, 6, 90, 40, dtype=torch.bfloat16)
    with torch.inference_mode():
        assert _strip_plan(conv, x, SMALL_CACHE) > 0
        torch.testing.assert_close(conv_in_strips(conv, x, SMALL_CACHE), conv(x), rtol=1e-2, atol=1e-2)


def test_layers_that_fit_the_cache_or_cannot_be_cut_run_whole() -> None:
    x = torch.randn(1, 8, 64, 40)
    with torch.inference_mode():
        assert _strip_plan(_layer(nn.Conv2d, 8, 8, 3, 1, 1), x, 1 << 30) == 0  # fits
        assert _strip_plan(_layer(nn.Conv2d, 8, 8, 3, 1, 1, padding_mode="reflect"), x, SMALL_CACHE) == 0
        assert _strip_plan(_layer(nn.Conv2d, 8, 8, 3, 1, "same"), x, SMALL_CACHE) == 0
        assert _strip_plan(_layer(nn.ConvTranspose2d, 8, 8, 4, 2, 1), x, SMALL_CACHE) == 0  # overlapping rows
        assert _strip_plan(_layer(nn.Conv2d, 8, 8, 3, 1, 1), x.transpose(2, 3), SMALL_CACHE) == 0  # not contiguous
        assert _strip_plan(_layer(nn.Conv2d, 8, 8, 3, 1, 1), x, 0) == 0  # unknown cache
        heavy = _layer(nn.Conv2d, 512, 512, 3, 1, 1, bias=False)  # ~1150 FLOP per byte: compute-bound
        assert _strip_plan(heavy, torch.randn(1, 512, 8, 8), SMALL_CACHE) == 0
    conv = _layer(nn.Conv2d, 8, 8, 3, 1, 1)
    assert _strip_plan(conv, x, SMALL_CACHE) == 0  # autograd: the plain layer, so gradients flow as usual
    out = conv_in_strips(conv, x.requires_grad_(), SMALL_CACHE)
    out.sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("8M", 8 << 20), ("32768K", 32 << 20), ("123", 123)])
def test_the_cache_size_can_be_forced(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv("VSEP_CONV_STRIPS", value)
    last_level_cache_bytes.cache_clear()
    try:
        assert last_level_cache_bytes() == expected
    finally:
        last_level_cache_bytes.cache_clear()


def test_a_malformed_cache_size_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VSEP_CONV_STRIPS", "lots")
    last_level_cache_bytes.cache_clear()
    try:
        with pytest.raises(UsageError, match="VSEP_CONV_STRIPS='lots'.*32M"):
            last_level_cache_bytes()
    finally:
        last_level_cache_bytes.cache_clear()


def test_the_cache_size_comes_from_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VSEP_CONV_STRIPS", raising=False)
    last_level_cache_bytes.cache_clear()
    try:
        size = last_level_cache_bytes()
    finally:
        last_level_cache_bytes.cache_clear()
    assert size == (cpu_cache_bytes() or 0)
    assert size == 0 or 256 * 1024 <= size <= 4 << 30  # a plausible L2/L3 size, or unknown


@pytest.mark.parametrize(("text", "expected"), [("32768K\n", 32 << 20), ("1g", 1 << 30), ("512", 512), ("", None),
                                                ("12.5M", None), ("M", None)])
def test_byte_sizes_are_parsed(text: str, expected: int | None) -> None:
    assert parse_byte_size(text) == expected


def test_default_cache_is_used_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    conv = _layer(nn.Conv2d, 6, 8, 3, 1, 1)
    x = torch.randn(1, 6, 80, 40)
    calls = []
    original = conv_strips._conv2d_in_strips
    monkeypatch.setattr(conv_strips, "_conv2d_in_strips", lambda *a: calls.append(a[2]) or original(*a))
    monkeypatch.setenv("VSEP_CONV_STRIPS", str(SMALL_CACHE))
    last_level_cache_bytes.cache_clear()
    try:
        with torch.inference_mode():
            torch.testing.assert_close(conv_in_strips(conv, x), conv(x), rtol=1e-5, atol=1e-6)
            expected = _strip_plan(conv, x, SMALL_CACHE)
    finally:
        last_level_cache_bytes.cache_clear()
    assert expected > 0 and calls == [expected]
