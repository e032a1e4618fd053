"""The two generations of VR networks (UVR's vocal-remover), and their shape detection.

- v5 (`CascadedASPPNet`, UVR's ``nets.py``): three cascaded U-Nets with an ASPP bottleneck.
  Capacity variants differ in channel width (16 "SP", 32 "HP", 64 "HP2"), ASPP branch count
  (5, 6 or 7) and an extra encoder level (the 6-branch variant).
- v5.1 (`CascadedNet`, UVR's ``nets_new.py``): low/high band U-Nets with a BiLSTM bridge,
  widths `nout` / `nout_lstm`.

Parameter names follow UVR's so that its state dicts load with strict checking. The
variant is read from the tensor shapes of the state dict (`detect_config`), never from the
file size. Both nets map a magnitude batch [B, 2, bins + 1, W] to a mask of the same shape;
`offset` frames at each side of the window are context only, and `predict_centre` computes the
mask of the other frames alone: the last U-Net's decoders only work on the columns those frames
read (v5: every decoder of stage 3, about 20% of a window's work saved; v5.1: its last decoder, the
one after the BiLSTM, which needs every frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------------
# configuration read from a state dict


@dataclass(frozen=True)
class NetConfig:
    """What the state dict says about the network.

    generation: "v5" (CascadedASPPNet) or "v51" (CascadedNet); for v5, `channels` (16/32/64),
    `aspp_branches` (5/6/7) and `extra_level` (an enc5/dec5 level); for v51, `nout` and
    `nout_lstm`; `lstm_bins` (v51 only) is the bins//2 the LSTMs were built for.
    """

    generation: str
    channels: int = 0
    aspp_branches: int = 5
    extra_level: bool = False
    nout: int = 0
    nout_lstm: int = 0
    lstm_bins: int = 0

    @property
    def offset(self) -> int:
        """Frames cropped from each side of a window's mask."""
        return 128 if self.generation == "v5" else 64

    @property
    def capacity_name(self) -> str:
        """UVR's name for the v5 capacity ("SP", "HP", "HP2"), or "nets_new"."""
        if self.generation != "v5":
            return "nets_new"
        return {16: "SP", 32: "HP", 64: "HP2"}.get(self.channels, f"ch{self.channels}")


class ConfigError(ValueError):
    """The state dict is not a VR network this module knows."""


