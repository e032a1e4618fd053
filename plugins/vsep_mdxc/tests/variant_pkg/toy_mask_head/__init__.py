"""A toy RoFormer mask head, added to vsep_mdxc through its ``vsep_mdxc.variants`` entry points.

yaml keys it owns (section ``model``): ``toy_mask_head: true`` switches it on; ``toy_mask_gain`` scales
the masks (default 1.0). Each band's mask is one linear layer and a tanh instead of the built-in MLP
and GLU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from vsep_mdxc.variants import Variant, VariantContext


class ToyMaskHead(nn.Module):
    """Per band: Linear(dim, 2 x band inputs) -> tanh -> x gain."""

    def __init__(self, dim: int, dim_inputs: Sequence[int], gain: float):
        super().__init__()
        self.gain = gain
        self.to_freqs = nn.ModuleList(nn.Linear(dim, 2 * d) for d in dim_inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[b, t, bands, dim] -> [b, t, sum(dim_inputs)] (each band's (re, im) mask pairs, interleaved)."""
        bands = x.unbind(dim=-2)
        out = torch.cat([layer(band) for band, layer in zip(bands, self.to_freqs, strict=True)], dim=-1)
        return torch.tanh(out).unflatten(-1, (-1, 2)).mean(dim=-1) * self.gain  # 2 x d features -> d


def head_factory(gain: float = 1.0) -> Callable[[int, Sequence[int]], nn.Module]:
    """The factory vsep_mdxc calls once per stem: (dim, dim_inputs) -> a mask head."""
    return lambda dim, dim_inputs: ToyMaskHead(dim, dim_inputs, gain)


def _mask_head(ctx: VariantContext) -> Callable[[int, Sequence[int]], nn.Module]:
    if not ctx.options.get("toy_mask_head", False):
        raise ValueError("toy_mask_gain needs toy_mask_head: true")
    return head_factory(float(ctx.options.get("toy_mask_gain", 1.0)))


VARIANT = Variant(name="toy-mask-head", keys=frozenset({"toy_mask_head", "toy_mask_gain"}), mask_head=_mask_head)
