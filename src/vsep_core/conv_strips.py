"""Large CPU convolutions run in strips of rows that fit the last-level cache.

oneDNN's CPU convolution reorders an NCHW input into its blocked layout, convolves (reading the input
once per block of output channels) and reorders the result back. When input and output together
outgrow the last-level cache, each of those passes goes to DRAM: on the 2-core AMD EPYC of
docs/benchmarks.md (32 MB L3) a spectrogram U-Net's full-resolution 3x3 convolution (128 channels, 256 x 1024
grid: 128 MB in, 128 MB out) ran at 75-78 GFLOP/s, the same layer on 16 rows at 98, and its 2x2
transposed convolutions at half the speed they reach on cache-sized pieces. `conv_in_strips` runs such
a layer strip by strip along the height axis: each strip's input rows (with the kernel's halo, zero
rows where the padding is) are copied into a buffer about half the cache in size together with the
strip's output, convolved, and copied into place. Every output element is the same sum over the same
weights in the same order, so the result equals the whole-tensor convolution (bit for bit on the CPU
measured; the tests allow float32 rounding).

The cache size is read from the CPU at run time (`last_level_cache_bytes`); ``VSEP_CONV_STRIPS=0``
turns strips off, ``VSEP_CONV_STRIPS=<bytes>`` sets the cache size to plan for.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

from vsep_core.envinfo import cpu_cache_bytes, parse_byte_size
from vsep_core.errors import UsageError

MAX_FLOPS_PER_BYTE = 600
"""Layers doing more arithmetic per byte of input and output than this run whole. Measured on the EPYC above
(float32, one thread): strips gained 50% on 2x2 transposed convolutions (~100 FLOP/byte), 10% on 3x3
convolutions of 128-256 channels (290-580), under 5% at 770-860 and lost 4-8% at 1150 (768 -> 384 channels
on 64 x 256), where the convolution is bound by arithmetic, not by memory traffic."""


@functools.cache
def last_level_cache_bytes() -> int:
    """The cache size strips are planned for, in bytes (0: strips off): ``VSEP_CONV_STRIPS`` when set (a size
    such as ``16M``, or ``0``), else what the CPU reports (`vsep_core.envinfo.cpu_cache_bytes`), else 0."""
    forced = os.environ.get("VSEP_CONV_STRIPS", "").strip()
    if forced:
        size = parse_byte_size(forced)
        if size is None:
            raise UsageError(f"VSEP_CONV_STRIPS={forced!r}: write a cache size such as 32M, or 0 to turn strips off")
        return size
    return cpu_cache_bytes() or 0


def _strip_plan(conv: nn.Module, x: torch.Tensor, cache_bytes: int) -> int:
    """Output rows per strip for `conv` on `x`, or 0 when the whole-tensor convolution is the one to run."""
    if cache_bytes <= 0 or torch.is_grad_enabled() or x.device.type != "cpu" or x.ndim != 4:
        return 0
    if not x.is_contiguous() or x.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return 0
    kh, sh, dh = conv.kernel_size[0], conv.stride[0], conv.dilation[0]
    if isinstance(conv, nn.ConvTranspose2d):
        if kh != sh or conv.padding[0] or conv.output_padding[0] or dh != 1:
            return 0  # strips of the input would overlap in the output
        in_rows_per_out_row = 1.0 / sh
    elif isinstance(conv, nn.Conv2d):
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            return 0
        in_rows_per_out_row = float(sh)
    else:
        return 0
    n, c, h, w = x.shape
    item = x.element_size()
    h_out, w_out = _out_size(conv, h, 2), _out_size(conv, w, 3)
    if h_out <= 0 or w_out <= 0:
        return 0
    in_row, out_row = n * c * w * item, n * conv.out_channels * w_out * item
    if h * in_row + h_out * out_row <= cache_bytes:
        return 0  # already in cache
    flops = 2 * conv.weight.numel() * n * (h * w if isinstance(conv, nn.ConvTranspose2d) else h_out * w_out)
    if flops > MAX_FLOPS_PER_BYTE * (h * in_row + h_out * out_row):
        return 0  # compute-bound: smaller pieces would cost more than the cache saves
    halo = dh * (kh - 1) if isinstance(conv, nn.Conv2d) else 0
    budget = cache_bytes // 2 - halo * in_row
    rows = int(budget // (in_rows_per_out_row * in_row + out_row))
    if isinstance(conv, nn.ConvTranspose2d):
        rows -= rows % sh  # whole input rows per strip
    return rows if 2 <= rows < h_out else 0


def _out_size(conv: nn.Module, size: int, dim: int) -> int:
    """Output size of `conv` along tensor dimension `dim` (2: height, 3: width) for an input of `size`."""
    i = dim - 2
    k, s, d = conv.kernel_size[i], conv.stride[i], conv.dilation[i]
    if isinstance(conv, nn.ConvTranspose2d):
        return (size - 1) * s - 2 * conv.padding[i] + d * (k - 1) + conv.output_padding[i] + 1
    return (size + 2 * conv.padding[i] - d * (k - 1) - 1) // s + 1


def conv_in_strips(conv: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor, cache_bytes: int | None = None
                   ) -> torch.Tensor:
    """``conv(x)``, computed in strips of rows when input and output outgrow the last-level cache.

    Strips apply for inference (no autograd) on contiguous 4-D CPU tensors, to ``nn.Conv2d`` with zero
    padding (any kernel, stride, dilation, groups) and to ``nn.ConvTranspose2d`` whose kernel equals its
    stride along the height with no height padding; anything else, and layers that fit the cache, run
    whole. `cache_bytes` defaults to `last_level_cache_bytes`.
    """
    rows = _strip_plan(conv, x, last_level_cache_bytes() if cache_bytes is None else cache_bytes)
    if rows == 0:
        return conv(x)
    if isinstance(conv, nn.ConvTranspose2d):
        return _transposed_in_strips(conv, x, rows)
    return _conv2d_in_strips(conv, x, rows)


def _conv2d_in_strips(conv: nn.Conv2d, x: torch.Tensor, rows: int) -> torch.Tensor:
    n, c, h, _ = x.shape
    kh, sh, dh, ph = conv.kernel_size[0], conv.stride[0], conv.dilation[0], conv.padding[0]
    h_out = _out_size(conv, h, 2)
    stride, padding = (sh, conv.stride[1]), (0, conv.padding[1])
    out: torch.Tensor | None = None
    buffer: torch.Tensor | None = None
    for first_out in range(0, h_out, rows):
        count = min(rows, h_out - first_out)
        span = (count - 1) * sh + dh * (kh - 1) + 1  # input rows these output rows read
        if buffer is None or buffer.shape[2] != span:
            buffer = x.new_empty((n, c, span, x.shape[3]))
        top = first_out * sh - ph  # input row of the buffer's first row (negative: padding)
        lo, hi = max(top, 0), min(top + span, h)
        buffer[:, :, : lo - top].zero_()
        buffer[:, :, hi - top:].zero_()
        buffer[:, :, lo - top: hi - top].copy_(x[:, :, lo:hi])
        part = F.conv2d(buffer, conv.weight, conv.bias, stride, padding, conv.dilation, conv.groups)
        if out is None:
            out = part.new_empty((n, part.shape[1], h_out, part.shape[3]))
        out[:, :, first_out:first_out + count].copy_(part)
    assert out is not None
    return out


def _transposed_in_strips(conv: nn.ConvTranspose2d, x: torch.Tensor, rows: int) -> torch.Tensor:
    sh = conv.stride[0]
    h = x.shape[2]
    out: torch.Tensor | None = None
    for first_out in range(0, h * sh, rows):
        first_in, count_in = first_out // sh, min(rows, h * sh - first_out) // sh
        part = conv(x[:, :, first_in:first_in + count_in].contiguous())
        if out is None:
            out = part.new_empty((x.shape[0], part.shape[1], h * sh, part.shape[3]))
        out[:, :, first_out:first_out + part.shape[2]].copy_(part)
    assert out is not None
    return out
