"""The SCNet networks of MSST: ``scnet``, ``scnet_masked`` and ``scnet_tran``.

SCNet (Sparse Compression Network, Tong et al. 2024, arXiv:2401.13276) works on the complex STFT
of each channel, stacked as real/imaginary feature channels. An encoder of "sparse down-sample"
blocks splits the frequency axis into a low, mid and high band and compresses each with its own
stride (high bands the most), a separation network runs dual-path layers over (frequency, time)
with an FFT along time between them, and a mirrored decoder ("sparse up-sample" blocks with skip
fusion) returns one spectrogram per source, inverted by the iSTFT.

- ``scnet`` and ``scnet_tran``: the decoder's output is the source spectrogram; rectangular STFT window.
- ``scnet_masked``: a learned frequency position embedding is added to the input features, a small
  conv head turns the decoder's output into a complex mask (tanh-bounded real and imaginary parts)
  that multiplies the mixture; Hann STFT window.
- ``scnet_tran``: the dual-path BiLSTMs are replaced by small transformers (RMSNorm, gated
  attention with rotary positions, GELU feed-forward).

Module and parameter names follow MSST's state dicts (``encoder.0.SDlayer.convs.0.weight``, ...)
so its checkpoints load strictly. Written for vsep from the paper and MSST's behaviour; the rotary
positions are computed here (what ``rotary-embedding-torch`` computes with its defaults) rather
than adding that dependency for twenty lines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

SCNET = "scnet"
SCNET_MASKED = "scnet_masked"
SCNET_TRAN = "scnet_tran"
MODEL_TYPES = (SCNET, SCNET_MASKED, SCNET_TRAN)


@dataclass(frozen=True)
class SCNetConfig:
    """The ``model:`` section of an MSST SCNet yaml (MSST's defaults where a key is absent)."""

    sources: tuple[str, ...] = ("drums", "bass", "other", "vocals")
    audio_channels: int = 2
    dims: tuple[int, ...] = (4, 32, 64, 128)
    nfft: int = 4096
    hop_size: int = 1024
    win_size: int = 4096
    normalized: bool = True
    band_SR: tuple[float, float, float] = (0.175, 0.392, 0.433)  # noqa: N815 - the yaml's key
    band_stride: tuple[int, int, int] = (1, 4, 16)
    band_kernel: tuple[int, int, int] = (3, 4, 16)
    conv_depths: tuple[int, int, int] = (3, 2, 1)
    compress: int = 4
    conv_kernel: int = 3
    num_dplayer: int = 6
    expand: int = 1
    tran_rotary_embedding_dim: int = 64
    tran_depth: int = 1
    tran_heads: int = 8
    tran_dim_head: int = 64
    tran_attn_dropout: float = 0.0
    tran_ff_dropout: float = 0.0
    tran_flash_attn: bool = False
    extra: dict = field(default_factory=dict, compare=False)


# ----------------------------------------------------------------------------------------------
# encoder / decoder pieces


class ConvolutionModule(nn.Module):
    """Residual stack of (GroupNorm, conv + GLU, depthwise conv, GroupNorm, SiLU, 1x1 conv) over [N, C, T]."""

    def __init__(self, channels: int, depth: int, compress: float, kernel: int):
        super().__init__()
        hidden = int(channels / compress)
        pad = kernel // 2
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.GroupNorm(1, channels),
                nn.Conv1d(channels, hidden * 2, kernel, padding=pad),
                nn.GLU(1),
                nn.Conv1d(hidden, hidden, kernel, padding=pad, groups=hidden),
                nn.GroupNorm(1, hidden),
                nn.SiLU(),
                nn.Conv1d(hidden, channels, 1),
            )
            for _ in range(abs(depth))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for layer in self.layers:
            x = x + layer(x)
        return x


def band_edges(freqs: int, proportions: Sequence[float]) -> list[tuple[int, int]]:
    """[start, end) of the low, mid and high band of `freqs` bins (ceil of the cumulative proportions)."""
    low = math.ceil(freqs * proportions[0])
    mid = math.ceil(freqs * (proportions[0] + proportions[1]))
    return [(0, low), (low, mid), (mid, freqs)]


