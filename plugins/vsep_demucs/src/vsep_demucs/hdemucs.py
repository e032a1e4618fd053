"""Hybrid Demucs (Demucs v3, ``demucs.hdemucs.HDemucs``, e.g. ``hdemucs_mmi``), inference only.

vsep's own implementation of the hybrid spectrogram/waveform U-Net of Défossez, "Hybrid
Spectrogram and Waveform Source Separation" (2021), with the parameter names of the
published checkpoints. It shares its layers with :mod:`vsep_demucs.htdemucs`; the bottom
has no transformer (the decoder starts from zeros), and the deepest DConv branches add a
BiLSTM and local attention. Only complex-as-channels models without band splitting
(every published v4 catalogue entry) are supported.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
from torch import nn
from torch.nn import functional as F

from vsep_demucs.htdemucs import HDecLayer, HEncLayer, ScaledEmbedding, ispectro, pad1d, spectro


class HDemucs(nn.Module):
    """Hybrid Demucs: a spectrogram U-Net and a waveform U-Net that merge at the depth where the
    frequency axis is used up; outputs of both branches are summed. Runs on any input length."""

    def __init__(  # noqa: PLR0913 - the checkpoint's own signature
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
        depth: int = 6,
        rewrite: bool = True,
        hybrid: bool = True,
        hybrid_old: bool = False,
        multi_freqs: list | None = None,
        multi_freqs_depth: int = 2,
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
        dconv_comp: float = 4,
        dconv_attn: int = 4,
        dconv_lstm: int = 4,
        dconv_init: float = 1e-4,
        rescale: float = 0.1,
        samplerate: int = 44100,
        segment: float | Fraction = 4 * 10,
    ):
        super().__init__()
        if not cac:
            raise NotImplementedError("HDemucs without complex-as-channels (Wiener filtering) is not supported")
        if multi_freqs:
            raise NotImplementedError("HDemucs with multi_freqs band splitting is not supported")
        if hybrid_old and not hybrid:
            raise ValueError("hybrid_old needs hybrid=True")
        self.cac = cac
        self.audio_channels = audio_channels
        self.sources = list(sources)
        self.kernel_size = kernel_size
        self.context = context
        self.stride = stride
        self.depth = depth
        self.channels = channels
        self.samplerate = samplerate
        self.segment = segment
        self.nfft = nfft
        self.hop_length = nfft // 4
        self.freq_emb = None
        self.hybrid = hybrid
        self.hybrid_old = hybrid_old

        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()
        if hybrid:
            self.tencoder = nn.ModuleList()
            self.tdecoder = nn.ModuleList()

        chin = audio_channels
        chin_z = chin * 2
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
                      dconv_kw=dict(lstm=index >= dconv_lstm, attn=index >= dconv_attn, depth=dconv_depth,
                                    compress=dconv_comp, init=dconv_init, gelu=True))
            kwt = dict(kw, freq=False, kernel_size=kernel_size, stride=stride, pad=True)
            if last_freq:
                chout_z = max(chout, chout_z)
                chout = chout_z
            self.encoder.append(HEncLayer(chin_z, chout_z, dconv=bool(dconv_mode & 1), context=context_enc, **kw))
            if hybrid and freq:
                self.tencoder.append(HEncLayer(chin, chout, dconv=bool(dconv_mode & 1), context=context_enc,
                                               empty=last_freq, **kwt))
            if index == 0:
                chin = audio_channels * len(self.sources)
                chin_z = chin * 2
            self.decoder.insert(0, HDecLayer(chout_z, chin_z, dconv=bool(dconv_mode & 2), last=index == 0,
                                             context=context, **kw))
            if hybrid and freq:
                self.tdecoder.insert(0, HDecLayer(chout, chin, dconv=bool(dconv_mode & 2), empty=last_freq,
                                                  last=index == 0, context=context, **kwt))
            chin, chin_z = chout, chout_z
            chout, chout_z = int(growth * chout), int(growth * chout_z)
            if freq:
                freqs = 1 if freqs <= kernel_size else freqs // stride
            if index == 0 and freq_emb:
                self.freq_emb = ScaledEmbedding(freqs, chin_z, smooth=emb_smooth, scale=emb_scale)
                self.freq_emb_scale = freq_emb

    def _spec(self, x: torch.Tensor) -> torch.Tensor:
        hl = self.hop_length
        if self.hybrid:
            le = int(math.ceil(x.shape[-1] / hl))
            pad = hl // 2 * 3
            x = pad1d(x, (pad, pad + le * hl - x.shape[-1]), mode="constant" if self.hybrid_old else "reflect")
        z = spectro(x, self.nfft, hl)[..., :-1, :]
        if self.hybrid:
            z = z[..., 2:2 + le]
        return z

    def _ispec(self, z: torch.Tensor, length: int) -> torch.Tensor:
        hl = self.hop_length
        z = F.pad(z, (0, 0, 0, 1))
        if not self.hybrid:
            return ispectro(z, hl, length)
        z = F.pad(z, (2, 2))
        pad = hl // 2 * 3
        if self.hybrid_old:
            return ispectro(z, hl, length=hl * int(math.ceil(length / hl)))[..., :length]
        x = ispectro(z, hl, length=hl * int(math.ceil(length / hl)) + 2 * pad)
        return x[..., pad:pad + length]

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """mix [batch, audio_channels, samples] -> [batch, sources, audio_channels, samples]."""
        length = mix.shape[-1]
        z = self._spec(mix)
        b, c, fq, t = z.shape
        x = torch.view_as_real(z).permute(0, 1, 4, 2, 3).reshape(b, c * 2, fq, t).to(mix.device)
        b, c, fq, t = x.shape
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) / (1e-5 + std)
        xt = mix
        if self.hybrid:
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
            if self.hybrid and idx < len(self.tencoder):
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

        x = torch.zeros_like(x)
        if self.hybrid:
            xt = torch.zeros_like(x)
            offset = self.depth - len(self.tdecoder)
        for idx, decode in enumerate(self.decoder):
            x, pre = decode(x, saved.pop(-1), lengths.pop(-1))
            if self.hybrid and idx >= offset:
                tdec = self.tdecoder[idx - offset]
                length_t = lengths_t.pop(-1)
                if tdec.empty:
                    xt, _ = tdec(pre[:, :, 0], None, length_t)
                else:
                    xt, _ = tdec(xt, saved_t.pop(-1), length_t)

        s = len(self.sources)
        x = x.view(b, s, -1, fq, t) * std[:, None] + mean[:, None]
        m = x.view(b, s, -1, 2, fq, t).permute(0, 1, 2, 4, 5, 3)
        device = x.device
        if device.type not in ("cuda", "cpu"):
            m = m.cpu()
        x = self._ispec(torch.view_as_complex(m.contiguous()), length).to(device)
        if self.hybrid:
            xt = xt.view(b, s, -1, length) * stdt[:, None] + meant[:, None]
            x = xt + x
        return x
