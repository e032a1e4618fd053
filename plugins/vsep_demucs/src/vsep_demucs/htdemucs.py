"""Hybrid Transformer Demucs (Demucs v4), inference only.

vsep's own implementation of the network described by Rouard, Massa and Défossez,
"Hybrid Transformers for Music Source Separation" (ICASSP 2023). Module and parameter
names follow the published checkpoints (``state_dict`` keys must match exactly), so a
``.th`` package of ``demucs.htdemucs.HTDemucs`` loads with ``load_state_dict(strict=True)``.

Only what inference needs is here: no training-time augmentation, no weight rescaling at
init (weights always come from a checkpoint), no sparse attention (xformers) and no Wiener
filtering (every published v4 model uses complex-as-channels). Constructor arguments that
would need those raise ``NotImplementedError``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

# ----------------------------------------------------------------------------- helpers


def pad1d(x: torch.Tensor, paddings: tuple[int, int], mode: str = "constant", value: float = 0.0) -> torch.Tensor:
    """``F.pad`` over the last axis that also reflect-pads inputs shorter than the padding.

    Reflection needs more samples than the pad; when there are not enough, zeros are added
    first (to the right where possible) and the remaining pad is reflected.
    """
    length = x.shape[-1]
    left, right = paddings
    if mode == "reflect":
        max_pad = max(left, right)
        if length <= max_pad:
            extra = max_pad - length + 1
            extra_right = min(right, extra)
            extra_left = extra - extra_right
            left, right = left - extra_left, right - extra_right
            x = F.pad(x, (extra_left, extra_right))
    return F.pad(x, (left, right), mode, value)


def spectro(x: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Normalised, centred STFT (Hann window, reflect padding) over the last axis.

    Runs on the CPU for devices other than CUDA and CPU (complex support), returning a CPU tensor.
    """
    *other, length = x.shape
    x = x.reshape(-1, length)
    if x.device.type not in ("cuda", "cpu"):
        x = x.cpu()
    z = torch.stft(x, n_fft, hop_length, window=torch.hann_window(n_fft).to(x), win_length=n_fft,
                   normalized=True, center=True, return_complex=True, pad_mode="reflect")
    _, freqs, frames = z.shape
    return z.view(*other, freqs, frames)


def ispectro(z: torch.Tensor, hop_length: int, length: int) -> torch.Tensor:
    """Inverse of :func:`spectro` returning exactly ``length`` samples."""
    *other, freqs, frames = z.shape
    n_fft = 2 * freqs - 2
    z = z.reshape(-1, freqs, frames)
    x = torch.istft(z, n_fft, hop_length, window=torch.hann_window(n_fft).to(z.real), win_length=n_fft,
                    normalized=True, length=length, center=True)
    return x.view(*other, x.shape[-1])