class SDlayer(nn.Module):
    """Sparse down-sampling: one strided conv along frequency per band."""

    def __init__(self, cin: int, cout: int, cfg: SCNetConfig):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, (k, 1), (s, 1))
                                   for k, s in zip(cfg.band_kernel, cfg.band_stride, strict=True))
        self.strides = list(cfg.band_stride)
        self.kernels = list(cfg.band_kernel)
        self.proportions = list(cfg.band_SR)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[int]]:  # noqa: D102
        bands, sizes = [], []
        for conv, stride, kernel, (lo, hi) in zip(self.convs, self.strides, self.kernels,
                                                  band_edges(x.shape[2], self.proportions), strict=True):
            band = x[:, :, lo:hi]
            sizes.append(hi - lo)
            total = kernel - stride if stride == 1 else (stride - band.shape[2] % stride) % stride
            band = F.pad(band, (0, 0, total // 2, total - total // 2))
            bands.append(conv(band))
        return bands, sizes


class SUlayer(nn.Module):
    """Sparse up-sampling: one transposed conv per band, cropped back to the band's size."""

    def __init__(self, cin: int, cout: int, cfg: SCNetConfig):
        super().__init__()
        self.convtrs = nn.ModuleList(nn.ConvTranspose2d(cin, cout, (k, 1), (s, 1))
                                     for k, s in zip(cfg.band_kernel, cfg.band_stride, strict=True))

    def forward(self, x: torch.Tensor, lengths: list[int], sizes: list[int]) -> torch.Tensor:  # noqa: D102
        out, start = [], 0
        for i, convtr in enumerate(self.convtrs):
            stop = start + lengths[i] if i < len(self.convtrs) - 1 else x.shape[2]
            y = convtr(x[:, :, start:stop])
            cut = abs(sizes[i] - y.shape[2]) // 2
            out.append(y[:, :, cut:cut + sizes[i]])
            start = stop
        return torch.cat(out, dim=2)


class SDblock(nn.Module):
    """Encoder block: SDlayer, a convolution module per band (along time), GELU, then a 2-D conv."""

    def __init__(self, cin: int, cout: int, cfg: SCNetConfig):
        super().__init__()
        self.SDlayer = SDlayer(cin, cout, cfg)  # noqa: N815 - MSST's parameter names
        self.conv_modules = nn.ModuleList(ConvolutionModule(cout, d, cfg.compress, cfg.conv_kernel)
                                          for d in cfg.conv_depths)
        self.globalconv = nn.Conv2d(cout, cout, 3, 1, 1)

    def forward(self, x: torch.Tensor):  # noqa: D102
        bands, sizes = self.SDlayer(x)
        done = []
        for conv, band in zip(self.conv_modules, bands, strict=True):
            b, c, f, t = band.shape
            y = conv(band.permute(0, 2, 1, 3).reshape(b * f, c, t))
            done.append(F.gelu(y.view(b, f, c, t).permute(0, 2, 1, 3)))
        lengths = [band.shape[2] for band in done]
        full = torch.cat(done, dim=2)
        return self.globalconv(full), full, lengths, sizes


class FusionLayer(nn.Module):
    """Decoder skip fusion: add the skip, double the channels, conv, GLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels * 2, channels * 2, 3, 1, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = (x + skip).repeat(1, 2, 1, 1)
        return F.glu(self.conv(x), dim=1)


class DecoderBlock(nn.Sequential):
    """(FusionLayer, SUlayer): a Sequential only for MSST's parameter names (``decoder.0.1.convtrs``)."""

    def __init__(self, cin: int, cout: int, cfg: SCNetConfig):
        super().__init__(FusionLayer(cin), SUlayer(cin, cout, cfg))

    def forward(self, x, skip, lengths, sizes):  # noqa: D102
        return self[1](self[0](x, skip), lengths, sizes)


# ----------------------------------------------------------------------------------------------
# separation network


def fft_along_time(x: torch.Tensor, inverse: bool) -> torch.Tensor:
    """Between dual-path layers: rfft along time stacking real/imag as channels, or its inverse."""
    x = x.float()
    if inverse:
        half = x.shape[1] // 2
        return torch.fft.irfft(torch.complex(x[:, :half], x[:, half:]), dim=3, norm="ortho")
    z = torch.fft.rfft(x, dim=3, norm="ortho")
    return torch.cat([z.real, z.imag], dim=1)


class DualPathRNN(nn.Module):
    """A BiLSTM along frequency, then one along time, each with GroupNorm, projection and residual."""

    def __init__(self, d_model: int, expand: int):
        super().__init__()
        hidden = d_model * expand
        self.lstm_layers = nn.ModuleList(nn.LSTM(d_model, hidden, num_layers=1, bidirectional=True, batch_first=True)
                                         for _ in range(2))
        self.linear_layers = nn.ModuleList(nn.Linear(hidden * 2, d_model) for _ in range(2))
        self.norm_layers = nn.ModuleList(nn.GroupNorm(1, d_model) for _ in range(2))

    def _freq_seq(self, x: torch.Tensor, i: int) -> torch.Tensor:
        y, _ = self.lstm_layers[i](x)
        return self.linear_layers[i](y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _dual_path(x, self.norm_layers, self._freq_seq)


def _dual_path(x: torch.Tensor, norms: nn.ModuleList, seq_fn) -> torch.Tensor:
    """Run `seq_fn(sequence [N, L, C], path)` along frequency (path 0) then time (path 1), residually."""
    b, c, f, t = x.shape
    y = norms[0](x).transpose(1, 3).reshape(b * t, f, c)
    x = x + seq_fn(y, 0).view(b, t, f, c).transpose(1, 3)
    y = norms[1](x).transpose(1, 2).reshape(b * f, c, t).transpose(1, 2)
    x = x + seq_fn(y, 1).transpose(1, 2).reshape(b, f, c, t).transpose(1, 2)
    return x


class RMSNorm(nn.Module):
    """x / ||x|| * sqrt(dim) * gamma."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class RotaryEmbedding(nn.Module):
    """Rotary positions on interleaved pairs of the first ``2 * len(freqs)`` features (theta 10000)."""

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        freqs = 1.0 / theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim)
        self.freqs = nn.Parameter(freqs, requires_grad=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Rotate [..., n, d] by position along n."""
        pos = torch.arange(t.shape[-2], device=t.device, dtype=t.dtype)
        angles = (pos[:, None] * self.freqs.to(t.dtype)).repeat_interleave(2, dim=-1)
        rot = angles.shape[-1]
        head, tail = t[..., :rot], t[..., rot:]
        pairs = head.unflatten(-1, (-1, 2))
        turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return torch.cat((head * angles.cos() + turned * angles.sin(), tail), dim=-1)


class Attention(nn.Module):
    """RMSNorm, multi-head attention with rotary positions and a sigmoid gate per head."""

    def __init__(self, dim: int, heads: int, dim_head: int, rotary_dim: int):
        super().__init__()
        self.heads = heads
        inner = heads * dim_head
        self.rotary_embed = RotaryEmbedding(rotary_dim)
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(inner, dim, bias=False), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.norm(x)
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k = self.rotary_embed(q), self.rotary_embed(k)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out * self.to_gates(x).transpose(1, 2).unsqueeze(-1).sigmoid()
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class FeedForward(nn.Module):
    """RMSNorm, Linear(dim, 4 dim), GELU, Linear(4 dim, dim)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(RMSNorm(dim), nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(0.0),
                                 nn.Linear(dim * mult, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(x)


class Transformer(nn.Module):
    """Pre-norm residual (attention, feed-forward) layers and a final RMSNorm."""

    def __init__(self, dim: int, cfg: SCNetConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(dim, cfg.tran_heads, cfg.tran_dim_head, cfg.tran_rotary_embedding_dim),
                           FeedForward(dim)])
            for _ in range(cfg.tran_depth))
        self.norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return self.norm(x)


class DualPathTran(nn.Module):
    """A transformer along frequency, then one along time, each with GroupNorm and residual."""

    def __init__(self, d_model: int, cfg: SCNetConfig):
        super().__init__()
        self.norm_layers = nn.ModuleList(nn.GroupNorm(1, d_model) for _ in range(2))
        self.time_layer = Transformer(d_model, cfg)
        self.freq_layer = Transformer(d_model, cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _dual_path(x, self.norm_layers, lambda y, i: (self.freq_layer, self.time_layer)[i](y))


class SeparationNet(nn.Module):
    """Dual-path layers; after each, an rfft (even layers) or irfft (odd layers) along time."""

    def __init__(self, channels: int, cfg: SCNetConfig, transformer: bool):
        super().__init__()
        self.num_layers = cfg.num_dplayer
        dims = [channels * (2 if i % 2 else 1) for i in range(cfg.num_dplayer)]
        if transformer:
            self.dp_modules = nn.ModuleList(DualPathTran(d, cfg) for d in dims)
        else:
            self.dp_modules = nn.ModuleList(DualPathRNN(d, cfg.expand) for d in dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for i, layer in enumerate(self.dp_modules):
            x = fft_along_time(layer(x), inverse=bool(i % 2))
        return x


# ----------------------------------------------------------------------------------------------
# the network


class SCNet(nn.Module):
    """SCNet of MSST type `model_type`: [B, audio_channels, L] -> [B, sources, audio_channels, L]."""

    def __init__(self, cfg: SCNetConfig, model_type: str = SCNET):
        super().__init__()
        if model_type not in MODEL_TYPES:
            raise ValueError(f"unknown SCNet model type {model_type!r} (one of {', '.join(MODEL_TYPES)})")
        self.cfg = cfg
        self.model_type = model_type
        self.sources = list(cfg.sources)
        dims = list(cfg.dims)
        n = len(self.sources)
        if model_type == SCNET_MASKED:
            self.pos_embed_f = nn.Parameter(torch.zeros(1, dims[0], cfg.nfft // 2 + 1, 1))
            nn.init.trunc_normal_(self.pos_embed_f, std=0.02)
            self.register_buffer("window", torch.hann_window(cfg.nfft, periodic=True), persistent=False)
        else:  # MSST passes no window: torch's rectangular one, given explicitly here
            self.register_buffer("window", torch.ones(cfg.win_size), persistent=False)
        if model_type == SCNET_TRAN:
            self.first_conv = nn.Conv2d(dims[0], dims[0], 1, 1, 0, bias=False)  # in MSST's state dict, unused
        self.encoder = nn.ModuleList(SDblock(dims[i], dims[i + 1], cfg) for i in range(len(dims) - 1))
        self.decoder = nn.ModuleList(
            DecoderBlock(dims[i + 1], dims[i] * (n if i == 0 else 1), cfg) for i in reversed(range(len(dims) - 1)))
        self.separation_net = SeparationNet(dims[-1], cfg, transformer=model_type == SCNET_TRAN)
        if model_type == SCNET_MASKED:
            self.mask_layer = nn.Sequential(nn.Conv2d(4 * n, 64, 3, padding="same"), nn.GELU(),
                                            nn.Conv2d(64, 4 * n, 1, padding="same"), nn.Tanh())

    def _stft_args(self, x: torch.Tensor) -> dict:
        window = self.window.to(x.device)
        return dict(n_fft=self.cfg.nfft, hop_length=self.cfg.hop_size, win_length=self.cfg.win_size,
                    center=True, normalized=self.cfg.normalized, window=window)

    @staticmethod
    def _to_complex(x: torch.Tensor, b: int, n: int, f: int, t: int) -> torch.Tensor:
        """[B, n * S * 2 ..., F, T] features -> complex [B * ..., F, T], pairing channels as (real, imag)."""
        x = x.reshape(b, n, -1, f, t).reshape(-1, 2, f, t).permute(0, 2, 3, 1)
        return torch.view_as_complex(x.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        b, _, length = x.shape
        hop = self.cfg.hop_size
        # pad so the STFT has an even number of frames (the rfft in the separation net needs it)
        padding = hop - length % hop
        if (length + padding) // hop % 2 == 0:
            padding += hop
        x = F.pad(x, (0, padding))
        stft = self._stft_args(x)
        spec = torch.view_as_real(torch.stft(x.reshape(-1, x.shape[-1]), return_complex=True, **stft))
        spec = spec.permute(0, 3, 1, 2).reshape(b, -1, spec.shape[1], spec.shape[2])  # [B, C*2, F, T]
        _, c, f, t = spec.shape
        h = spec
        if self.model_type == SCNET_MASKED:
            if c != self.cfg.dims[0]:
                raise ValueError(f"the STFT gives {c} feature channels but dims[0] is {self.cfg.dims[0]}")
            pos = self.pos_embed_f
            if f > pos.shape[2]:
                pos = pos.repeat(1, 1, math.ceil(f / pos.shape[2]), 1)
            h = h + pos[:, :, :f]
        saved = []
        for block in self.encoder:
            h, skip, lengths, sizes = block(h)
            saved.append((skip, lengths, sizes))
        h = self.separation_net(h)
        for block in self.decoder:
            skip, lengths, sizes = saved.pop()
            h = block(h, skip, lengths, sizes)
        n = self.cfg.dims[0]
        if self.model_type == SCNET_MASKED:
            mixture = self._to_complex(spec.repeat(1, len(self.sources), 1, 1), b, n, f, t)
            z = mixture * self._to_complex(self.mask_layer(h), b, n, f, t)
        else:
            z = self._to_complex(h, b, n, f, t)
        y = torch.istft(z, **stft)
        y = y.reshape(b, len(self.sources), self.cfg.audio_channels, -1)
        return y[..., :-padding]
