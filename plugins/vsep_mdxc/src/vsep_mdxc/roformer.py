"""BS-RoFormer and Mel-Band-RoFormer (Lu et al. 2023; Wang et al. 2023), as the community trains them.

Written for the state-dict layout of the public checkpoints (lucidrains' BS-RoFormer as
extended by ZFTurbo's Music-Source-Separation-Training and UVR):

- ``band_split.to_features.{b}.{0.gamma, 1.weight, 1.bias}``: per band RMSNorm + Linear;
- ``layers.{d}.{k}``: per depth step an optional linear-attention transformer, then a
  time transformer and a frequency transformer, each ``layers.{j}.{0: attention, 1: feed-forward}``
  (``norm.gamma`` after the stack only for Mel-Band; ``final_norm.gamma`` after all for BS);
- ``...rotary_embed.freqs``: rotary frequencies, one module shared per axis;
- ``mask_estimators.{s}.to_freqs.{b}.0.{i}``: per stem and band an MLP (Tanh) then GLU.

Options of community yamls that change the network: ``num_stems``, ``mask_estimator_depth``
(BS: depth-1 hidden layers, Mel: depth hidden layers), ``mlp_expansion_factor`` (hidden width
of the mask MLPs), ``linear_transformer_depth``, ``skip_connection`` (each depth step adds the
outputs of all earlier steps), ``use_pope`` (polar positions, `PolarPositions`), MSST's experimental
``num_residual_streams`` (`HyperConnection`) and ``use_value_residual_learning``, ``zero_dc`` (applied
when the model runs in MSST's style), ``stereo``, the STFT settings, BS ``freqs_per_bands`` and Mel
``num_bands``/``sample_rate``. ``flash_attn``, ``sage_attention``, ``use_torch_checkpoint`` and
dropouts do not change inference (`NO_EFFECT_KEYS`); any other key is an error unless an installed
variant (vsep_mdxc.variants) owns it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsep_core.matmul import linear_gelu_, use_onednn_linears
from vsep_mdxc.spectral import complex_host, istft, stft


def _inverse_norm(x: torch.Tensor) -> torch.Tensor:
    """1 / ||x|| over the last axis, keepdim ([..., 1]), the norm at least 1e-12; float32 for half inputs."""
    wide = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    return 1.0 / torch.linalg.vector_norm(wide, dim=-1, keepdim=True).clamp_min(1e-12)


def _rms_normalize(x: torch.Tensor) -> torch.Tensor:
    """x / ||x|| over the last axis, computed in float32 for half inputs."""
    return (x * _inverse_norm(x)).to(x.dtype)


class RMSNorm(nn.Module):
    """x / ||x|| * sqrt(dim) * gamma."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def row_scale(self, x: torch.Tensor) -> torch.Tensor:
        """sqrt(dim) / ||x|| over the last axis ([..., 1], in x's dtype)."""
        return (self.scale * _inverse_norm(x)).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise the last axis."""
        # the scale on the small [..., 1] tensor first: two passes over x instead of three
        return x * self.row_scale(x) * self.gamma

    def normalize_(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` in place (the same arithmetic): for inference, where nothing else reads x afterwards."""
        return x.mul_(self.row_scale(x)).mul_(self.gamma)


