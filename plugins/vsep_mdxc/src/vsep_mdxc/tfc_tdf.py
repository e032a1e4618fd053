"""MDX23C: the TFC-TDF v3 U-Net (Kim et al., "Sound Demixing Challenge 2023"), built from a yaml.

State-dict names follow the public checkpoints: ``first_conv``, ``encoder_blocks.{i}.tfc_tdf.blocks.{j}
.{tfc1,tdf,tfc2,shortcut}``, ``encoder_blocks.{i}.downscale.conv``, ``bottleneck_block``,
``decoder_blocks.{i}.{upscale,tfc_tdf}``, ``final_conv``.

Signal path: stereo waveform -> STFT (``audio.n_fft``, ``audio.hop_length``, periodic Hann,
centred) cropped to ``audio.dim_f`` bins, real/imaginary parts as channels ``[c0 re, c0 im,
c1 re, c1 im]`` -> frequency split into ``num_subbands`` channel groups -> U-Net over
(time, frequency) -> output spectrogram(s) -> inverse STFT with the cropped bins zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vsep_core.conv_strips import conv_in_strips
from vsep_mdxc.spectral import complex_host, istft, stft


@dataclass(frozen=True)
class TFCTDFConfig:
    """The yaml values the network needs (``audio`` and ``model`` sections)."""

    n_fft: int
    hop_length: int
    dim_f: int
    num_channels: int
    num_subbands: int
    num_scales: int
    scale: tuple[int, int]
    num_blocks_per_scale: int
    channels: int
    growth: int
    bottleneck_factor: int
    norm: str | None
    act: str
    num_targets: int

    @classmethod
    def from_yaml(cls, config: Mapping[str, Any], num_targets: int) -> TFCTDFConfig:
        """Read the fields from a parsed MDX23C yaml (``audio`` and ``model`` sections)."""
        audio, model = config["audio"], config["model"]
        scale = model.get("scale", (2, 2))
        return cls(
            n_fft=int(audio["n_fft"]), hop_length=int(audio["hop_length"]), dim_f=int(audio["dim_f"]),
            num_channels=int(audio.get("num_channels", 2)), num_subbands=int(model["num_subbands"]),
            num_scales=int(model["num_scales"]), scale=(int(scale[0]), int(scale[1])),
            num_blocks_per_scale=int(model["num_blocks_per_scale"]), channels=int(model["num_channels"]),
            growth=int(model["growth"]), bottleneck_factor=int(model["bottleneck_factor"]),
            norm=model.get("norm"), act=str(model.get("act", "gelu")), num_targets=int(num_targets),
        )


def _norm_factory(norm: str | None) -> Callable[[int], nn.Module]:
    """`norm` name from the yaml -> constructor of a 2-D normalisation for c channels."""
    name = (norm or "").lower()
    if name == "batchnorm":
        return nn.BatchNorm2d
    if name == "instancenorm":
        # InstanceNorm2d(c, affine=True) as GroupNorm(c, c): one group per channel is the same statistics and
        # the same weight/bias names, and torch's GroupNorm CPU kernel is 2-4x faster than InstanceNorm's
        # batch-norm route (issue 17: 7% of a whole MDX23C forward)
        return lambda c: nn.GroupNorm(num_groups=c, num_channels=c, eps=1e-5, affine=True)
    if name.startswith("groupnorm"):
        groups = int(name[len("groupnorm"):])
        return lambda c: nn.GroupNorm(num_groups=groups, num_channels=c)
    return lambda c: nn.Identity()


def _activation(act: str) -> nn.Module:
    """`act` name from the yaml (gelu, relu, elu<alpha>) -> module."""
    name = act.lower()
    if name == "gelu":
        return nn.GELU()
    if name == "relu":
        return nn.ReLU()
    if name.startswith("elu"):
        alpha = name[3:]
        return nn.ELU(float(alpha) if alpha else 1.0)
    raise ValueError(f"unknown MDX23C activation {act!r} (expected gelu, relu or elu<alpha>)")


def _activate_in_place(act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``act(x)`` written over `x` (a norm's fresh output) where torch has the in-place form: one large tensor
    fewer per activation (at full resolution each is 128 MB, and every fresh one is fresh pages to fault in)."""
    if isinstance(act, nn.GELU) and act.approximate == "none":
        return torch.ops.aten.gelu_(x)
    if isinstance(act, nn.ReLU):
        return torch.relu_(x)
    if isinstance(act, nn.ELU):
        return torch.nn.functional.elu_(x, act.alpha)
    return act(x)