def detect_config(state: dict[str, torch.Tensor]) -> NetConfig:
    """Read the network variant from a state dict's keys and tensor shapes."""
    if "stg2_bridge.conv.0.weight" in state:
        w = _need(state, "stg1_low_band_net.enc1.conv1.conv.0.weight")
        ch = int(w.shape[0])
        extra = "stg1_low_band_net.enc5.conv1.conv.0.weight" in state
        branches = 5
        for n in (6, 7):
            if f"stg1_low_band_net.aspp.conv{n}.conv.0.weight" in state:
                branches = n
        bott = _need(state, "stg1_low_band_net.aspp.bottleneck.0.conv.0.weight")
        nin = ch * (16 if extra else 8)
        if int(bott.shape[1]) != nin * branches:
            raise ConfigError(f"ASPP bottleneck takes {bott.shape[1]} channels, expected {nin * branches}")
        return NetConfig("v5", channels=ch, aspp_branches=branches, extra_level=extra)
    if "stg3_full_band_net.lstm_dec2.lstm.weight_ih_l0" in state:
        out = _need(state, "out.weight")
        nout = int(out.shape[1])
        ih = state["stg3_full_band_net.lstm_dec2.lstm.weight_ih_l0"]
        return NetConfig("v51", nout=nout, nout_lstm=int(ih.shape[0]) // 2, lstm_bins=int(ih.shape[1]))
    raise ConfigError("not a VR network state dict (no 'stg2_bridge' nor 'stg3_full_band_net.lstm_dec2' weights)")


def _need(state: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        raise ConfigError(f"state dict has no {key!r}")
    return state[key]


def build_net(config: NetConfig, bins: int) -> nn.Module:
    """The network for `config`, for spectrograms of `bins` + 1 rows (band params' `bins`)."""
    if config.generation == "v5":
        return CascadedASPPNet(bins * 2, config.channels, config.aspp_branches, config.extra_level)
    if config.lstm_bins and config.lstm_bins != bins // 2:
        raise ConfigError(f"the network was built for {config.lstm_bins * 2} bins, the band parameters have {bins}")
    return CascadedNet(bins * 2, config.nout, config.nout_lstm)


# ---------------------------------------------------------------------------------------------
# shared blocks


def fuse_conv_bn(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d in a Sequential into that
    conv's weights and bias (in place; returns `module`). Inference only: about 6% less time per
    window on CPU at 160 dB parity with the unfused network (2_HP-UVR)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            layers, fused, i = list(child), [], 0
            while i < len(layers):
                if (i + 1 < len(layers) and isinstance(layers[i], nn.Conv2d)
                        and isinstance(layers[i + 1], nn.BatchNorm2d)):
                    fused.append(fuse_conv_bn_eval(layers[i], layers[i + 1]))
                    i += 2
                else:
                    fused.append(fuse_conv_bn(layers[i]))
                    i += 1
            setattr(module, name, nn.Sequential(*fused))
        else:
            fuse_conv_bn(child)
    return module


class Conv2DBNActiv(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + activation; parameters under `.conv`."""

    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 1, pad: int = 1, dilation: int = 1,
                 activ: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(nin, nout, kernel_size=ksize, stride=stride, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm2d(nout), activ())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SeparableConv2DBNActiv(nn.Module):
    """Depthwise conv + pointwise conv + BatchNorm2d + activation (UVR's "Seperable")."""

    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 1, pad: int = 1, dilation: int = 1,
                 activ: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(nin, nin, kernel_size=ksize, stride=stride, padding=pad, dilation=dilation, groups=nin,
                      bias=False),
            nn.Conv2d(nin, nout, kernel_size=1, bias=False), nn.BatchNorm2d(nout), activ())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def crop_center(skip: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Crop `skip`'s time axis (centred) to the width of `like`."""
    w, target = skip.shape[3], like.shape[3]
    if w == target:
        return skip
    if w < target:
        raise ValueError("window too small for this network: use a larger window_size")
    start = (w - target) // 2
    return skip[:, :, :, start:start + target]


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


@dataclass(frozen=True)
class Columns:
    """Columns [lo, hi) of a tensor that is `width` columns wide; a part of it holds only these."""

    lo: int
    hi: int
    width: int

    @classmethod
    def whole(cls, width: int) -> Columns:
        """Every column."""
        return cls(0, width, width)


def _decoder_input(out: Columns) -> Columns:
    """The columns of a 3x3 (padding 1) convolution's input that its output columns `out` read."""
    return Columns(max(out.lo - 1, 0), min(out.hi + 1, out.width), out.width)


def _upsampled_from(out: Columns) -> Columns:
    """The columns of `_up2`'s input (half as wide) that its output columns `out` read.

    align_corners maps output column i to input i * (w - 1) / (2w - 1) and reads that column's floor
    and the next; one column more on each side covers any rounding of that product.
    """
    w = out.width // 2
    if w <= 1:
        return Columns.whole(w)
    scale = (w - 1) / (out.width - 1)
    return Columns(max(int(out.lo * scale) - 1, 0), min(int((out.hi - 1) * scale) + 3, w), w)


def _up2_columns(x: torch.Tensor, have: Columns, want: Columns) -> torch.Tensor:
    """Columns `want` of `_up2` of a `have.width`-wide tensor of which `x` holds columns `have` (all that
    `want` reads: the others are zeros here and never read)."""
    if have.lo > 0 or have.hi < have.width:
        full = torch.empty(x.shape[:3] + (have.width,), dtype=x.dtype, device=x.device,
                           memory_format=_memory_format(x)).zero_()
        full[..., have.lo:have.hi] = x
        x = full
    return _up2(x)[..., want.lo:want.hi]


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last where `x` (perhaps a column slice of such a tensor) keeps channels innermost."""
    return torch.channels_last if x.shape[1] > 1 and x.stride(1) == 1 else torch.contiguous_format


def _decode(conv: nn.Module, x: torch.Tensor, have: Columns, skip: torch.Tensor, want: Columns) -> torch.Tensor:
    """A decoder step (`_up2`, the centre of the skip beside it, a 3x3 convolution) computed for the output
    columns `want` only, from `x` holding the input columns `have`. The convolution runs on its input's
    columns `want` reads; its own zero padding stands in for a neighbour only at the tensor's true edges."""
    read = _decoder_input(want)
    up = _up2_columns(x, have, read)
    start = (skip.shape[3] - want.width) // 2  # crop_center's offset (0 where `_decoder_plan` accepted the widths)
    y = conv(torch.cat([up, skip[:, :, :, start + read.lo:start + read.hi]], dim=1))
    return y[:, :, :, want.lo - read.lo:want.hi - read.lo]


def _decoder_plan(first_input: int, steps: int, want: Columns) -> list[Columns]:
    """The output columns each of `steps` decoders (each doubling the width, the first fed `first_input`
    columns) must compute so that the last one gives `want`."""
    if first_input * 2 ** steps != want.width:  # wider than the skips: forward's crop_center fails the same way
        raise ValueError("window too small for this network: use a larger window_size")
    plan = [want]
    for _ in range(steps - 1):
        plan.insert(0, _upsampled_from(_decoder_input(plan[0])))
    return plan


def _pooled(branch: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """ASPP image-pooling branch: mean over frequency, 1x1 conv, broadcast back.

    Same numbers as UVR's AdaptiveAvgPool2d((1, None)) + bilinear upsampling (which, from one
    row to h rows at equal width with align_corners, is an exact copy).
    """
    y = branch[1](x.mean(dim=2, keepdim=True))
    return y.expand(-1, -1, x.shape[2], -1)


# ---------------------------------------------------------------------------------------------
# v5: CascadedASPPNet


class _Encoder5(nn.Module):
    def __init__(self, nin: int, nout: int, ksize: int, stride: int, pad: int):
        super().__init__()
        self.conv1 = Conv2DBNActiv(nin, nout, ksize, 1, pad, activ=nn.LeakyReLU)
        self.conv2 = Conv2DBNActiv(nout, nout, ksize, stride, pad, activ=nn.LeakyReLU)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.conv1(x)
        return self.conv2(skip), skip


class _Decoder5(nn.Module):
    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 1, pad: int = 1):
        super().__init__()
        self.conv = Conv2DBNActiv(nin, nout, ksize, 1, pad)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = _up2(x)
        return self.conv(torch.cat([x, crop_center(skip, x)], dim=1))

    def columns(self, x: torch.Tensor, have: Columns, skip: torch.Tensor, want: Columns) -> torch.Tensor:
        """This decoder's output columns `want` only (see `_decode`)."""
        return _decode(self.conv, x, have, skip, want)


class _ASPP5(nn.Module):
    def __init__(self, nin: int, nout: int, branches: int, dilations: tuple[int, int, int] = (4, 8, 16)):
        super().__init__()
        self.branches = branches
        self.conv1 = nn.Sequential(nn.AdaptiveAvgPool2d((1, None)), Conv2DBNActiv(nin, nin, 1, 1, 0))
        self.conv2 = Conv2DBNActiv(nin, nin, 1, 1, 0)
        self.conv3 = SeparableConv2DBNActiv(nin, nin, 3, 1, dilations[0], dilations[0])
        self.conv4 = SeparableConv2DBNActiv(nin, nin, 3, 1, dilations[1], dilations[1])
        self.conv5 = SeparableConv2DBNActiv(nin, nin, 3, 1, dilations[2], dilations[2])
        if branches >= 6:
            self.conv6 = SeparableConv2DBNActiv(nin, nin, 3, 1, dilations[2], dilations[2])
        if branches >= 7:
            self.conv7 = SeparableConv2DBNActiv(nin, nin, 3, 1, dilations[2], dilations[2])
        self.bottleneck = nn.Sequential(Conv2DBNActiv(nin * branches, nout, 1, 1, 0), nn.Dropout2d(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [_pooled(self.conv1, x), self.conv2(x), self.conv3(x), self.conv4(x), self.conv5(x)]
        if self.branches >= 6:
            feats.append(self.conv6(x))
        if self.branches >= 7:
            feats.append(self.conv7(x))
        return self.bottleneck(torch.cat(feats, dim=1))


class BaseASPPNet(nn.Module):
    """One U-Net stage of the v5 network."""

    def __init__(self, nin: int, ch: int, branches: int, extra_level: bool):
        super().__init__()
        self.extra_level = extra_level
        self.enc1 = _Encoder5(nin, ch, 3, 2, 1)
        self.enc2 = _Encoder5(ch, ch * 2, 3, 2, 1)
        self.enc3 = _Encoder5(ch * 2, ch * 4, 3, 2, 1)
        self.enc4 = _Encoder5(ch * 4, ch * 8, 3, 2, 1)
        if extra_level:
            self.enc5 = _Encoder5(ch * 8, ch * 16, 3, 2, 1)
            self.aspp = _ASPP5(ch * 16, ch * 32, branches)
            self.dec5 = _Decoder5(ch * (16 + 32), ch * 16)
        else:
            self.aspp = _ASPP5(ch * 8, ch * 16, branches)
        self.dec4 = _Decoder5(ch * (8 + 16), ch * 8)
        self.dec3 = _Decoder5(ch * (4 + 8), ch * 4)
        self.dec2 = _Decoder5(ch * (2 + 4), ch * 2)
        self.dec1 = _Decoder5(ch * (1 + 2), ch)

    def forward(self, x: torch.Tensor, want: Columns | None = None) -> torch.Tensor:
        """[B, nin, H, W] -> [B, ch, H, W]; with `want`, only those output columns ([B, ch, H, hi - lo])."""
        h, e1 = self.enc1(x)
        h, e2 = self.enc2(h)
        h, e3 = self.enc3(h)
        h, e4 = self.enc4(h)
        steps = [(self.dec4, e4), (self.dec3, e3), (self.dec2, e2), (self.dec1, e1)]
        if self.extra_level:
            h, e5 = self.enc5(h)
            steps.insert(0, (self.dec5, e5))
        h = self.aspp(h)
        if want is None:
            for decoder, skip in steps:
                h = decoder(h, skip)
            return h
        have = Columns.whole(h.shape[3])
        for (decoder, skip), out in zip(steps, _decoder_plan(h.shape[3], len(steps), want), strict=True):
            h, have = decoder.columns(h, have, skip, out), out
        return h


class CascadedASPPNet(nn.Module):
    """UVR v5 network (``nets.CascadedASPPNet``) with channel width `ch` (16, 32, 64)."""

    def __init__(self, n_fft: int, ch: int = 16, branches: int = 5, extra_level: bool = False):
        super().__init__()
        half = ch // 2
        self.stg1_low_band_net = BaseASPPNet(2, ch, branches, extra_level)
        self.stg1_high_band_net = BaseASPPNet(2, ch, branches, extra_level)
        self.stg2_bridge = Conv2DBNActiv(ch + 2, half, 1, 1, 0)
        self.stg2_full_band_net = BaseASPPNet(half, ch, branches, extra_level)
        self.stg3_bridge = Conv2DBNActiv(2 * ch + 2, ch, 1, 1, 0)
        self.stg3_full_band_net = BaseASPPNet(ch, 2 * ch, branches, extra_level)
        self.out = nn.Conv2d(2 * ch, 2, 1, bias=False)
        self.aux1_out = nn.Conv2d(ch, 2, 1, bias=False)
        self.aux2_out = nn.Conv2d(ch, 2, 1, bias=False)
        self.max_bin = n_fft // 2
        self.output_bin = n_fft // 2 + 1
        self.offset = 128

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 2, bins + 1, W] magnitudes -> [B, 2, bins + 1, W] mask in (0, 1)."""
        return self._mask(x, None)

    def predict_centre(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 2, bins + 1, W] magnitudes -> the mask of frames [offset, W - offset) only, [B, 2, bins + 1,
        W - 2 * offset]: stage 3's decoders compute the columns those frames read and no others."""
        return self._mask(x, Columns(self.offset, x.shape[3] - self.offset, x.shape[3]))

    def _mask(self, x: torch.Tensor, want: Columns | None) -> torch.Tensor:
        x = x[:, :, :self.max_bin]
        bw = x.shape[2] // 2
        aux1 = torch.cat([self.stg1_low_band_net(x[:, :, :bw]), self.stg1_high_band_net(x[:, :, bw:])], dim=2)
        aux2 = self.stg2_full_band_net(self.stg2_bridge(torch.cat([x, aux1], dim=1)))
        h = self.stg3_full_band_net(self.stg3_bridge(torch.cat([x, aux1, aux2], dim=1)), want)
        mask = torch.sigmoid(self.out(h))
        return F.pad(mask, (0, 0, 0, self.output_bin - mask.shape[2]), mode="replicate")


# ---------------------------------------------------------------------------------------------
# v5.1: CascadedNet


class _Encoder51(nn.Module):
    def __init__(self, nin: int, nout: int, ksize: int, stride: int, pad: int):
        super().__init__()
        self.conv1 = Conv2DBNActiv(nin, nout, ksize, stride, pad, activ=nn.LeakyReLU)
        self.conv2 = Conv2DBNActiv(nout, nout, ksize, 1, pad, activ=nn.LeakyReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class _Decoder51(nn.Module):
    def __init__(self, nin: int, nout: int, ksize: int = 3, stride: int = 1, pad: int = 1):
        super().__init__()
        self.conv1 = Conv2DBNActiv(nin, nout, ksize, 1, pad)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = _up2(x)
        return self.conv1(torch.cat([x, crop_center(skip, x)], dim=1))

    def columns(self, x: torch.Tensor, have: Columns, skip: torch.Tensor, want: Columns) -> torch.Tensor:
        """This decoder's output columns `want` only (see `_decode`)."""
        return _decode(self.conv1, x, have, skip, want)


class _ASPP51(nn.Module):
    def __init__(self, nin: int, nout: int, dilations: tuple[tuple[int, int], ...]):
        super().__init__()
        self.conv1 = nn.Sequential(nn.AdaptiveAvgPool2d((1, None)), Conv2DBNActiv(nin, nout, 1, 1, 0))
        self.conv2 = Conv2DBNActiv(nin, nout, 1, 1, 0)
        self.conv3 = Conv2DBNActiv(nin, nout, 3, 1, dilations[0], dilations[0])
        self.conv4 = Conv2DBNActiv(nin, nout, 3, 1, dilations[1], dilations[1])
        self.conv5 = Conv2DBNActiv(nin, nout, 3, 1, dilations[2], dilations[2])
        self.bottleneck = Conv2DBNActiv(nout * 5, nout, 1, 1, 0)
        self.dropout = nn.Dropout2d(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [_pooled(self.conv1, x), self.conv2(x), self.conv3(x), self.conv4(x), self.conv5(x)]
        return self.dropout(self.bottleneck(torch.cat(feats, dim=1)))


class _LSTMModule(nn.Module):
    def __init__(self, nin_conv: int, nin_lstm: int, nout_lstm: int):
        super().__init__()
        self.conv = Conv2DBNActiv(nin_conv, 1, 1, 1, 0)
        self.lstm = nn.LSTM(input_size=nin_lstm, hidden_size=nout_lstm // 2, bidirectional=True)
        self.dense = nn.Sequential(nn.Linear(nout_lstm, nin_lstm), nn.BatchNorm1d(nin_lstm), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, nbins, nframes = x.shape
        h = self.conv(x)[:, 0].permute(2, 0, 1)  # frames, N, bins
        h, _ = self.lstm(h)
        h = self.dense(h.reshape(-1, h.shape[-1]))
        return h.reshape(nframes, n, 1, nbins).permute(1, 2, 3, 0)


class BaseNet(nn.Module):
    """One U-Net stage of the v5.1 network, with a BiLSTM beside its last decoder."""

    def __init__(self, nin: int, nout: int, nin_lstm: int, nout_lstm: int,
                 dilations: tuple[tuple[int, int], ...] = ((4, 2), (8, 4), (12, 6))):
        super().__init__()
        self.enc1 = Conv2DBNActiv(nin, nout, 3, 1, 1)
        self.enc2 = _Encoder51(nout, nout * 2, 3, 2, 1)
        self.enc3 = _Encoder51(nout * 2, nout * 4, 3, 2, 1)
        self.enc4 = _Encoder51(nout * 4, nout * 6, 3, 2, 1)
        self.enc5 = _Encoder51(nout * 6, nout * 8, 3, 2, 1)
        self.aspp = _ASPP51(nout * 8, nout * 8, dilations)
        self.dec4 = _Decoder51(nout * (6 + 8), nout * 6)
        self.dec3 = _Decoder51(nout * (4 + 6), nout * 4)
        self.dec2 = _Decoder51(nout * (2 + 4), nout * 2)
        self.lstm_dec2 = _LSTMModule(nout * 2, nin_lstm, nout_lstm)
        self.dec1 = _Decoder51(nout * (1 + 2) + 1, nout)

    def forward(self, x: torch.Tensor, want: Columns | None = None) -> torch.Tensor:
        """[B, nin, H, W] -> [B, nout, H, W]; with `want`, only those output columns (the last decoder's
        work: the BiLSTM before it reads every frame)."""
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        e5 = self.enc5(e4)
        h = self.aspp(e5)
        h = self.dec4(h, e4)
        h = self.dec3(h, e3)
        h = self.dec2(h, e2)
        h = torch.cat([h, self.lstm_dec2(h)], dim=1)
        if want is None:
            return self.dec1(h, e1)
        return self.dec1.columns(h, Columns.whole(h.shape[3]), e1, _decoder_plan(h.shape[3], 1, want)[0])


class CascadedNet(nn.Module):
    """UVR v5.1 network (``nets_new.CascadedNet``)."""

    def __init__(self, n_fft: int, nout: int = 32, nout_lstm: int = 128):
        super().__init__()
        self.max_bin = n_fft // 2
        self.output_bin = n_fft // 2 + 1
        self.nin_lstm = self.max_bin // 2
        self.offset = 64
        half_lstm = self.nin_lstm // 2
        self.stg1_low_band_net = nn.Sequential(BaseNet(2, nout // 2, half_lstm, nout_lstm),
                                               Conv2DBNActiv(nout // 2, nout // 4, 1, 1, 0))
        self.stg1_high_band_net = BaseNet(2, nout // 4, half_lstm, nout_lstm // 2)
        self.stg2_low_band_net = nn.Sequential(BaseNet(nout // 4 + 2, nout, half_lstm, nout_lstm),
                                               Conv2DBNActiv(nout, nout // 2, 1, 1, 0))
        self.stg2_high_band_net = BaseNet(nout // 4 + 2, nout // 2, half_lstm, nout_lstm // 2)
        self.stg3_full_band_net = BaseNet(3 * nout // 4 + 2, nout, self.nin_lstm, nout_lstm)
        self.out = nn.Conv2d(nout, 2, 1, bias=False)
        self.aux_out = nn.Conv2d(3 * nout // 4, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 2, bins + 1, W] magnitudes -> [B, 2, bins + 1, W] mask in (0, 1)."""
        return self._mask(x, None)

    def predict_centre(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 2, bins + 1, W] magnitudes -> the mask of frames [offset, W - offset) only, [B, 2, bins + 1,
        W - 2 * offset]: the last decoder computes the columns those frames read and no others."""
        return self._mask(x, Columns(self.offset, x.shape[3] - self.offset, x.shape[3]))

    def _mask(self, x: torch.Tensor, want: Columns | None) -> torch.Tensor:
        x = x[:, :, :self.max_bin]
        bw = x.shape[2] // 2
        l1_in, h1_in = x[:, :, :bw], x[:, :, bw:]
        l1 = self.stg1_low_band_net(l1_in)
        h1 = self.stg1_high_band_net(h1_in)
        aux1 = torch.cat([l1, h1], dim=2)
        l2 = self.stg2_low_band_net(torch.cat([l1_in, l1], dim=1))
        h2 = self.stg2_high_band_net(torch.cat([h1_in, h1], dim=1))
        aux2 = torch.cat([l2, h2], dim=2)
        f3 = self.stg3_full_band_net(torch.cat([x, aux1, aux2], dim=1), want)
        mask = torch.sigmoid(self.out(f3))
        return F.pad(mask, (0, 0, 0, self.output_bin - mask.shape[2]), mode="replicate")


class CentreMask(nn.Module):
    """A VR network called as vsep's torch runner calls it: `forward` is the network's `predict_centre`
    (what `vsep advise` counts for a window)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 2, bins + 1, W] magnitudes -> the mask of the window's centre, [B, 2, bins + 1, W - 2 * offset]."""
        return self.net.predict_centre(x)


def load_state(path: str, map_location: str = "cpu") -> dict[str, torch.Tensor]:
    """Load a VR .pth state dict safely (weights_only), as contiguous tensors of their own.

    UVR files store one tensor per storage; files that share one storage between tensors
    (views at offsets, with strides) load the same way: every tensor is copied out.
    """
    from vsep_core.checkpoints import torch_load

    obj = torch_load(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{Path(path).name} is not a plain state dict of tensors; delete {path} so that it is "
                          "downloaded again (or get a good copy from where it came from)")
    return {k: v.contiguous().clone() if not v.is_contiguous() or v.storage_offset() else v for k, v in obj.items()}