def _normalized(norm: RMSNorm, x: torch.Tensor, dtype: torch.dtype, gamma_folded: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """`norm(x)` and sqrt(dim) / ||x|| ([..., 1]): the input of a block's first matrices.

    With `gamma_folded` (half precision, `half_matmuls`) the norm's gamma is already in the matrices,
    so the normalised input is one float32 product written straight into `dtype`: one pass over x
    instead of three (scale, gamma, cast) and no float32 temporaries. Otherwise `norm(x)` in x's dtype.
    """
    row_scale = norm.row_scale(x)
    if gamma_folded:
        return torch.mul(x, row_scale, out=torch.empty(x.shape, dtype=dtype, device=x.device)), row_scale
    if torch.is_grad_enabled():
        return x * row_scale * norm.gamma, row_scale
    return torch.mul(x, row_scale).mul_(norm.gamma), row_scale


class RotaryEmbedding(nn.Module):
    """Rotary position embedding over interleaved pairs of the head dimension (full rotation).

    ``freqs`` = 1 / 10000^(2i/dim); it is a parameter (not trained) so checkpoints carry it.
    Angles are computed in float32 whatever the autocast state.
    """

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        with torch.device("cpu"):  # a constant: real even when built on meta
            freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
        self.freqs = nn.Parameter(freqs, requires_grad=False)
        self._cache: tuple[tuple[Any, ...], Any] | None = None

    def _table(self, form: str, n: int, device: torch.device) -> Any:
        """The rotation of positions 0..n-1 from the float32 angles [n, dim / 2]: `form` "cis" gives
        exp(i * angle) (complex64), "cos_sin" cos and sin repeated per pair ([n, dim] each). The last
        one is cached while inference runs (a model uses one form, at a few lengths)."""
        key = (form, n, device, self.freqs.data_ptr(), self.freqs._version)
        inference = torch.is_inference_mode_enabled()
        if inference and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        angles = torch.outer(torch.arange(n, device=device, dtype=torch.float32), self.freqs.to(device, torch.float32))
        if form == "cis":
            table: Any = torch.polar(torch.ones_like(angles), angles)
        else:
            angles = torch.repeat_interleave(angles, 2, dim=-1)
            table = (angles.cos(), angles.sin())
        if inference:
            self._cache = (key, table)
        return table

    def rotate(self, t: torch.Tensor, seq_dim: int = -2) -> torch.Tensor:
        """Rotate queries or keys [..., seq, ..., dim] by their positions along `seq_dim`.

        On CPU and CUDA each (even, odd) pair is one complex number times exp(i * angle): one
        elementwise kernel instead of the half-rotation's negate, stack and two products (the same
        arithmetic; those took about 15% of a RoFormer's CPU time). MPS, which has no complex
        kernels, gets the half-rotation form.
        """
        with torch.autocast(device_type=t.device.type, enabled=False):
            seq_dim %= t.ndim
            if t.device.type in ("cpu", "cuda"):
                return self._rotate_complex(t, seq_dim)
            return self._rotate_half(t.movedim(seq_dim, -2)).movedim(-2, seq_dim)

    def _rotate_complex(self, t: torch.Tensor, seq_dim: int) -> torch.Tensor:
        cis = self._table("cis", t.shape[seq_dim], t.device)
        cis = cis.view(cis.shape[0], *([1] * (t.ndim - 2 - seq_dim)), cis.shape[1])
        pairs = t.float().unflatten(-1, (-1, 2))
        if pairs.stride(-1) != 1 or any(st % 2 for st in pairs.stride()[:-1]) or pairs.storage_offset() % 2:
            pairs = pairs.contiguous()
        return torch.view_as_real(torch.view_as_complex(pairs) * cis).flatten(-2).to(t.dtype)

    def _rotate_half(self, t: torch.Tensor) -> torch.Tensor:
        """The half-rotation form for [..., seq, dim]: t * cos + (-odd, even) * sin."""
        cos, sin = self._table("cos_sin", t.shape[-2], t.device)
        pairs = t.float().unflatten(-1, (-1, 2))
        rotated_half = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return (t.float() * cos + rotated_half * sin).to(t.dtype)


class PolarPositions(nn.Module):
    """PoPE (polar positions, "PolarFormer"): MSST's ``use_pope`` instead of rotary positions.

    Queries and keys become magnitudes (softplus) at angles ``position * inv_freqs``, the keys'
    angles shifted by a learned per-head bias clamped to [-2 pi, 0]; each (cos, sin) pair doubles
    the head dimension, so attention scores are ``sum |q| |k| cos(angle_q - angle_k)``. The math of
    PoPE-pytorch 0.2's non-fused path (``PoPE`` + ``flash_attn_with_pope``), written here: it is a
    few lines, and the package would bring einx and torch-einops-utils for them. Tensor names
    (``inv_freqs``, ``bias``) are the package's, as MSST's checkpoints store them.
    """

    def __init__(self, dim: int, heads: int, theta: float = 10000.0):
        super().__init__()
        with torch.device("cpu"):  # a constant: real even when built on meta
            inv_freqs = theta ** -(torch.arange(dim).float() / dim)
        self.register_buffer("inv_freqs", inv_freqs)
        self.bias = nn.Parameter(torch.zeros(heads, dim))

    def apply(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q, k [b, h, n, d] -> the polar q, k [b, h, n, 2d] (float32)."""
        with torch.autocast(device_type=q.device.type, enabled=False):
            inv = self.inv_freqs.to(q.device, torch.float32)
            angles = torch.outer(torch.arange(q.shape[-2], device=q.device, dtype=torch.float32), inv)  # [n, d]
            key_angles = angles + self.bias.float().clamp(-2.0 * math.pi, 0.0)[:, None, :]  # [h, n, d]
            qm, km = F.softplus(q.float()), F.softplus(k.float())
            q2 = torch.stack((qm * angles.cos(), qm * angles.sin()), dim=-1).flatten(-2)
            k2 = torch.stack((km * key_angles.cos(), km * key_angles.sin()), dim=-1).flatten(-2)
        return q2, k2


class Attention(nn.Module):
    """Multi-head self-attention with rotary (or PoPE) positions and a sigmoid gate per head.

    With `value_residual_mix` (MSST's experimental value-residual learning) the values are mixed
    with the first layer's values by a learned per-head sigmoid gate.
    """

    def __init__(self, dim: int, heads: int, dim_head: int, rotary_embed: RotaryEmbedding | None,
                 pope_embed: PolarPositions | None = None, value_residual_mix: bool = False):
        super().__init__()
        self.heads = heads
        self.scale = dim_head**-0.5
        inner = heads * dim_head
        self.rotary_embed = rotary_embed
        self.pope_embed = pope_embed
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(inner, dim, bias=False), nn.Dropout(0.0))
        self.to_value_residual_mix = nn.Linear(dim, heads) if value_residual_mix else None

    norm_folded = False
    """Set by `half_matmuls`: the norm's gamma is multiplied into `to_qkv` and `to_gates` (see `_normalized`)."""

    def forward(self, x: torch.Tensor, value_residual: torch.Tensor | None = None,
                return_values: bool = False) -> Any:
        """[b, n, dim] -> [b, n, dim]; with `return_values`, (output, the values before any mixing)."""
        # the matrices may be stored in half precision (`half_matmuls`): the product runs in theirs
        normed, row_scale = _normalized(self.norm, x, self.to_qkv.weight.dtype, self.norm_folded)
        b, n, _ = normed.shape
        qkv = self.to_qkv(normed.to(self.to_qkv.weight.dtype)).reshape(b, n, 3, self.heads, -1)  # [b,n,(q k v),h,d]
        if self.norm_folded:  # the gates from the float32 input: sigmoid(row_scale * (x W'^T) + bias)
            gate_logits = torch.addcmul(self.to_gates.bias, F.linear(x, self.to_gates.weight), row_scale)
        else:
            gate_logits = self.to_gates(normed)
        x = normed
        v = qkv[:, :, 2].transpose(1, 2)
        values = v
        if self.to_value_residual_mix is not None:
            if value_residual is None:
                raise ValueError("value-residual attention needs the first layer's values")
            mix = self.to_value_residual_mix(x).sigmoid().transpose(1, 2).unsqueeze(-1)  # [b, h, n, 1]
            v = v.lerp(value_residual.to(v.dtype), mix.to(v.dtype))
        if self.pope_embed is not None:
            q, k = self.pope_embed.apply(qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2))
            # values zero-padded to the polar queries' width: equal head sizes keep SDPA on its fused
            # kernels (about 10x faster on CPU than the math fallback for unequal sizes)
            d = v.shape[-1]
            padded = F.pad(v.to(q.dtype), (0, q.shape[-1] - d))
            out = F.scaled_dot_product_attention(q, k, padded, scale=self.scale)[..., :d].to(v.dtype)
        elif self.rotary_embed is not None:  # q and k rotated in one pass
            qk = self.rotary_embed.rotate(qkv[:, :, :2], seq_dim=1)
            q, k = qk.permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            q, k = qkv[:, :, :2].permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(q, k, v)
        gates = gate_logits.sigmoid().to(out.dtype)  # [b, n, h]
        out = out.mul_(gates.transpose(1, 2).unsqueeze(-1))
        out = self.to_out(out.transpose(1, 2).reshape(b, n, -1))
        return (out, values) if return_values else out


class HyperConnection(nn.Module):
    """A hyper-connection around `branch` (Zhu et al. 2024), as MSST's experimental RoFormer uses it.

    The residual is `streams` copies folded into the batch axis (``(b s)``, consecutive items);
    a learned, input-dependent mix of them feeds the branch, and the branch output is added back
    to every stream with learned weights. The math of hyper-connections 0.4's ``HyperConnections``
    with one fraction and one input view, written here (about 30 lines, no einx dependency);
    tensor names are the package's, as MSST's checkpoints store them.
    """

    def __init__(self, streams: int, dim: int, branch: nn.Module):
        super().__init__()
        self.streams = streams
        self.branch = branch
        self.norm = _ZeroCenteredRMSNorm(dim)
        self.static_alpha = nn.Parameter(torch.cat((torch.zeros(streams, 1), torch.eye(streams)), dim=1))
        self.dynamic_alpha_fn = nn.Parameter(torch.zeros(dim, streams + 1))
        self.dynamic_alpha_scale = nn.Parameter(torch.tensor(1e-2))
        self.static_beta = nn.Parameter(torch.ones(streams))
        self.dynamic_beta_fn = nn.Parameter(torch.zeros(dim))
        self.dynamic_beta_scale = nn.Parameter(torch.tensor(1e-2))

    def forward(self, residuals: torch.Tensor, **branch_kwargs: Any) -> Any:
        """residuals [(b s), ..., dim] -> the new residuals (and whatever else the branch returns)."""
        s = self.streams
        total, *middle, dim = residuals.shape
        r = residuals.reshape(total // s, s, *middle, dim).movedim(1, -2)  # [b, ..., s, dim]
        normed = self.norm(r)
        alpha = torch.tanh(normed @ self.dynamic_alpha_fn) * self.dynamic_alpha_scale + self.static_alpha
        beta = torch.tanh(normed @ self.dynamic_beta_fn) * self.dynamic_beta_scale + self.static_beta  # [b, ..., s]
        mixed = alpha.transpose(-1, -2) @ r  # [b, ..., 1 + s, dim]
        out = self.branch(mixed[..., 0, :], **branch_kwargs)
        rest: tuple = ()
        if isinstance(out, tuple):
            out, rest = out[0], out[1:]
        new = out.unsqueeze(-2) * beta.unsqueeze(-1) + mixed[..., 1:, :]
        new = new.movedim(-2, 1).reshape(total, *middle, dim)
        return (new, *rest) if rest else new


class _ZeroCenteredRMSNorm(RMSNorm):
    """x / ||x|| * sqrt(dim) * (gamma + 1), gamma starting at 0 (the hyper-connections norm)."""

    def __init__(self, dim: int):
        super().__init__(dim)
        nn.init.zeros_(self.gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise the last axis."""
        return x * self.row_scale(x) * (self.gamma + 1)


class _Rearrange(nn.Module):
    """Parameter-free reshape module (keeps the Sequential indices of the checkpoints)."""

    def __init__(self, kind: str, heads: int):
        super().__init__()
        self.kind, self.heads = kind, heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`qkv`: [b, n, 3*h*d] -> [3, b, h, d, n]; `out`: [b, h, d, n] -> [b, n, h*d]."""
        if self.kind == "qkv":
            b, n, _ = x.shape
            return x.reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 4, 1)
        b, h, d, n = x.shape
        return x.permute(0, 3, 1, 2).reshape(b, n, h * d)


class LinearAttention(nn.Module):
    """Cross-covariance ("linear") attention of El-Nouby et al. 2021: attends over features, scale 8."""

    def __init__(self, dim: int, heads: int, dim_head: int, scale: float = 8.0):
        super().__init__()
        inner = heads * dim_head
        self.scale = scale
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Sequential(nn.Linear(dim, inner * 3, bias=False), _Rearrange("qkv", heads))
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.to_out = nn.Sequential(_Rearrange("out", heads), nn.Linear(inner, dim, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[b, n, dim] -> [b, n, dim]."""
        x = self.norm(x)
        q, k, v = self.to_qkv(x)
        q, k = _rms_normalize(q), _rms_normalize(k)
        q = q * self.temperature.exp()
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.to_out(out)


class FeedForward(nn.Module):
    """RMSNorm -> Linear(dim, 4 dim) -> GELU -> Linear(4 dim, dim)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = int(dim * mult)
        self.net = nn.Sequential(RMSNorm(dim), nn.Linear(dim, inner), nn.GELU(), nn.Dropout(0.0),
                                 nn.Linear(inner, dim), nn.Dropout(0.0))

    norm_folded = False
    """Set by `half_matmuls`: the norm's gamma is multiplied into the first matrix (see `_normalized`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., dim] -> [..., dim] (in the matrices' dtype: see `half_matmuls`)."""
        norm, first, act, _, second, _ = self.net
        normed = _normalized(norm, x, first.weight.dtype, self.norm_folded)[0].to(first.weight.dtype)
        if torch.is_grad_enabled():
            return second(act(first(normed)))
        return second(linear_gelu_(first, normed, act.approximate))  # the 4x hidden layer: no copy


class Transformer(nn.Module):
    """A stack of pre-norm residual (attention, feed-forward) pairs, optionally RMS-normed at the end."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, norm_output: bool,
                 rotary_embed: RotaryEmbedding | None = None, linear_attn: bool = False,
                 pope_embed: PolarPositions | None = None):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(depth):
            attn: nn.Module
            if linear_attn:
                attn = LinearAttention(dim, heads, dim_head)
            else:
                attn = Attention(dim, heads, dim_head, rotary_embed, pope_embed)
            self.layers.append(nn.ModuleList([attn, FeedForward(dim)]))
        self.norm = RMSNorm(dim) if norm_output else nn.Identity()

    max_elements = 1024 * 512
    """Sequences are run through the stack in groups of at most this many activations (tokens x
    dim; at least one sequence): every sequence is independent, so the result is the same, while
    the largest activations (qkv, the 4x feed-forward hidden layer) shrink from the whole batch to
    one group. For BS-RoFormer ep_317 (dim 512) on an 8 s chunk, groups of 4096 tokens took the
    forward's peak from 1.96 to 1.40 GB; small networks get proportionally more tokens per group.
    The size is a memory bound, not a cache tuning: on the AVX512-BF16 EPYC of docs/benchmarks.md
    the forward's time was flat (within 2%, fp32 and bf16) for groups of 1024 to 16384 tokens, so the
    smallest of those is used (Mel-Band ep_3005, 8 s: 65 -> 18 MB of group temporaries at the peak)."""

    def group_size(self, length: int, dim: int) -> int:
        """How many sequences of `length` tokens of `dim` features run through the stack at once."""
        return max(1, self.max_elements // max(1, length * dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[b, n, dim] -> [b, n, dim]."""
        group = self.group_size(x.shape[1], x.shape[2])
        if x.shape[0] <= group or torch.is_grad_enabled():
            return self._stack(x)
        out: torch.Tensor | None = None
        for start in range(0, x.shape[0], group):
            part = self._stack(x[start:start + group])
            if out is None:
                out = part.new_empty((x.shape[0], *part.shape[1:]))
            out[start:start + part.shape[0]] = part
        assert out is not None
        return out

    def _stack(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.norm(x)

    def forward_(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` for inference with the residual stream kept in x's own memory (x is overwritten).

        The caller passes a tensor it owns (a group of sequences it copied out, or a slice of its own
        activations); each residual add is one in-place pass instead of a new tensor. Returns the
        result: x itself, or the output norm's new tensor.
        """
        if torch.is_grad_enabled():
            raise RuntimeError("Transformer.forward_ is for inference (no autograd)")
        for attn, ff in self.layers:
            x.add_(attn(x))
            x.add_(ff(x))
        return self.norm(x)


def _along_time_(transformer: Transformer, x: torch.Tensor) -> None:
    """Run `transformer` over the time sequences (one per item and band) of x [b, t, bands, dim], in place.

    A few bands at a time (`Transformer.group_size`): only those bands' sequences are copied out and
    back, so the axial stack holds one full activation tensor instead of three (the transposed copies
    for each axis and the transformer's output), about 100 MB each for an 8 s chunk at dim 512.
    """
    b, t, f, d = x.shape
    bands = max(1, transformer.group_size(t, d) // b)
    for start in range(0, f, bands):
        part = x[:, :, start:start + bands]  # [b, t, g, d]
        g = part.shape[2]
        sequences = part.transpose(1, 2).reshape(b * g, t, d)  # a copy, unless one band per item makes it a view
        out = transformer.forward_(sequences)
        if out is sequences and sequences.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
            continue  # the stack ran in x itself
        part.copy_(out.view(b, g, t, d).transpose(1, 2))


def _along_frequency_(transformer: Transformer, x: torch.Tensor) -> None:
    """Run `transformer` over the band sequences (one per item and frame) of x [b, t, bands, dim], in place."""
    b, t, f, d = x.shape
    rows = x.view(b * t, f, d)  # each row a sequence, contiguous: groups are plain slices
    group = transformer.group_size(f, d)
    for start in range(0, b * t, group):
        part = rows[start:start + group]
        out = transformer.forward_(part)
        if out is not part:
            part.copy_(out)


class ExperimentalTransformer(nn.Module):
    """MSST's ``bs_roformer_experimental`` / ``mel_band_roformer_experimental`` transformer stack.

    Attention and feed-forward are wrapped in hyper-connections when ``streams > 1``; with
    `value_residual_mix` the attention mixes in the values of the stack's first use (value-residual
    learning). As in MSST's code, the forward takes the first layer's values of the axis
    (`value_residual`): without them each layer adds its input around attention and feed-forward
    (on top of what a hyper-connection adds); with them the layers add nothing themselves (the
    hyper-connections carry the residual, and without streams there is none). Reproduced as its
    checkpoints were trained.
    """

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, norm_output: bool,
                 rotary_embed: RotaryEmbedding | None, streams: int, value_residual_mix: bool):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(depth):
            attn: nn.Module = Attention(dim, heads, dim_head, rotary_embed, value_residual_mix=value_residual_mix)
            ff: nn.Module = FeedForward(dim)
            if streams > 1:
                attn, ff = HyperConnection(streams, dim, attn), HyperConnection(streams, dim, ff)
            self.layers.append(nn.ModuleList([attn, ff]))
        self.norm = RMSNorm(dim) if norm_output else nn.Identity()

    def forward(self, x: torch.Tensor, value_residual: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """[b, n, dim] -> ([b, n, dim], the first layer's attention values)."""
        first: torch.Tensor | None = None
        for attn, ff in self.layers:
            out, values = attn(x, value_residual=value_residual, return_values=True)
            first = values if first is None else first
            if value_residual is None:
                x = out + x
                x = ff(x) + x
            else:
                x = ff(out.to(x.dtype)).to(x.dtype)
        assert first is not None
        return self.norm(x), first


class BandSplit(nn.Module):
    """Per band: RMSNorm + Linear from the band's (re, im) x channel x bins to `dim` features."""

    def __init__(self, dim: int, dim_inputs: Sequence[int]):
        super().__init__()
        self.dim_inputs = tuple(dim_inputs)
        self.to_features = nn.ModuleList(nn.Sequential(RMSNorm(d), nn.Linear(d, dim)) for d in self.dim_inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[b, t, sum(dim_inputs)] -> [b, t, bands, dim]."""
        parts = x.split(self.dim_inputs, dim=-1)
        out: torch.Tensor | None = None
        for band, (part, net) in enumerate(zip(parts, self.to_features, strict=True)):
            features = net(part)
            if out is None:  # written band by band: the bands' outputs never exist twice (a stack would)
                out = features.new_empty((*features.shape[:-1], len(parts), features.shape[-1]))
            out[..., band, :] = features
        assert out is not None
        return out


def _mlp(dim_in: int, dim_out: int, dim_hidden: int, hidden_layers: int) -> nn.Sequential:
    """Linear layers with Tanh between them: dim_in -> hidden x `hidden_layers` -> dim_out."""
    dims = (dim_in, *((dim_hidden,) * hidden_layers), dim_out)
    net: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        net.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            net.append(nn.Tanh())
    return nn.Sequential(*net)


class MaskEstimator(nn.Module):
    """Per band: MLP from `dim` features to 2 x the band's input size, then GLU -> the band's complex mask."""

    def __init__(self, dim: int, dim_inputs: Sequence[int], hidden_layers: int, mlp_expansion_factor: int):
        super().__init__()
        hidden = dim * mlp_expansion_factor
        self.dim_inputs = tuple(dim_inputs)
        self.to_freqs = nn.ModuleList(
            nn.Sequential(_mlp(dim, d * 2, hidden, hidden_layers), nn.GLU(dim=-1)) for d in dim_inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[b, t, bands, dim] -> [b, t, sum(dim_inputs)]."""
        bands = x.unbind(dim=-2)
        if torch.is_grad_enabled():
            return torch.cat([mlp(band) for band, mlp in zip(bands, self.to_freqs, strict=True)], dim=-1)
        # inference: each band's mask written into place, so the band outputs never exist twice (a cat would)
        out = x.new_empty((*x.shape[:-2], sum(self.dim_inputs)))
        for part, band, mlp in zip(out.split(self.dim_inputs, dim=-1), bands, self.to_freqs, strict=True):
            part.copy_(mlp(band))
        return out


@dataclass
class RoformerConfig:
    """Constructor options of both RoFormer variants (yaml ``model`` section after alias resolution).

    ``experimental`` is no yaml key: MSST's ``*_experimental`` model types, chosen from the yaml
    keys only they have (``num_residual_streams``, ``use_value_residual_learning``), the checkpoint's
    tensors, or an explicit model type.
    """

    dim: int
    depth: int
    stereo: bool = False
    num_stems: int = 1
    time_transformer_depth: int = 2
    freq_transformer_depth: int = 2
    linear_transformer_depth: int = 0
    dim_head: int = 64
    heads: int = 8
    mlp_expansion_factor: int = 4
    mask_estimator_depth: int = 2
    skip_connection: bool = False
    stft_n_fft: int = 2048
    stft_hop_length: int = 512
    stft_win_length: int = 2048
    stft_normalized: bool = False
    freqs_per_bands: tuple[int, ...] = field(default_factory=tuple)
    num_bands: int = 60
    sample_rate: int = 44100
    zero_dc: bool = True
    use_pope: bool = False
    num_residual_streams: int = 1
    use_value_residual_learning: bool = False
    experimental: bool = False

    @classmethod
    def field_names(cls) -> set[str]:
        """Names of every option (``experimental`` is not a yaml key)."""
        return {f.name for f in fields(cls)} - {"experimental"}


MaskHeadFactory = Callable[[int, Sequence[int]], nn.Module]
"""(dim, dim_inputs) -> a module [b, t, bands, dim] -> [b, t, sum(dim_inputs)]: one stem's mask head."""


class _RoformerBase(nn.Module):
    """Shared body: STFT, band features, axial transformers, masks, iSTFT.

    ``apply_zero_dc`` (off by default, as audio-separator runs these networks) zeroes the DC bin of
    every masked spectrogram before the inverse STFT when the yaml's ``zero_dc`` (default true)
    asks for it: MSST's non-experimental RoFormers do, so its inference style turns it on.
    """

    final_norm: nn.Module | None

    def __init__(self, cfg: RoformerConfig, dim_inputs: Sequence[int], norm_output: bool, mask_hidden_layers: int,
                 mask_head: MaskHeadFactory | None = None):
        super().__init__()
        self.cfg = cfg
        self.audio_channels = 2 if cfg.stereo else 1
        self.apply_zero_dc = False
        if cfg.experimental and cfg.use_pope:
            raise ValueError("use_pope is not available in MSST's experimental RoFormer")
        if cfg.experimental and cfg.linear_transformer_depth > 0:
            raise ValueError("linear_transformer_depth > 0 does not run in MSST's experimental RoFormer "
                             "(its linear transformer returns no values); set it to 0")
        self.layers = nn.ModuleList()
        if cfg.experimental:
            self._build_experimental(cfg, norm_output)
        else:
            self._build_standard(cfg, norm_output)
        self.band_split = BandSplit(cfg.dim, dim_inputs)
        if mask_head is None:
            self.mask_estimators = nn.ModuleList(
                MaskEstimator(cfg.dim, dim_inputs, mask_hidden_layers, cfg.mlp_expansion_factor)
                for _ in range(cfg.num_stems))
        else:
            self.mask_estimators = nn.ModuleList(mask_head(cfg.dim, dim_inputs) for _ in range(cfg.num_stems))

    def _build_standard(self, cfg: RoformerConfig, norm_output: bool) -> None:
        time_pos: dict[str, Any]
        freq_pos: dict[str, Any]
        if cfg.use_pope:
            time_pos = {"pope_embed": PolarPositions(cfg.dim_head, cfg.heads)}
            freq_pos = {"pope_embed": PolarPositions(cfg.dim_head, cfg.heads)}
        else:
            time_pos = {"rotary_embed": RotaryEmbedding(cfg.dim_head)}
            freq_pos = {"rotary_embed": RotaryEmbedding(cfg.dim_head)}
        common = dict(dim=cfg.dim, heads=cfg.heads, dim_head=cfg.dim_head, norm_output=norm_output)
        for _ in range(cfg.depth):
            blocks = []
            if cfg.linear_transformer_depth > 0:
                blocks.append(Transformer(depth=cfg.linear_transformer_depth, linear_attn=True, **common))
            blocks.append(Transformer(depth=cfg.time_transformer_depth, **time_pos, **common))
            blocks.append(Transformer(depth=cfg.freq_transformer_depth, **freq_pos, **common))
            self.layers.append(nn.ModuleList(blocks))

    def _build_experimental(self, cfg: RoformerConfig, norm_output: bool) -> None:
        time_rotary, freq_rotary = RotaryEmbedding(cfg.dim_head), RotaryEmbedding(cfg.dim_head)
        common = dict(dim=cfg.dim, heads=cfg.heads, dim_head=cfg.dim_head, norm_output=norm_output,
                      streams=cfg.num_residual_streams)
        for index in range(cfg.depth):
            mix = cfg.use_value_residual_learning and index > 0
            self.layers.append(nn.ModuleList([
                ExperimentalTransformer(depth=cfg.time_transformer_depth, rotary_embed=time_rotary,
                                        value_residual_mix=mix, **common),
                ExperimentalTransformer(depth=cfg.freq_transformer_depth, rotary_embed=freq_rotary,
                                        value_residual_mix=mix, **common)]))

    @property
    def num_freqs(self) -> int:
        """STFT bins per channel."""
        return self.cfg.stft_n_fft // 2 + 1

    def _gather(self, spec: torch.Tensor) -> torch.Tensor:
        """[b, (f s), t, 2] -> the band-ordered input features [b, t, features]."""
        raise NotImplementedError

    def _apply_masks(self, spec: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Complex [b, 1, (f s), t] x band-ordered complex masks [b, n, features/2, t] -> [b, n, (f s), t]."""
        raise NotImplementedError

    def _axial(self, x: torch.Tensor) -> torch.Tensor:
        """The transformer stack over [b, t, bands, dim]."""
        if self.cfg.experimental:
            return self._axial_experimental(x)
        store: list[torch.Tensor] = []
        for block in self.layers:
            if len(block) == 3:
                linear, time_tf, freq_tf = block
                b, t, f, d = x.shape
                x = linear(x.reshape(b, t * f, d)).reshape(b, t, f, d)
            else:
                time_tf, freq_tf = block
            if self.cfg.skip_connection:
                for earlier in store:
                    x = x + earlier  # a new tensor: what `store` holds is never changed in place below
            if torch.is_grad_enabled():
                b, t, f, d = x.shape
                x = x.transpose(1, 2).reshape(b * f, t, d)
                x = time_tf(x)
                x = x.reshape(b, f, t, d).transpose(1, 2).reshape(b * t, f, d)
                x = freq_tf(x)
                x = x.reshape(b, t, f, d)
            else:
                _along_time_(time_tf, x)
                _along_frequency_(freq_tf, x)
            if self.cfg.skip_connection:
                store.append(x)
        return x

    def _axial_experimental(self, x: torch.Tensor) -> torch.Tensor:
        """MSST's experimental stack: residual streams folded into the batch, first values carried per axis."""
        streams = self.cfg.num_residual_streams
        if streams > 1:
            x = x.repeat_interleave(streams, dim=0)  # [(b s), t, f, d]
        time_values: torch.Tensor | None = None
        freq_values: torch.Tensor | None = None
        store: list[torch.Tensor] = []
        for time_tf, freq_tf in self.layers:
            if self.cfg.skip_connection:
                for earlier in store:
                    x = x + earlier
            b, t, f, d = x.shape
            x = x.transpose(1, 2).reshape(b * f, t, d)
            x, values = time_tf(x, value_residual=time_values)
            time_values = values if time_values is None else time_values
            x = x.reshape(b, f, t, d).transpose(1, 2).reshape(b * t, f, d)
            x, values = freq_tf(x, value_residual=freq_values)
            freq_values = values if freq_values is None else freq_values
            x = x.reshape(b, t, f, d)
            if self.cfg.skip_connection:
                store.append(x)
        if streams > 1:
            x = x.reshape(-1, streams, *x.shape[1:]).sum(dim=1)
        return x

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveform [b, channels, samples] -> [b, channels, samples] (one stem) or [b, stems, channels, samples].

        The output is as long as the input (the inverse STFT is given the input length).
        """
        device = audio.device
        if audio.ndim == 2:
            audio = audio.unsqueeze(1)
        b, channels, length = audio.shape
        if channels != self.audio_channels:
            raise ValueError(f"this model takes {self.audio_channels} channel(s), got {channels}")
        spec = stft(audio, self.cfg.stft_n_fft, self.cfg.stft_hop_length, self.cfg.stft_win_length,
                    self.cfg.stft_normalized)  # [b, s, f, t] complex on the complex host
        spec = spec.permute(0, 2, 1, 3).reshape(b, -1, spec.shape[-1])  # [b, (f s), t]
        x = self._gather(torch.view_as_real(spec).to(device))
        dtype = self.band_split.to_features[0][1].weight.dtype
        x = self.band_split(x.to(dtype))
        x = self._axial(x)
        if self.final_norm is not None:
            x = self.final_norm(x) if torch.is_grad_enabled() else self.final_norm.normalize_(x)
        if len(self.mask_estimators) == 1:  # one stem: no stacked copy
            masks = self.mask_estimators[0](x).unsqueeze(1)  # [b, 1, t, features]
        else:
            masks = torch.stack([est(x) for est in self.mask_estimators], dim=1)  # [b, n, t, features]
        del x  # the band x frame activations (74-101 MB for an 8 s chunk) are not needed past the masks
        masks = masks.reshape(*masks.shape[:3], -1, 2).transpose(2, 3)  # [b, n, features/2, t, 2]
        host = complex_host(device)
        masks = torch.view_as_complex(masks.to(host, torch.float32).contiguous())
        out = self._apply_masks(spec.unsqueeze(1), masks)  # [b, n, (f s), t]
        n = out.shape[1]
        out = out.reshape(b, n, -1, self.audio_channels, out.shape[-1]).transpose(2, 3)  # [b, n, s, f, t]
        if self.apply_zero_dc and self.cfg.zero_dc and not self.cfg.experimental:
            out = out.clone()
            out[..., 0, :] = 0
        wave = istft(out, self.cfg.stft_n_fft, self.cfg.stft_hop_length, self.cfg.stft_win_length,
                     self.cfg.stft_normalized, length=length).to(device)
        return wave[:, 0] if n == 1 else wave


class BSRoformer(_RoformerBase):
    """Band-Split RoFormer: contiguous, non-overlapping bands of `freqs_per_bands` bins."""

    def __init__(self, cfg: RoformerConfig, mask_head: MaskHeadFactory | None = None):
        channels = 2 if cfg.stereo else 1
        freqs = cfg.stft_n_fft // 2 + 1
        if len(cfg.freqs_per_bands) < 2 or sum(cfg.freqs_per_bands) != freqs:
            raise ValueError(f"freqs_per_bands must have at least 2 bands summing to {freqs} "
                             f"(stft_n_fft {cfg.stft_n_fft}), got {sum(cfg.freqs_per_bands)} in "
                             f"{len(cfg.freqs_per_bands)} bands")
        dim_inputs = tuple(2 * f * channels for f in cfg.freqs_per_bands)
        super().__init__(cfg, dim_inputs, norm_output=False, mask_hidden_layers=cfg.mask_estimator_depth - 1,
                         mask_head=mask_head)
        self.final_norm = RMSNorm(cfg.dim)

    def _gather(self, spec: torch.Tensor) -> torch.Tensor:
        """Bands are contiguous: [b, (f s), t, 2] -> [b, t, (f s 2)]."""
        b, fs, t, _ = spec.shape
        return spec.permute(0, 2, 1, 3).reshape(b, t, fs * 2)

    def _apply_masks(self, spec: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Element-wise complex product."""
        return spec * masks


def mel_band_membership(sample_rate: int, n_fft: int, num_bands: int) -> np.ndarray:
    """Bool [bands, n_fft//2+1]: which STFT bins each Mel band covers.

    The bins with a positive weight in the Slaney-style Mel filter bank (librosa's default:
    ``librosa.filters.mel(sr, n_fft, n_mels)``, Slaney Mel scale, fmin 0, fmax sr/2), with
    the first bin of the first band and the last bin of the last band forced on, as the
    Mel-Band-RoFormer checkpoints were trained with.
    """
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0

    def hz_to_mel(hz: float) -> float:
        if hz >= min_log_hz:
            return float(min_log_mel + np.log(hz / min_log_hz) / logstep)
        return hz / f_sp

    def mel_to_hz(mels: np.ndarray) -> np.ndarray:
        hz = f_sp * mels
        log_t = mels >= min_log_mel
        hz[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
        return hz

    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(float(sample_rate) / 2), num_bands + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    member = np.zeros((num_bands, len(fft_freqs)), dtype=bool)
    for i in range(num_bands):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        member[i] = np.maximum(0, np.minimum(lower, upper)) > 0
    member[0, 0] = True
    member[-1, -1] = True
    if not member.any(axis=0).all():
        raise ValueError(f"{num_bands} Mel bands leave STFT bins uncovered (n_fft {n_fft}, sr {sample_rate})")
    return member


class MelBandRoformer(_RoformerBase):
    """Mel-Band RoFormer: overlapping Mel bands; masks of bins shared by several bands are averaged."""

    freq_indices: torch.Tensor
    num_bands_per_freq: torch.Tensor

    def __init__(self, cfg: RoformerConfig, mask_head: MaskHeadFactory | None = None):
        channels = 2 if cfg.stereo else 1
        with torch.device("cpu"):  # real values even when the network is built on meta (model.build_with_weights)
            member = torch.from_numpy(mel_band_membership(cfg.sample_rate, cfg.stft_n_fft, cfg.num_bands))
            freqs = member.shape[1]
            freq_indices = torch.arange(freqs).expand(cfg.num_bands, freqs)[member]
            if channels == 2:
                freq_indices = (freq_indices[:, None] * 2 + torch.arange(2)).reshape(-1)
        dim_inputs = tuple(2 * int(f) * channels for f in member.sum(dim=1).tolist())
        super().__init__(cfg, dim_inputs, norm_output=True, mask_hidden_layers=cfg.mask_estimator_depth,
                         mask_head=mask_head)
        self.final_norm = None
        self.register_buffer("freq_indices", freq_indices, persistent=False)
        self.register_buffer("num_bands_per_freq", member.sum(dim=0), persistent=False)

    def _gather(self, spec: torch.Tensor) -> torch.Tensor:
        """Pick every band's bins (a bin may appear in two bands): -> [b, t, (bins 2)]."""
        x = spec.permute(0, 2, 1, 3).index_select(2, self.freq_indices)  # [b, t, idx, 2]: one copy, in place
        b, t, idx, _ = x.shape
        return x.reshape(b, t, idx * 2)

    def _apply_masks(self, spec: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Scatter-add band masks onto bins, average by the number of bands per bin, multiply."""
        b, n, _, t = masks.shape
        indices = self.freq_indices.to(masks.device)
        summed = torch.zeros(b, n, spec.shape[2], t, dtype=masks.dtype, device=masks.device)
        summed.scatter_add_(2, indices.view(1, 1, -1, 1).expand(b, n, -1, t), masks)
        denom = self.num_bands_per_freq.to(masks.device, torch.float32).repeat_interleave(self.audio_channels)
        return spec * summed.div_(denom.clamp(min=1e-8).view(1, 1, -1, 1))


_ALIASES = {
    "n_fft": "stft_n_fft", "hop_length": "stft_hop_length", "win_length": "stft_win_length",
    "normalized": "stft_normalized", "n_heads": "heads", "num_heads": "heads", "head_dim": "dim_head",
    "expansion_factor": "mlp_expansion_factor", "mlp_ratio": "mlp_expansion_factor",
    "freq_bands": "freqs_per_bands", "frequency_bands": "freqs_per_bands", "mel_bands": "num_bands",
    "n_mels": "num_bands",
}
_BOOL_KEYS = {"stereo", "skip_connection", "stft_normalized", "zero_dc", "use_pope", "use_value_residual_learning"}
NO_EFFECT_KEYS = frozenset({
    "flash_attn", "sage_attention", "use_torch_checkpoint", "attn_dropout", "ff_dropout", "dim_freqs_in",
    "multi_stft_resolution_loss_weight", "multi_stft_resolutions_window_sizes", "multi_stft_hop_size",
    "multi_stft_normalized", "multi_stft_window_fn", "match_input_audio_length", "stft_window_fn",
    "model_type", "type", "architecture",
})
"""Keys of MSST's RoFormer constructors (and of community yamls) that do not change inference."""


def known_keys() -> frozenset[str]:
    """Every yaml ``model`` key the built-in RoFormers own (after alias resolution)."""
    return frozenset(RoformerConfig.field_names() | NO_EFFECT_KEYS)


def normalize_model_section(model: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the community's alias names (``n_heads`` -> ``heads``, ``n_mels`` -> ``num_bands``, ...)."""
    return {_ALIASES.get(k, k): v for k, v in model.items()}


def to_bool(value: Any) -> bool:
    """A yaml flag as a bool (strings true/1/yes/on are true)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def roformer_config(model: Mapping[str, Any], variant: str, num_stems: int | None = None,
                    num_bands: int | None = None, owned: Collection[str] = (),
                    experimental: bool = False, num_residual_streams: int | None = None) -> RoformerConfig:
    """Build the options of `variant` ("bs" or "mel") from a yaml ``model`` section.

    Missing ``num_stems``/``num_bands``/``num_residual_streams`` fall back to the given values
    (counted from the checkpoint by the caller), then to 1 / 60 / 1. Missing ``mask_estimator_depth`` is 2 for BS
    and 1 for Mel, the constructors' defaults. A key that is neither built in (`known_keys`) nor
    in `owned` (the keys of installed variants) is a ValueError naming it.
    """
    section = normalize_model_section(model)
    unknown = sorted(k for k in section if k not in known_keys() and k not in owned)
    if unknown:
        raise ValueError(f"unknown model key(s) {', '.join(map(repr, unknown))} in the yaml: no built-in RoFormer "
                         "option and no installed vsep_mdxc variant owns them (docs/mdxc.md lists the keys; a "
                         "variant package adds its own)")
    window = section.get("stft_window_fn")
    if window not in (None, "hann", "hann_window", "torch.hann_window"):
        raise ValueError(f"unsupported stft_window_fn {window!r} (only the Hann window is implemented)")
    names = RoformerConfig.field_names()
    kwargs: dict[str, Any] = {"experimental": experimental}
    for key, value in section.items():
        if key not in names or value is None:
            continue
        if key in _BOOL_KEYS:
            kwargs[key] = to_bool(value)
        elif key == "freqs_per_bands":
            kwargs[key] = tuple(int(v) for v in value)
        else:
            kwargs[key] = int(float(value))
    for required in ("dim", "depth"):
        if required not in kwargs:
            raise ValueError(f"the yaml model section has no {required!r}")
    if "num_stems" not in kwargs:
        kwargs["num_stems"] = num_stems or 1
    if "num_residual_streams" not in kwargs and num_residual_streams:
        kwargs["num_residual_streams"] = num_residual_streams
    if kwargs.get("num_residual_streams", 1) < 1:
        raise ValueError("num_residual_streams must be at least 1")
    if variant == "bs":
        if "freqs_per_bands" not in kwargs:
            raise ValueError("a BS-RoFormer yaml needs model.freqs_per_bands")
        kwargs.setdefault("mask_estimator_depth", 2)
    else:
        if "num_bands" not in kwargs:
            kwargs["num_bands"] = num_bands or 60
        kwargs.setdefault("mask_estimator_depth", 1)
    return RoformerConfig(**kwargs)


def half_matmuls(net: nn.Module, dtype: torch.dtype) -> int:
    """Store the transformers' big matrices (attention qkv and output, feed-forward) in `dtype` (bf16/fp16).

    Those products are almost all of a RoFormer's arithmetic (about 98% for BS-RoFormer ep_317), and run
    at the half-precision rate with float32 accumulation; attention runs in `dtype` too (SDPA accumulates
    its softmax in float32). Everything that sets the output's accuracy stays float32: the residual
    stream, every RMSNorm, rotary angles and products, the attention gates, band split, mask estimators
    (whose masks multiply the spectrogram directly) and the STFT / inverse STFT. Plain autocast instead
    rounds the mask estimators' products to bf16 too, which cost the vocal stem 37.7 dB parity to fp32.
    Returns the number of matrices converted.
    """
    count = 0
    for module in net.modules():
        if isinstance(module, Attention):
            targets = [module.to_qkv, module.to_out[0]]
            if module.to_value_residual_mix is None:  # value-residual mixing reads the normed input itself
                _fold_gamma(module.norm, [module.to_qkv, module.to_gates])
                module.norm_folded = True
        elif isinstance(module, FeedForward):
            targets = [module.net[1], module.net[4]]
            _fold_gamma(module.net[0], [module.net[1]])
            module.norm_folded = True
        else:
            continue
        for linear in targets:
            linear.to(dtype)
            count += 1
    return count


def onednn_transformer_linears(net: nn.Module) -> int:
    """The transformers' float32 linear layers (attention qkv, gates and output, feed-forward) in oneDNN where
    it is the faster on this CPU (`vsep_core.matmul`); returns how many. Band split and mask estimators keep
    BLAS: oneDNN re-lays out each weight per call, and theirs are most of a Mel-Band-RoFormer's 1 GB, small
    products over few frames (in oneDNN: no faster, +180 MB peak RSS for an 8 s chunk)."""
    return sum(use_onednn_linears(module) for module in net.modules() if isinstance(module, (Attention, FeedForward)))


def _fold_gamma(norm: RMSNorm, linears: Sequence[nn.Linear]) -> None:
    """Multiply the norm's gamma into the columns of the matrices that read its output (in float32)."""
    with torch.no_grad():
        for linear in linears:
            linear.weight.mul_(norm.gamma.to(linear.weight.dtype))
        norm.gamma.fill_(1.0)


def build_roformer(cfg: RoformerConfig, variant: str, mask_head: MaskHeadFactory | None = None) -> _RoformerBase:
    """The network of `variant` ("bs" or "mel") with random weights; `mask_head` replaces the mask estimators."""
    return BSRoformer(cfg, mask_head) if variant == "bs" else MelBandRoformer(cfg, mask_head)
