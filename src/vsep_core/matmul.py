"""float32 linear layers through oneDNN where it is faster than the BLAS torch calls, chosen per CPU at run time.

PyTorch's CPU wheels run ``nn.Linear`` in float32 through MKL's sgemm, and convolutions (and bf16 products)
through oneDNN. The two are not equally fast on every CPU: on the 2-core AMD EPYC of docs/benchmarks.md
oneDNN's kernels ran transformer-shaped products ([4096, 384] x [384, 1536] and the like) 10-25% faster than
MKL's, at the same float32 accumulation (results differ by summation order only, ~1e-6 relative). Which one
wins is measured once per process on one such product (`onednn_linear_is_faster`), not assumed from the
vendor. ``VSEP_ONEDNN_LINEAR=1`` / ``0`` forces the choice (``1`` still needs a torch built with oneDNN).
"""

from __future__ import annotations

import functools
import logging
import os
import time

import torch
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

log = logging.getLogger("vsep")

PROBE_SHAPE = (2048, 384, 1536)
"""(rows, in, out) of the timed product: a BS-RoFormer feed-forward layer's, a few milliseconds each way."""


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@functools.cache
def onednn_linear_is_faster() -> bool:
    """Whether oneDNN's float32 linear beats torch's default (BLAS) on this CPU: best of 3 timed products each,
    after a warm-up, with the threads torch has; ``VSEP_ONEDNN_LINEAR`` overrides. Measured once per process."""
    forced = os.environ.get("VSEP_ONEDNN_LINEAR", "").strip()
    available = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    if forced in ("0", "1"):
        return forced == "1" and available
    if not available:
        return False
    rows, n_in, n_out = PROBE_SHAPE
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(rows, n_in, generator=gen), torch.randn(n_out, n_in, generator=gen)

    def best(fn) -> float:
        times = []
        for _ in range(4):  # the first is a warm-up
            start = time.perf_counter()
            fn(x, w, None)
            times.append(time.perf_counter() - start)
        return min(times[1:])

    with torch.inference_mode():
        try:
            onednn = best(_onednn_linear)
        except RuntimeError:  # an op this build cannot run
            return False
        blas = best(torch.nn.functional.linear)
    log.debug("float32 linear: oneDNN %.2f ms, BLAS %.2f ms", onednn * 1e3, blas * 1e3)
    return onednn < blas


class OneDNNLinear(nn.Linear):
    """``nn.Linear`` (same parameters, same state-dict names) whose float32 CPU inference runs in oneDNN;
    autograd, other dtypes and other devices take ``nn.Linear``'s path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ weight.T + bias``."""
        if not _onednn_applies(x, self.weight):
            return super().forward(x)
        return _onednn_linear(x, self.weight, self.bias)


def _onednn_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """float32 CPU inference outside any dispatch mode (FLOP counting and fake tensors see aten's linear)."""
    return (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and _get_current_dispatch_mode() is None)


def linear_gelu_(layer: nn.Linear, x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """``gelu(layer(x))`` without autograd: one oneDNN product with the GELU applied as it writes (no second
    pass over the output) for a `OneDNNLinear` on float32 CPU input, else the layer then an in-place GELU."""
    if isinstance(layer, OneDNNLinear) and _onednn_applies(x, layer.weight):
        return torch.ops.mkldnn._linear_pointwise(x, layer.weight, layer.bias, "gelu", [], approximate)
    return torch.ops.aten.gelu_(layer(x), approximate=approximate)


def use_onednn_linears(net: nn.Module) -> int:
    """Make every float32 CPU ``nn.Linear`` of `net` a `OneDNNLinear` (in place) where oneDNN is the faster
    here (`onednn_linear_is_faster`); returns how many were changed (0 where BLAS is kept)."""
    linears = [m for m in net.modules() if type(m) is nn.Linear and m.weight.device.type == "cpu"
               and m.weight.dtype == torch.float32]
    if not linears or not onednn_linear_is_faster():
        return 0
    for module in linears:
        module.__class__ = OneDNNLinear  # same parameters and buffers: only forward differs
    return len(linears)