def run_sequence(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``layers(x)``; without autograd, an activation right after a norm runs in place on the norm's output,
    and convolutions larger than the CPU's cache run in strips (`vsep_core.conv_strips`)."""
    in_place = not torch.is_grad_enabled()
    fresh = False
    for layer in layers:
        if in_place and fresh and isinstance(layer, (nn.GELU, nn.ReLU, nn.ELU)):
            x = _activate_in_place(layer, x)
        elif in_place and isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            x = conv_in_strips(layer, x)
        else:
            x = layer(x)
        fresh = isinstance(layer, (nn.GroupNorm, nn.BatchNorm2d, nn.InstanceNorm2d))
    return x


class _TFCTDF(nn.Module):
    """`l` residual blocks of time-frequency convolutions (TFC) and a frequency bottleneck (TDF)."""

    def __init__(self, in_c: int, c: int, l: int, f: int, bn: int, norm: Callable[[int], nn.Module],  # noqa: E741
                 act: Callable[[], nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList()
        for _ in range(l):
            block = nn.Module()
            block.tfc1 = nn.Sequential(norm(in_c), act(), nn.Conv2d(in_c, c, 3, 1, 1, bias=False))
            block.tdf = nn.Sequential(norm(c), act(), nn.Linear(f, f // bn, bias=False),
                                      norm(c), act(), nn.Linear(f // bn, f, bias=False))
            block.tfc2 = nn.Sequential(norm(c), act(), nn.Conv2d(c, c, 3, 1, 1, bias=False))
            block.shortcut = nn.Conv2d(in_c, c, 1, 1, 0, bias=False)
            self.blocks.append(block)
            in_c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, in_c, time, freq] -> [batch, c, time, freq]."""
        in_place = not torch.is_grad_enabled()
        for block in self.blocks:
            s = block.shortcut(x)
            x = run_sequence(block.tfc1, x)
            t = run_sequence(block.tdf, x)
            x = t.add_(x) if in_place else x + t  # the fresh TDF output takes the sum
            x = run_sequence(block.tfc2, x)
            x = x.add_(s) if in_place else x + s
        return x


class _Rescale(nn.Module):
    """norm -> act -> strided (transposed) convolution; `conv.2` holds the weights."""

    def __init__(self, in_c: int, out_c: int, scale: tuple[int, int], norm: Callable[[int], nn.Module],
                 act: Callable[[], nn.Module], up: bool):
        super().__init__()
        conv_cls = nn.ConvTranspose2d if up else nn.Conv2d
        self.conv = nn.Sequential(norm(in_c), act(),
                                  conv_cls(in_c, out_c, kernel_size=scale, stride=scale, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Down- or up-sample time and frequency by `scale`."""
        return run_sequence(self.conv, x)


class TFCTDFNet(nn.Module):
    """MDX23C network: waveform [batch, channels, samples] -> [batch, (targets,) channels, samples]."""

    def __init__(self, cfg: TFCTDFConfig):
        super().__init__()
        self.cfg = cfg
        norm = _norm_factory(cfg.norm)
        _activation(cfg.act)  # fail early on an unknown name

        def act() -> nn.Module:
            return _activation(cfg.act)

        k = cfg.num_subbands
        dim_c = k * cfg.num_channels * 2
        c, g, l, bn = cfg.channels, cfg.growth, cfg.num_blocks_per_scale, cfg.bottleneck_factor  # noqa: E741
        f = cfg.dim_f // k
        self.first_conv = nn.Conv2d(dim_c, c, 1, 1, 0, bias=False)
        self.encoder_blocks = nn.ModuleList()
        for _ in range(cfg.num_scales):
            block = nn.Module()
            block.tfc_tdf = _TFCTDF(c, c, l, f, bn, norm, act)
            block.downscale = _Rescale(c, c + g, cfg.scale, norm, act, up=False)
            f //= cfg.scale[1]
            c += g
            self.encoder_blocks.append(block)
        self.bottleneck_block = _TFCTDF(c, c, l, f, bn, norm, act)
        self.decoder_blocks = nn.ModuleList()
        for _ in range(cfg.num_scales):
            block = nn.Module()
            block.upscale = _Rescale(c, c - g, cfg.scale, norm, act, up=True)
            f *= cfg.scale[1]
            c -= g
            block.tfc_tdf = _TFCTDF(2 * c, c, l, f, bn, norm, act)
            self.decoder_blocks.append(block)
        self.final_conv = nn.Sequential(nn.Conv2d(c + dim_c, c, 1, 1, 0, bias=False), act(),
                                        nn.Conv2d(c, cfg.num_targets * dim_c, 1, 1, 0, bias=False))

    @property
    def time_multiple(self) -> int:
        """STFT frame counts must be a multiple of this (the U-Net halves time `num_scales` times)."""
        return self.cfg.scale[0] ** self.cfg.num_scales

    def _spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """[b, ch, samples] -> [b, ch*2, dim_f, frames] real/imag channels."""
        spec = stft(x, self.cfg.n_fft, self.cfg.hop_length)  # [b, ch, F, T] complex
        spec = torch.view_as_real(spec).permute(0, 1, 4, 2, 3)  # [b, ch, 2, F, T]
        b, ch, _, freqs, frames = spec.shape
        spec = spec.reshape(b, ch * 2, freqs, frames)[:, :, : self.cfg.dim_f]
        return spec.to(x.device)

    def _waveform(self, x: torch.Tensor) -> torch.Tensor:
        """[..., ch*2, dim_f, frames] -> [..., ch, samples]; bins above dim_f are zero."""
        *lead, c2, freqs, frames = x.shape
        n = self.cfg.n_fft // 2 + 1
        x = x.to(complex_host(x.device), torch.float32)
        x = torch.nn.functional.pad(x, (0, 0, 0, n - freqs))
        x = x.reshape(*lead, c2 // 2, 2, n, frames).movedim(-3, -1).contiguous()
        return istft(torch.view_as_complex(x), self.cfg.n_fft, self.cfg.hop_length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Separate a batch of waveforms; one target gives [b, ch, samples], several [b, n, ch, samples]."""
        device = x.device
        k = self.cfg.num_subbands
        spec = self._spectrogram(x)
        b, c, f, t = spec.shape
        mix = spec = spec.reshape(b, c * k, f // k, t)
        first = y = self.first_conv(spec)
        y = y.transpose(-1, -2).contiguous()  # [b, c, time, freq]; contiguous: 2.5x faster convs and norms
        skips = []
        for block in self.encoder_blocks:
            y = block.tfc_tdf(y)
            skips.append(y)
            y = block.downscale(y)
        y = self.bottleneck_block(y)
        for block in self.decoder_blocks:
            y = block.upscale(y)
            y = torch.cat([y, skips.pop()], 1)
            y = block.tfc_tdf(y)
        y = y.transpose(-1, -2).contiguous()
        y = y * first
        y = self.final_conv(torch.cat([mix, y], 1))
        b, ck, fk, t = y.shape
        y = y.reshape(b, ck // k, fk * k, t)
        if self.cfg.num_targets > 1:
            y = y.reshape(b, self.cfg.num_targets, -1, fk * k, t)
        return self._waveform(y).to(device)