class LayerScale(nn.Module):
    """Per-channel learnt scale of a residual branch (channels first, or last with ``channel_last``)."""

    def __init__(self, channels: int, init: float = 0.0, channel_last: bool = False):
        super().__init__()
        self.channel_last = channel_last
        self.scale = nn.Parameter(torch.full((channels,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x if self.channel_last else self.scale[:, None] * x

    def add_to(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``residual + self(x)`` in one pass (addcmul)."""
        return torch.addcmul(residual, self.scale if self.channel_last else self.scale[:, None], x)


def _residual(x: torch.Tensor, gamma: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """``x + gamma(y)``; a LayerScale gamma in one pass."""
    return gamma.add_to(x, y) if isinstance(gamma, LayerScale) else x + gamma(y)


class BLSTM(nn.Module):
    """Bidirectional LSTM over time with a linear projection back to ``dim`` (Demucs v3 DConv).

    Inputs longer than ``max_steps`` are cut in half-overlapping frames processed
    independently; the centre of each frame is kept.
    """

    def __init__(self, dim: int, layers: int = 1, max_steps: int | None = None, skip: bool = False):
        super().__init__()
        self.max_steps = max_steps
        self.lstm = nn.LSTM(bidirectional=True, num_layers=layers, hidden_size=dim, input_size=dim)
        self.linear = nn.Linear(2 * dim, dim)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        y = x
        framed = self.max_steps is not None and t > self.max_steps
        if framed:
            width = self.max_steps
            stride = width // 2
            n_frames = math.ceil(t / stride)
            padded = F.pad(x, (0, (n_frames - 1) * stride + width - t)).contiguous()
            frames = padded.unfold(-1, width, stride)  # [b, c, n_frames, width]
            x = frames.permute(0, 2, 1, 3).reshape(-1, c, width)
        x = self.linear(self.lstm(x.permute(2, 0, 1))[0]).permute(1, 2, 0)
        if framed:
            frames = x.reshape(b, -1, c, width)
            limit = stride // 2
            parts = [frames[:, 0, :, :-limit]]
            parts += [frames[:, k, :, limit:-limit] for k in range(1, n_frames - 1)]
            if n_frames > 1:
                parts.append(frames[:, -1, :, limit:])
            x = torch.cat(parts, -1)[..., :t]
        return x + y if self.skip else x


class LocalState(nn.Module):
    """Content-based local attention over time with learnt decay penalties (Demucs v3 DConv).

    Each time step attends to all others (never itself) with logits penalised in proportion
    to the distance, at ``ndecay`` learnt rates per head.
    """

    def __init__(self, channels: int, heads: int = 4, ndecay: int = 4):
        super().__init__()
        self.heads = heads
        self.ndecay = ndecay
        self.content = nn.Conv1d(channels, channels, 1)
        self.query = nn.Conv1d(channels, channels, 1)
        self.key = nn.Conv1d(channels, channels, 1)
        if ndecay:
            self.query_decay = nn.Conv1d(channels, heads * ndecay, 1)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        heads = self.heads
        indexes = torch.arange(t, device=x.device, dtype=x.dtype)
        delta = indexes[:, None] - indexes[None, :]
        queries = self.query(x).view(b, heads, -1, t)
        keys = self.key(x).view(b, heads, -1, t)
        dots = torch.einsum("bhct,bhcs->bhts", keys, queries) / keys.shape[2] ** 0.5
        if self.ndecay:
            decays = torch.arange(1, self.ndecay + 1, device=x.device, dtype=x.dtype)
            decay_q = torch.sigmoid(self.query_decay(x).view(b, heads, -1, t)) / 2
            decay_kernel = -decays.view(-1, 1, 1) * delta.abs() / self.ndecay ** 0.5
            dots = dots + torch.einsum("fts,bhfs->bhts", decay_kernel, decay_q)
        dots = dots.masked_fill(torch.eye(t, device=x.device, dtype=torch.bool), -100)
        weights = torch.softmax(dots, dim=2)
        content = self.content(x).view(b, heads, -1, t)
        result = torch.einsum("bhts,bhct->bhcs", weights, content).reshape(b, -1, t)
        return x + self.proj(result)


def conv1d_as_matmul(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a stride-1, ungrouped, same-length Conv1d, as batched matrix products.

    DConv's convolutions have few channels (``channels / 8``) and, in the frequency branch, one batch row per
    frequency: oneDNN runs such shapes far below the matrix-product rate. A kernel-1 conv is one ``baddbmm``;
    a kernel-k conv (padding ``dilation * (k // 2)``) is one product by the k weight slices stacked, whose
    k outputs are added shifted by the dilation. Same sums as the convolution, in another order (float
    rounding). Other convolutions run as they are.
    """
    (k,), (dilation,), padding = conv.kernel_size, conv.dilation, conv.padding
    if (x.dim() != 3 or conv.groups != 1 or conv.stride != (1,) or conv.padding_mode != "zeros"
            or not isinstance(padding, tuple) or padding[0] != dilation * (k // 2) or k % 2 == 0
            or x.shape[-1] <= dilation * (k // 2)):
        return conv(x)
    weight, bias = conv.weight, conv.bias
    batch, cin, length = x.shape
    cout = weight.shape[0]
    if k == 1:
        w = weight[:, :, 0].expand(batch, cout, cin)
        return torch.bmm(w, x) if bias is None else torch.baddbmm(bias[None, :, None], w, x)
    taps = torch.matmul(weight.permute(2, 0, 1).reshape(k * cout, cin), x).view(batch, k, cout, length)
    centre = k // 2
    out = taps[:, centre] if bias is None else taps[:, centre] + bias[:, None]
    if bias is None:
        out = out.clone()
    for j in range(k):
        shift = (j - centre) * dilation  # output t reads input t + shift
        if shift > 0:
            out[..., :-shift] += taps[:, j, :, shift:]
        elif shift < 0:
            out[..., -shift:] += taps[:, j, :, :shift]
    return out


class DConv(nn.Module):
    """Residual branch of dilated 1-D convolutions used inside each encoder/decoder layer.

    Each of ``|depth|`` layers: conv(k=3, dilation 2**d) -> GroupNorm(1) -> GELU [-> BLSTM]
    [-> LocalState] -> 1x1 conv to 2*channels -> GroupNorm(1) -> GLU -> LayerScale, added to
    its input. The Sequential indices are those of the checkpoints.
    """

    def __init__(self, channels: int, compress: float = 4, depth: int = 2, init: float = 1e-4,
                 norm: bool = True, attn: bool = False, heads: int = 4, ndecay: int = 4, lstm: bool = False,
                 gelu: bool = True, kernel: int = 3):
        super().__init__()
        dilate = depth > 0
        hidden = int(channels / compress)

        def norm_fn(d: int) -> nn.Module:
            return nn.GroupNorm(1, d) if norm else nn.Identity()

        self.layers = nn.ModuleList()
        for d in range(abs(depth)):
            dilation = 2 ** d if dilate else 1
            mods: list[nn.Module] = [
                nn.Conv1d(channels, hidden, kernel, dilation=dilation, padding=dilation * (kernel // 2)),
                norm_fn(hidden),
                nn.GELU() if gelu else nn.ReLU(),
                nn.Conv1d(hidden, 2 * channels, 1),
                norm_fn(2 * channels),
                nn.GLU(1),
                LayerScale(channels, init),
            ]
            if attn:
                mods.insert(3, LocalState(hidden, heads=heads, ndecay=ndecay))
            if lstm:
                mods.insert(3, BLSTM(hidden, layers=2, max_steps=200, skip=True))
            self.layers.append(nn.Sequential(*mods))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            *body, last = layer
            y = x
            for module in body:
                y = conv1d_as_matmul(module, y) if type(module) is nn.Conv1d else module(y)
            x = _residual(x, last, y)  # the LayerScale and the residual add in one pass
        return x


class ScaledEmbedding(nn.Module):
    """Embedding whose output is multiplied by ``scale`` (frequency embedding of the first layer)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, scale: float = 10.0, smooth: bool = False):
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)
        if smooth:
            weight = torch.cumsum(self.embedding.weight.data, dim=0)
            weight = weight / torch.arange(1, num_embeddings + 1).to(weight).sqrt()[:, None]
            self.embedding.weight.data[:] = weight
        self.embedding.weight.data /= scale
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x) * self.scale


def _norm(norm: bool, groups: int, channels: int) -> nn.Module:
    return nn.GroupNorm(groups, channels) if norm else nn.Identity()


class HEncLayer(nn.Module):
    """Encoder layer of the frequency branch (2-D convs over [freq, time]) or the time branch (1-D)."""

    def __init__(self, chin: int, chout: int, kernel_size: int = 8, stride: int = 4, norm_groups: int = 1,
                 empty: bool = False, freq: bool = True, dconv: bool = True, norm: bool = True,
                 context: int = 0, dconv_kw: dict | None = None, pad: bool = True, rewrite: bool = True):
        super().__init__()
        pad_size = kernel_size // 4 if pad else 0
        self.freq = freq
        self.kernel_size = kernel_size
        self.stride = stride
        self.empty = empty
        self.norm = norm
        self.pad = pad_size
        if freq:
            self.conv: nn.Module = nn.Conv2d(chin, chout, [kernel_size, 1], [stride, 1], [pad_size, 0])
            klass: Any = nn.Conv2d
        else:
            self.conv = nn.Conv1d(chin, chout, kernel_size, stride, pad_size)
            klass = nn.Conv1d
        if empty:
            return
        self.norm1 = _norm(norm, norm_groups, chout)
        self.rewrite = None
        if rewrite:
            self.rewrite = klass(chout, 2 * chout, 1 + 2 * context, 1, context)
            self.norm2 = _norm(norm, norm_groups, 2 * chout)
        self.dconv = DConv(chout, **(dconv_kw or {})) if dconv else None

    def forward(self, x: torch.Tensor, inject: torch.Tensor | None = None) -> torch.Tensor:
        if not self.freq:
            if x.dim() == 4:
                b, c, fr, t = x.shape
                x = x.view(b, -1, t)
            le = x.shape[-1]
            if le % self.stride:
                x = F.pad(x, (0, self.stride - le % self.stride))
        y = self.conv(x)
        if self.empty:
            return y
        if inject is not None:
            if inject.dim() == 3 and y.dim() == 4:
                inject = inject[:, :, None]
            y = y + inject
        y = F.gelu(self.norm1(y))
        if self.dconv is not None:
            if self.freq:
                b, c, fr, t = y.shape
                y = self.dconv(y.permute(0, 2, 1, 3).reshape(-1, c, t)).view(b, fr, c, t).permute(0, 2, 1, 3)
            else:
                y = self.dconv(y)
        if self.rewrite is not None:
            return F.glu(self.norm2(self.rewrite(y)), dim=1)
        return y


class HDecLayer(nn.Module):
    """Decoder layer: skip add, 1x1 rewrite + GLU, DConv, transposed conv."""

    def __init__(self, chin: int, chout: int, last: bool = False, kernel_size: int = 8, stride: int = 4,
                 norm_groups: int = 1, empty: bool = False, freq: bool = True, dconv: bool = True,
                 norm: bool = True, context: int = 1, dconv_kw: dict | None = None, pad: bool = True,
                 context_freq: bool = True, rewrite: bool = True):
        super().__init__()
        self.pad = kernel_size // 4 if pad else 0
        self.last = last
        self.freq = freq
        self.chin = chin
        self.empty = empty
        self.stride = stride
        self.kernel_size = kernel_size
        self.norm = norm
        self.context_freq = context_freq
        if freq:
            self.conv_tr: nn.Module = nn.ConvTranspose2d(chin, chout, [kernel_size, 1], [stride, 1])
            klass: Any = nn.Conv2d
        else:
            self.conv_tr = nn.ConvTranspose1d(chin, chout, kernel_size, stride)
            klass = nn.Conv1d
        self.norm2 = _norm(norm, norm_groups, chout)
        if empty:
            return
        self.rewrite = None
        if rewrite:
            if context_freq:
                self.rewrite = klass(chin, 2 * chin, 1 + 2 * context, 1, context)
            else:
                self.rewrite = klass(chin, 2 * chin, [1, 1 + 2 * context], 1, [0, context])
            self.norm1 = _norm(norm, norm_groups, 2 * chin)
        self.dconv = DConv(chin, **(dconv_kw or {})) if dconv else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.freq and x.dim() == 3:
            b, c, t = x.shape
            x = x.view(b, self.chin, -1, t)
        if not self.empty:
            x = x + skip
            y = F.glu(self.norm1(self.rewrite(x)), dim=1) if self.rewrite is not None else x
            if self.dconv is not None:
                if self.freq:
                    b, c, fr, t = y.shape
                    y = self.dconv(y.permute(0, 2, 1, 3).reshape(-1, c, t)).view(b, fr, c, t).permute(0, 2, 1, 3)
                else:
                    y = self.dconv(y)
        else:
            y = x
        z = self.norm2(self.conv_tr(y))
        if self.freq:
            if self.pad:
                z = z[..., self.pad:-self.pad, :]
        else:
            z = z[..., self.pad:self.pad + length]
        if not self.last:
            z = F.gelu(z)
        return z, y


# ------------------------------------------------------------------------- transformer


def sin_embedding(length: int, dim: int, device: torch.device, max_period: float = 10000.0) -> torch.Tensor:
    """1-D sinusoidal positional embedding, [length, 1, dim] (cos half, then sin half)."""
    pos = torch.arange(length, device=device).view(-1, 1, 1)
    half = dim // 2
    adim = torch.arange(half, device=device).view(1, 1, -1)
    phase = pos / (max_period ** (adim / (half - 1)))
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


def cape_embedding(length: int, dim: int, batch: int, mean_normalize: bool, device: torch.device,
                   max_period: float = 10000.0) -> torch.Tensor:
    """CAPE positional embedding at inference (no augmentation), [length, batch, dim]."""
    pos = 1.0 * torch.arange(length).view(-1, 1, 1).repeat(1, batch, 1)
    if mean_normalize:
        pos -= torch.nanmean(pos, dim=0, keepdim=True)
    pos = pos.to(device)
    half = dim // 2
    adim = torch.arange(half, device=device).view(1, 1, -1)
    phase = pos / (max_period ** (adim / (half - 1)))
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1).float()


def sin_embedding_2d(d_model: int, height: int, width: int, device: torch.device,
                     max_period: float = 10000.0) -> torch.Tensor:
    """2-D sinusoidal embedding [1, d_model, height, width]: first half of the channels encode
    the width (time) position, the second half the height (frequency) position."""
    if d_model % 4:
        raise ValueError(f"2-D sinusoidal embedding needs a dimension divisible by 4, got {d_model}")
    pe = torch.zeros(d_model, height, width)
    half = d_model // 2
    div_term = torch.exp(torch.arange(0.0, half, 2) * -(math.log(max_period) / half))
    pos_w = torch.arange(0.0, width).unsqueeze(1)
    pos_h = torch.arange(0.0, height).unsqueeze(1)
    pe[0:half:2] = torch.sin(pos_w * div_term).transpose(0, 1).unsqueeze(1).repeat(1, height, 1)
    pe[1:half:2] = torch.cos(pos_w * div_term).transpose(0, 1).unsqueeze(1).repeat(1, height, 1)
    pe[half::2] = torch.sin(pos_h * div_term).transpose(0, 1).unsqueeze(2).repeat(1, 1, width)
    pe[half + 1::2] = torch.cos(pos_h * div_term).transpose(0, 1).unsqueeze(2).repeat(1, 1, width)
    return pe[None].to(device)


class TokenGroupNorm(nn.GroupNorm):
    """GroupNorm over [batch, tokens, channels] (normalises tokens and channels together)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _token_norm(group_norm: int, dim: int, eps: float) -> nn.Module:
    return TokenGroupNorm(int(group_norm), dim, eps=eps) if group_norm else nn.LayerNorm(dim, eps=eps)


def _attention(mha: nn.MultiheadAttention, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    """``mha(q, kv, kv)`` (batch first, no mask, eval) through ``F.scaled_dot_product_attention``.

    Same parameters and maths as nn.MultiheadAttention; on the CPU its inference fast path multiplies
    queries and keys with plain bmm and a separate softmax, while scaled_dot_product_attention runs a fused
    flash kernel (issue 17: about 2x less time in HTDemucs's self-attention).
    """
    b, lq, dim = q.shape
    heads = mha.num_heads
    weight, bias = mha.in_proj_weight, mha.in_proj_bias
    if q is kv:
        queries, keys, values = F.linear(q, weight, bias).chunk(3, dim=-1)
    else:
        queries = F.linear(q, weight[:dim], None if bias is None else bias[:dim])
        keys, values = F.linear(kv, weight[dim:], None if bias is None else bias[dim:]).chunk(2, dim=-1)

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (heads, dim // heads)).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(queries), split(keys), split(values))
    return mha.out_proj(out.transpose(1, 2).reshape(b, lq, dim))


class SelfAttentionLayer(nn.Module):
    """Transformer encoder layer (self-attention + feed-forward), batch first, eval only.

    Same parameters as ``torch.nn.TransformerEncoderLayer`` plus LayerScale (gamma_1/2) and
    an optional output GroupNorm (``norm_out``), as in the published checkpoints.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, activation: Any, group_norm: int = 0,
                 norm_first: bool = False, norm_out: bool = False, layer_scale: bool = False,
                 init_values: float = 1e-4, layer_norm_eps: float = 1e-5):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = _token_norm(group_norm, d_model, layer_norm_eps)
        self.norm2 = _token_norm(group_norm, d_model, layer_norm_eps)
        self.norm_first = norm_first
        self.norm_out = TokenGroupNorm(int(norm_out), d_model) if (norm_first and norm_out) else None
        self.gamma_1 = LayerScale(d_model, init_values, True) if layer_scale else nn.Identity()
        self.gamma_2 = LayerScale(d_model, init_values, True) if layer_scale else nn.Identity()
        self.activation = activation

    def _sa(self, x: torch.Tensor) -> torch.Tensor:
        return _attention(self.self_attn, x, x)

    def _ff(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.activation(self.linear1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = _residual(x, self.gamma_1, self._sa(self.norm1(x)))
            x = _residual(x, self.gamma_2, self._ff(self.norm2(x)))
            if self.norm_out is not None:
                x = self.norm_out(x)
            return x
        x = self.norm1(_residual(x, self.gamma_1, self._sa(x)))
        return self.norm2(_residual(x, self.gamma_2, self._ff(x)))


class CrossAttentionLayer(nn.Module):
    """Cross-attention layer: queries from one branch, keys/values from the other, then feed-forward."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, activation: Any, group_norm: int = 0,
                 norm_first: bool = False, norm_out: bool = False, layer_scale: bool = False,
                 init_values: float = 1e-4, layer_norm_eps: float = 1e-5):
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(d_model, nhead, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm_first = norm_first
        self.norm1 = _token_norm(group_norm, d_model, layer_norm_eps)
        self.norm2 = _token_norm(group_norm, d_model, layer_norm_eps)
        self.norm3 = _token_norm(group_norm, d_model, layer_norm_eps)
        self.norm_out = TokenGroupNorm(int(norm_out), d_model) if (norm_first and norm_out) else None
        self.gamma_1 = LayerScale(d_model, init_values, True) if layer_scale else nn.Identity()
        self.gamma_2 = LayerScale(d_model, init_values, True) if layer_scale else nn.Identity()
        self.activation = activation

    def _ca(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return _attention(self.cross_attn, q, k)

    def _ff(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.activation(self.linear1(x)))

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = _residual(q, self.gamma_1, self._ca(self.norm1(q), self.norm2(k)))
            x = _residual(x, self.gamma_2, self._ff(self.norm3(x)))
            if self.norm_out is not None:
                x = self.norm_out(x)
            return x
        x = self.norm1(_residual(q, self.gamma_1, self._ca(q, k)))
        return self.norm2(_residual(x, self.gamma_2, self._ff(x)))


class CrossTransformerEncoder(nn.Module):
    """Two parallel stacks (spectral tokens ``layers``, waveform tokens ``layers_t``) alternating
    self-attention layers and cross-attention layers between the branches."""

    def __init__(self, dim: int, emb: str = "sin", hidden_scale: float = 4.0, num_heads: int = 8,
                 num_layers: int = 6, cross_first: bool = False, max_positions: int = 1000,
                 norm_in: bool = True, norm_in_group: bool = False, group_norm: int = False,
                 norm_first: bool = False, norm_out: bool = False, max_period: float = 10000.0,
                 layer_scale: bool = False, gelu: bool = True, weight_pos_embed: float = 1.0,
                 cape_mean_normalize: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"transformer dimension {dim} is not divisible by {num_heads} heads")
        if emb not in ("sin", "cape", "scaled"):
            raise NotImplementedError(f"unknown transformer embedding {emb!r}")
        hidden = int(dim * hidden_scale)
        self.num_layers = num_layers
        self.classic_parity = 1 if cross_first else 0
        self.emb = emb
        self.max_period = max_period
        self.weight_pos_embed = weight_pos_embed
        self.cape_mean_normalize = cape_mean_normalize
        if emb == "scaled":
            self.position_embeddings = _BoostedEmbedding(max_positions, dim)
        if norm_in:
            self.norm_in: nn.Module = nn.LayerNorm(dim)
            self.norm_in_t: nn.Module = nn.LayerNorm(dim)
        elif norm_in_group:
            self.norm_in = TokenGroupNorm(int(norm_in_group), dim)
            self.norm_in_t = TokenGroupNorm(int(norm_in_group), dim)
        else:
            self.norm_in = nn.Identity()
            self.norm_in_t = nn.Identity()
        common = dict(d_model=dim, nhead=num_heads, dim_feedforward=hidden, activation=F.gelu if gelu else F.relu,
                      group_norm=group_norm, norm_first=norm_first, norm_out=norm_out, layer_scale=layer_scale)
        self.layers = nn.ModuleList()
        self.layers_t = nn.ModuleList()
        for idx in range(num_layers):
            klass = SelfAttentionLayer if idx % 2 == self.classic_parity else CrossAttentionLayer
            self.layers.append(klass(**common))
            self.layers_t.append(klass(**common))

    def _pos_embedding(self, length: int, batch: int, dim: int, device: torch.device) -> torch.Tensor:
        if self.emb == "sin":
            return sin_embedding(length, dim, device, self.max_period)
        if self.emb == "cape":
            return cape_embedding(length, dim, batch, self.cape_mean_normalize, device, self.max_period)
        return self.position_embeddings(torch.arange(length, device=device))[:, None]

    def forward(self, x: torch.Tensor, xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, fr, t1 = x.shape
        pos_2d = sin_embedding_2d(c, fr, t1, x.device, self.max_period)
        pos_2d = pos_2d.permute(0, 3, 2, 1).reshape(1, t1 * fr, c)  # tokens ordered (t1, fr)
        x = x.permute(0, 3, 2, 1).reshape(b, t1 * fr, c)
        x = self.norm_in(x) + self.weight_pos_embed * pos_2d

        _, _, t2 = xt.shape
        xt = xt.permute(0, 2, 1)
        pos = self._pos_embedding(t2, b, c, x.device).permute(1, 0, 2)
        xt = self.norm_in_t(xt) + self.weight_pos_embed * pos

        for idx in range(self.num_layers):
            if idx % 2 == self.classic_parity:
                x = self.layers[idx](x)
                xt = self.layers_t[idx](xt)
            else:
                old_x = x
                x = self.layers[idx](x, xt)
                xt = self.layers_t[idx](xt, old_x)

        x = x.reshape(b, t1, fr, c).permute(0, 3, 2, 1)
        xt = xt.permute(0, 2, 1)
        return x, xt


class _BoostedEmbedding(nn.Module):
    """Learnt positional embedding multiplied by a constant boost (``t_emb="scaled"``)."""

    def __init__(self, num_embeddings: int, dim: int, scale: float = 0.2, boost: float = 3.0):
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, dim)
        self.embedding.weight.data *= scale / boost
        self.boost = boost

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(x) * self.boost


# ------------------------------------------------------------------------------ HTDemucs


class HTDemucs(nn.Module):
    """Hybrid Transformer Demucs: a spectrogram U-Net and a waveform U-Net joined by a
    cross-domain transformer at their bottom; outputs are summed.

    The constructor takes the checkpoint's ``kwargs`` (names and defaults of the published
    class). Inference pads every input to the training segment (``segment`` seconds) unless
    ``use_train_segment`` is False, as the published models were trained at that length.
    """

    def __init__(  # noqa: PLR0913, PLR0915 - the checkpoint's own signature
        self,
        sources: list[str],
        audio_channels: int = 2,
        channels: int = 48,
        channels_time: int | None = None,
        growth: float = 2,
        nfft: int = 4096,
        wiener_iters: int = 0,
        end_iters: int = 0,
        wiener_residual: bool = False,
        cac: bool = True,
        depth: int = 4,
        rewrite: bool = True,
        multi_freqs: list | None = None,
        multi_freqs_depth: int = 3,
        freq_emb: float = 0.2,
        emb_scale: float = 10,
        emb_smooth: bool = True,
        kernel_size: int = 8,
        time_stride: int = 2,
        stride: int = 4,
        context: int = 1,
        context_enc: int = 0,
        norm_starts: int = 4,
        norm_groups: int = 4,
        dconv_mode: int = 1,
        dconv_depth: int = 2,
        dconv_comp: float = 8,
        dconv_init: float = 1e-3,
        bottom_channels: int = 0,
        t_layers: int = 5,
        t_emb: str = "sin",
        t_hidden_scale: float = 4.0,
        t_heads: int = 8,
        t_dropout: float = 0.0,
        t_max_positions: int = 10000,
        t_norm_in: bool = True,
        t_norm_in_group: bool = False,
        t_group_norm: bool = False,
        t_norm_first: bool = True,
        t_norm_out: bool = True,
        t_max_period: float = 10000.0,
        t_weight_decay: float = 0.0,
        t_lr: float | None = None,
        t_layer_scale: bool = True,
        t_gelu: bool = True,
        t_weight_pos_embed: float = 1.0,
        t_sin_random_shift: int = 0,
        t_cape_mean_normalize: bool = True,
        t_cape_augment: bool = True,
        t_cape_glob_loc_scale: list | None = None,
        t_sparse_self_attn: bool = False,
        t_sparse_cross_attn: bool = False,
        t_mask_type: str = "diag",
        t_mask_random_seed: int = 42,
        t_sparse_attn_window: int = 500,
        t_global_window: int = 100,
        t_sparsity: float = 0.95,
        t_auto_sparsity: bool = False,
        t_cross_first: bool = False,
        rescale: float = 0.1,
        samplerate: int = 44100,
        segment: float | Fraction = 10,
        use_train_segment: bool = True,
    ):
        super().__init__()
        if not cac:
            raise NotImplementedError("HTDemucs without complex-as-channels (Wiener filtering) is not supported")
        if multi_freqs:
            raise NotImplementedError("HTDemucs with multi_freqs band splitting is not supported")
        if t_sparse_self_attn or t_sparse_cross_attn:
            raise NotImplementedError("HTDemucs with sparse attention (xformers) is not supported")
        self.cac = cac
        self.audio_channels = audio_channels
        self.sources = list(sources)
        self.kernel_size = kernel_size
        self.context = context
        self.stride = stride
        self.depth = depth
        self.bottom_channels = bottom_channels
        self.channels = channels
        self.samplerate = samplerate
        self.segment = segment
        self.use_train_segment = use_train_segment
        self.nfft = nfft
        self.hop_length = nfft // 4
        self.freq_emb = None

        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.tencoder = nn.ModuleList()
        self.tdecoder = nn.ModuleList()

        chin = audio_channels
        chin_z = chin * 2  # complex as channels
        chout = channels_time or channels
        chout_z = channels
        freqs = nfft // 2

        for index in range(depth):
            norm = index >= norm_starts
            freq = freqs > 1
            stri, ker = stride, kernel_size
            if not freq:
                ker, stri = time_stride * 2, time_stride
            pad, last_freq = True, False
            if freq and freqs <= kernel_size:
                ker, pad, last_freq = freqs, False, True
            kw = dict(kernel_size=ker, stride=stri, freq=freq, pad=pad, norm=norm, rewrite=rewrite,
                      norm_groups=norm_groups,
                      dconv_kw=dict(depth=dconv_depth, compress=dconv_comp, init=dconv_init, gelu=True))
            kwt = dict(kw, freq=False, kernel_size=kernel_size, stride=stride, pad=True)
            if last_freq:
                chout_z = max(chout, chout_z)
                chout = chout_z

            self.encoder.append(HEncLayer(chin_z, chout_z, dconv=bool(dconv_mode & 1), context=context_enc, **kw))
            if freq:
                self.tencoder.append(HEncLayer(chin, chout, dconv=bool(dconv_mode & 1), context=context_enc,
                                               empty=last_freq, **kwt))
            if index == 0:
                chin = audio_channels * len(self.sources)
                chin_z = chin * 2
            self.decoder.insert(0, HDecLayer(chout_z, chin_z, dconv=bool(dconv_mode & 2), last=index == 0,
                                             context=context, **kw))
            if freq:
                self.tdecoder.insert(0, HDecLayer(chout, chin, dconv=bool(dconv_mode & 2), empty=last_freq,
                                                  last=index == 0, context=context, **kwt))
            chin, chin_z = chout, chout_z
            chout, chout_z = int(growth * chout), int(growth * chout_z)
            if freq:
                freqs = 1 if freqs <= kernel_size else freqs // stride
            if index == 0 and freq_emb:
                self.freq_emb = ScaledEmbedding(freqs, chin_z, smooth=emb_smooth, scale=emb_scale)
                self.freq_emb_scale = freq_emb

        transformer_channels = int(channels * growth ** (depth - 1))
        if bottom_channels:
            self.channel_upsampler = nn.Conv1d(transformer_channels, bottom_channels, 1)
            self.channel_downsampler = nn.Conv1d(bottom_channels, transformer_channels, 1)
            self.channel_upsampler_t = nn.Conv1d(transformer_channels, bottom_channels, 1)
            self.channel_downsampler_t = nn.Conv1d(bottom_channels, transformer_channels, 1)
            transformer_channels = bottom_channels

        self.crosstransformer = None
        if t_layers > 0:
            self.crosstransformer = CrossTransformerEncoder(
                dim=transformer_channels, emb=t_emb, hidden_scale=t_hidden_scale, num_heads=t_heads,
                num_layers=t_layers, cross_first=t_cross_first, max_positions=t_max_positions,
                norm_in=t_norm_in, norm_in_group=t_norm_in_group, group_norm=t_group_norm,
                norm_first=t_norm_first, norm_out=t_norm_out, max_period=t_max_period,
                layer_scale=t_layer_scale, gelu=t_gelu, weight_pos_embed=t_weight_pos_embed,
                cape_mean_normalize=t_cape_mean_normalize)

    # -- spectrogram helpers

    def _spec(self, x: torch.Tensor) -> torch.Tensor:
        hl = self.hop_length
        le = int(math.ceil(x.shape[-1] / hl))
        pad = hl // 2 * 3
        x = pad1d(x, (pad, pad + le * hl - x.shape[-1]), mode="reflect")
        z = spectro(x, self.nfft, hl)[..., :-1, :]
        return z[..., 2:2 + le]

    def _ispec(self, z: torch.Tensor, length: int) -> torch.Tensor:
        hl = self.hop_length
        z = F.pad(z, (0, 0, 0, 1))
        z = F.pad(z, (2, 2))
        pad = hl // 2 * 3
        le = hl * int(math.ceil(length / hl)) + 2 * pad
        x = ispectro(z, hl, length=le)
        return x[..., pad:pad + length]

    @staticmethod
    def _magnitude(z: torch.Tensor) -> torch.Tensor:
        b, c, fr, t = z.shape
        return torch.view_as_real(z).permute(0, 1, 4, 2, 3).reshape(b, c * 2, fr, t)

    @staticmethod
    def _mask(m: torch.Tensor) -> torch.Tensor:
        b, s, c, fr, t = m.shape
        out = m.view(b, s, -1, 2, fr, t).permute(0, 1, 2, 4, 5, 3)
        return torch.view_as_complex(out.contiguous())

    def training_length(self) -> int:
        """Samples of the segment the model runs at (``segment`` seconds at ``samplerate``)."""
        return int(self.segment * self.samplerate)

    def valid_length(self, length: int) -> int:
        """Length to pad a chunk of ``length`` samples to before :meth:`forward`."""
        if not self.use_train_segment:
            return length
        training_length = self.training_length()
        if training_length < length:
            raise ValueError(f"Given length {length} is longer than training length {training_length}")
        return training_length

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix [batch, audio_channels, samples] -> [batch, sources, audio_channels, samples]."""
        length = mix.shape[-1]
        length_pre_pad = None
        out_length = length
        if self.use_train_segment:
            out_length = self.training_length()
            if length < out_length:
                length_pre_pad = length
                mix = F.pad(mix, (0, out_length - length))
        z = self._spec(mix)
        x = self._magnitude(z).to(mix.device)
        b, c, fq, t = x.shape

        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) / (1e-5 + std)

        xt = mix
        meant = xt.mean(dim=(1, 2), keepdim=True)
        stdt = xt.std(dim=(1, 2), keepdim=True)
        xt = (xt - meant) / (1e-5 + stdt)

        saved: list[torch.Tensor] = []
        saved_t: list[torch.Tensor] = []
        lengths: list[int] = []
        lengths_t: list[int] = []
        for idx, encode in enumerate(self.encoder):
            lengths.append(x.shape[-1])
            inject = None
            if idx < len(self.tencoder):
                lengths_t.append(xt.shape[-1])
                tenc = self.tencoder[idx]
                xt = tenc(xt)
                if not tenc.empty:
                    saved_t.append(xt)
                else:
                    inject = xt
            x = encode(x, inject)
            if idx == 0 and self.freq_emb is not None:
                frs = torch.arange(x.shape[-2], device=x.device)
                emb = self.freq_emb(frs).t()[None, :, :, None].expand_as(x)
                x = x + self.freq_emb_scale * emb
            saved.append(x)

        if self.crosstransformer is not None:
            if self.bottom_channels:
                bb, cc, ff, tt = x.shape
                x = self.channel_upsampler(x.reshape(bb, cc, ff * tt)).view(bb, -1, ff, tt)
                xt = self.channel_upsampler_t(xt)
            x, xt = self.crosstransformer(x, xt)
            if self.bottom_channels:
                bb, cc, ff, tt = x.shape
                x = self.channel_downsampler(x.reshape(bb, cc, ff * tt)).view(bb, -1, ff, tt)
                xt = self.channel_downsampler_t(xt)

        offset = self.depth - len(self.tdecoder)
        for idx, decode in enumerate(self.decoder):
            skip = saved.pop(-1)
            x, pre = decode(x, skip, lengths.pop(-1))
            if idx >= offset:
                tdec = self.tdecoder[idx - offset]
                length_t = lengths_t.pop(-1)
                if tdec.empty:
                    xt, _ = tdec(pre[:, :, 0], None, length_t)
                else:
                    xt, _ = tdec(xt, saved_t.pop(-1), length_t)

        s = len(self.sources)
        x = x.view(b, s, -1, fq, t)
        x = x * std[:, None] + mean[:, None]
        on_cpu = x.device.type not in ("cuda", "cpu")  # complex ops: CPU fallback for MPS and others
        device = x.device
        if on_cpu:
            x = x.cpu()
        x = self._ispec(self._mask(x), out_length)
        if on_cpu:
            x = x.to(device)
        xt = xt.view(b, s, -1, out_length)
        xt = xt * stdt[:, None] + meant[:, None]
        x = xt + x
        if length_pre_pad:
            x = x[..., :length_pre_pad]
        return x
