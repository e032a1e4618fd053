"""The Apollo restoration network (Li & Luo, look2hear), written for vsep from MSST's ``apollo`` description.

Per channel: an STFT with a ``win`` ms Hann window and half-window hop; the spectrum is cut into 80 bands
(79 of ``win_samples / 160`` bins, the last takes the rest); each band's bins are divided by the band's
RMS magnitude ("shape") and embedded with the log RMS ("gain") by RMSNorm + 1x1 conv. ``layer`` blocks
then model the bands: a non-causal rotary-position transformer across the bands of each frame, and a
stack of three residual depthwise-conv blocks along time for each band. Per band, RMSNorm + 1x1 conv +
GLU predicts real and imaginary bins; the spectrum is inverted to a signal of the input's length.

Tensor names follow the published checkpoints (``BN.<i>``, ``net.<k>.band_net.*``, ``net.<k>.seq_net.*``,
``output.<i>``), including the rotary tables ``cos_freq`` / ``sin_freq`` they store.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

N_BANDS = 80
HEADS = 8
ROPE_WINDOW = 100  # rotary table length of the band transformer (the number of bands is 80)


@dataclass(frozen=True)
class ApolloConfig:
    """The yaml's ``model`` section."""

    sr: int
    win: int
    feature_dim: int
    layer: int

    @property
    def win_samples(self) -> int:
        """STFT window (and n_fft) in samples."""
        return int(self.sr * self.win // 1000)

    @property
    def band_widths(self) -> list[int]:
        """Bins per band: 79 equal bands and the remainder."""
        n_freqs = self.win_samples // 2 + 1
        width = int(self.win_samples / 160)
        return [width] * (N_BANDS - 1) + [n_freqs - width * (N_BANDS - 1)]


class RMSNorm(nn.Module):
    """Normalise [batch, channels, time] by the RMS over channels, then scale per channel."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """RMS-normalise along dim 1."""
        y = x.float() * torch.rsqrt(x.float().pow(2).mean(1, keepdim=True) + self.eps)
        return y.type_as(x) * self.weight[None, :, None]


def rotary_tables(head_dim: int, length: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables [length, head_dim] of rotary positions, each frequency repeated for a pair."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2)[: head_dim // 2] / head_dim))
    angles = torch.arange(length).reshape(-1, 1) * freqs.reshape(1, -1)
    cos = torch.stack([torch.cos(angles)] * 2, -1).reshape(length, head_dim)
    sin = torch.stack([torch.sin(angles)] * 2, -1).reshape(length, head_dim)
    return cos, sin


class BandTransformer(nn.Module):
    """Pre-norm attention with rotary positions plus a gated (SiLU) 1x1-conv feed-forward, both residual."""

    def __init__(self, dim: int, heads: int = HEADS, window: int = ROPE_WINDOW) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        cos, sin = rotary_tables(self.head_dim, window)
        self.register_buffer("cos_freq", cos)
        self.register_buffer("sin_freq", sin)
        self.input_norm = RMSNorm(dim)
        self.weight = nn.Conv1d(dim, self.head_dim * heads * 3, 1, bias=False)
        self.output = nn.Conv1d(self.head_dim * heads, dim, 1, bias=False)
        self.MLP = nn.Sequential(RMSNorm(dim), nn.Conv1d(dim, dim * 8, 1, bias=False), nn.SiLU())
        self.MLP_output = nn.Conv1d(dim * 4, dim, 1, bias=False)

    def _rotate(self, x: torch.Tensor) -> torch.Tensor:
        """Apply rotary positions to [..., seq, head_dim]: pairs (a, b) -> (a cos - b sin, b cos + a sin)."""
        seq, dim = x.shape[-2:]
        pairs = x.reshape(*x.shape[:-1], dim // 2, 2)
        rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).reshape(x.shape)
        return x * self.cos_freq[:seq] + rotated * self.sin_freq[:seq]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, dim, seq] -> same shape."""
        batch, _, seq = x.shape
        qkv = self.weight(self.input_norm(x)).reshape(batch, self.heads, self.head_dim * 3, seq).mT
        q, k, v = torch.split(qkv, self.head_dim, dim=-1)
        attended = F.scaled_dot_product_attention(self._rotate(q).contiguous(), self._rotate(k).contiguous(),
                                                  v.contiguous())
        x = x + self.output(attended.mT.reshape(batch, -1, seq))
        gate, value = self.MLP(x).chunk(2, dim=1)
        return x + self.MLP_output(F.silu(gate) * value)


class ConvBlock(nn.Module):
    """Residual: depthwise conv (kernel 7), RMSNorm, 1x1 conv up 4x, SiLU, 1x1 conv down."""

    def __init__(self, channels: int, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2, groups=channels),
            RMSNorm(channels), nn.Conv1d(channels, channels * 4, 1), nn.SiLU(), nn.Conv1d(channels * 4, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, channels, time] -> same shape."""
        return x + self.conv(x)


class TimeConvStack(nn.Module):
    """Three residual conv blocks along time."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(ConvBlock(channels), ConvBlock(channels), ConvBlock(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, channels, time] -> same shape."""
        return self.blocks(x)


class BandSequenceBlock(nn.Module):
    """Transformer across bands (per frame), then convolutions along time (per band)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.band_net = BandTransformer(dim)
        self.seq_net = TimeConvStack(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, bands, dim, frames] -> same shape."""
        batch, bands, dim, frames = x.shape
        across = self.band_net(x.permute(0, 3, 2, 1).reshape(batch * frames, dim, bands))
        x = across.reshape(batch, frames, dim, bands).permute(0, 3, 2, 1)
        return self.seq_net(x.reshape(batch * bands, dim, frames)).reshape(batch, bands, dim, frames)


class Apollo(nn.Module):
    """Apollo: [batch, channels, samples] -> restored [batch, channels, samples], each channel alone."""

    def __init__(self, cfg: ApolloConfig) -> None:
        super().__init__()
        self.win = cfg.win_samples
        self.hop = self.win // 2
        self.widths = cfg.band_widths
        self.eps = torch.finfo(torch.float32).eps
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)
        dim = cfg.feature_dim
        self.BN = nn.ModuleList(nn.Sequential(RMSNorm(2 * w + 1), nn.Conv1d(2 * w + 1, dim, 1)) for w in self.widths)
        self.net = nn.Sequential(*(BandSequenceBlock(dim) for _ in range(cfg.layer)))
        self.output = nn.ModuleList(nn.Sequential(RMSNorm(dim), nn.Conv1d(dim, 4 * w, 1), nn.GLU(dim=1))
                                    for w in self.widths)

    def _features(self, spec: torch.Tensor) -> torch.Tensor:
        """complex [n, freqs, frames] -> band features [n, bands, dim, frames]."""
        features, start = [], 0
        for width, embed in zip(self.widths, self.BN, strict=True):
            band = spec[:, start:start + width]
            gain = (band.abs().pow(2).sum(1) + self.eps).sqrt().unsqueeze(1)
            shape = torch.cat([band.real / gain, band.imag / gain, torch.log(gain)], 1)
            features.append(embed(shape))
            start += width
        return torch.stack(features, 1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Restore every channel of every item."""
        batch, channels, length = audio.shape
        spec = torch.stft(audio.reshape(batch * channels, length), n_fft=self.win, hop_length=self.hop,
                          window=self.window, return_complex=True)
        feature = self.net(self._features(spec))
        bands = []
        for i, (width, head) in enumerate(zip(self.widths, self.output, strict=True)):
            ri = head(feature[:, i]).reshape(batch * channels, 2, width, -1)
            bands.append(torch.complex(ri[:, 0], ri[:, 1]))
        est = torch.cat(bands, 1).to(torch.complex64)
        out = torch.istft(est, n_fft=self.win, hop_length=self.hop, window=self.window, length=length)
        return out.reshape(batch, channels, length)
