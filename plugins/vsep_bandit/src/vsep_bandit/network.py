"""The BandIt v2 network (Watcharasupat et al.), written for vsep from MSST's ``bandit_v2`` description.

Per channel (the network sees mono signals): a complex STFT, one LayerNorm + Linear embedding per band
of the musical layout, a stack of residual bidirectional RNNs that alternate between the time axis and
the band axis, and per stem one LayerNorm + MLP + GLU mask head per band whose complex masks overlap-add
(weighted by each bin's band share) into a full-band mask. The masked spectrogram is inverted per stem.

Tensor names follow MSST's checkpoints (``band_split.norm_fc_modules.<i>.combined.{0,1}``,
``tf_model.seqband.<2k>.{norm,rnn,fc}``, ``mask_estim.<stem>.norm_mlp.<i>.{norm,hidden.0,output.0}`` and
their ``combined.*`` aliases, ``mask_estim.<stem>.freq_weights/<i>``), so their state dicts load as they
are. Only the inference path is here (no training-time options).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vsep_bandit.bands import BandLayout


@dataclass(frozen=True)
class BanditConfig:
    """The yaml's ``kwargs`` that shape the network (MSST's names and defaults)."""

    stems: tuple[str, ...]
    in_channels: int = 1
    n_bands: int = 64
    n_sqm_modules: int = 12
    emb_dim: int = 128
    rnn_dim: int = 256
    bidirectional: bool = True
    rnn_type: str = "LSTM"
    mlp_dim: int = 512
    hidden_activation: str = "Tanh"
    hidden_activation_kwargs: dict[str, Any] = field(default_factory=dict)
    complex_mask: bool = True
    use_freq_weights: bool = True
    n_fft: int = 2048
    win_length: int | None = 2048
    hop_length: int = 512
    window_fn: str = "hann_window"
    wkwargs: dict[str, Any] = field(default_factory=dict)
    center: bool = True
    normalized: bool = True
    pad_mode: str = "constant"
    onesided: bool = True
    fs: int = 44100

    @property
    def n_freqs(self) -> int:
        """Bins of the one-sided STFT."""
        return self.n_fft // 2 + 1


class Spectral(nn.Module):
    """torch.stft / torch.istft with a "window"-normalised scale (divide / multiply by sqrt(sum(window^2)))."""

    def __init__(self, cfg: BanditConfig) -> None:
        super().__init__()
        win_length = cfg.win_length or cfg.n_fft
        window = getattr(torch, cfg.window_fn)(win_length, **cfg.wkwargs)
        self.register_buffer("window", window, persistent=False)
        self.n_fft, self.hop, self.win_length = cfg.n_fft, cfg.hop_length, win_length
        self.center, self.pad_mode, self.onesided = cfg.center, cfg.pad_mode, cfg.onesided
        self.scale = float(window.pow(2).sum().sqrt()) if cfg.normalized else 1.0

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """[..., samples] -> complex [..., freqs, frames]."""
        lead = audio.shape[:-1]
        spec = torch.stft(audio.reshape(-1, audio.shape[-1]), self.n_fft, self.hop, self.win_length,
                          self.window, center=self.center, pad_mode=self.pad_mode, onesided=self.onesided,
                          return_complex=True)
        return (spec / self.scale).reshape(*lead, *spec.shape[-2:])

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """complex [..., freqs, frames] -> [..., length]."""
        lead = spec.shape[:-2]
        audio = torch.istft((spec * self.scale).reshape(-1, *spec.shape[-2:]), self.n_fft, self.hop,
                            self.win_length, self.window, center=self.center, onesided=self.onesided,
                            length=length)
        return audio.reshape(*lead, audio.shape[-1])


class BandEmbedding(nn.Module):
    """One band's real/imaginary bins -> an embedding (LayerNorm, Linear), as ``combined.0`` / ``combined.1``."""

    def __init__(self, width: int, in_channels: int, emb_dim: int) -> None:
        super().__init__()
        features = 2 * width * in_channels
        self.combined = nn.Sequential(nn.LayerNorm(features), nn.Linear(features, emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, frames, features] -> [batch, frames, emb_dim]."""
        return self.combined(x)


class BandSplit(nn.Module):
    """Complex spectrogram [batch, channels, freqs, frames] -> band embeddings [batch, bands, frames, emb]."""

    def __init__(self, layout: BandLayout, in_channels: int, emb_dim: int) -> None:
        super().__init__()
        self.bands = layout.bands
        self.norm_fc_modules = nn.ModuleList(BandEmbedding(w, in_channels, emb_dim) for w in layout.widths)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Embed every band; bins are flattened as (channel, bin, re/im)."""
        batch, _, _, frames = spec.shape
        spec = spec.permute(0, 3, 1, 2)  # batch, frames, channels, freqs
        embedded = []
        for (start, end), embed in zip(self.bands, self.norm_fc_modules, strict=True):
            band = torch.view_as_real(spec[..., start:end].contiguous()).reshape(batch, frames, -1)
            embedded.append(embed(band))
        return torch.stack(embedded, dim=1)


class ResidualRNN(nn.Module):
    """x + Linear(RNN(LayerNorm(x))) along axis 2 of [batch, n, seq, emb], every row of axis 1 separately."""

    def __init__(self, emb_dim: int, rnn_dim: int, bidirectional: bool, rnn_type: str) -> None:
        super().__init__()
        rnn_class = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[rnn_type]
        self.norm = nn.LayerNorm(emb_dim)
        self.rnn = rnn_class(input_size=emb_dim, hidden_size=rnn_dim, num_layers=1, batch_first=True,
                             bidirectional=bidirectional)
        self.fc = nn.Linear(rnn_dim * (2 if bidirectional else 1), emb_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Residual RNN over the sequence axis."""
        batch, rows, seq, emb = z.shape
        y = self.rnn(self.norm(z).reshape(batch * rows, seq, emb))[0]
        return z + self.fc(y.reshape(batch, rows, seq, -1))


class SwapAxes(nn.Module):
    """Swap the band and time axes (no parameters; keeps MSST's module indices)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """[batch, a, b, emb] -> [batch, b, a, emb]."""
        return z.transpose(1, 2)


class SequenceModel(nn.Module):
    """2 * n_modules residual RNNs, alternating over time and over bands."""

    def __init__(self, n_modules: int, emb_dim: int, rnn_dim: int, bidirectional: bool, rnn_type: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(2 * n_modules):
            layers += [ResidualRNN(emb_dim, rnn_dim, bidirectional, rnn_type), SwapAxes()]
        self.seqband = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """[batch, bands, frames, emb] -> same shape."""
        return self.seqband(z)


class BandMaskHead(nn.Module):
    """One band's mask from its embedding: LayerNorm, Linear, activation, Linear, GLU."""

    def __init__(self, cfg: BanditConfig, width: int) -> None:
        super().__init__()
        activation = getattr(nn, cfg.hidden_activation)(**cfg.hidden_activation_kwargs)
        self.width, self.in_channels, self.complex_mask = width, cfg.in_channels, cfg.complex_mask
        reim = 2 if cfg.complex_mask else 1
        self.norm = nn.LayerNorm(cfg.emb_dim)
        self.hidden = nn.Sequential(nn.Linear(cfg.emb_dim, cfg.mlp_dim), activation)
        self.output = nn.Sequential(nn.Linear(cfg.mlp_dim, width * cfg.in_channels * reim * 2), nn.GLU(dim=-1))
        self.combined = nn.Sequential(self.norm, self.hidden, self.output)  # MSST's alias: same tensors twice

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """[batch, frames, emb] -> mask [batch, channels, width, frames] (complex when complex_mask)."""
        batch, frames, _ = q.shape
        m = self.combined(q)
        if self.complex_mask:
            m = torch.view_as_complex(m.reshape(batch, frames, self.in_channels, self.width, 2).contiguous())
        else:
            m = m.reshape(batch, frames, self.in_channels, self.width)
        return m.permute(0, 2, 3, 1)


class MaskEstimator(nn.Module):
    """One stem's full-band complex mask: per-band heads, weighted by bin share and overlap-added."""

    def __init__(self, cfg: BanditConfig, layout: BandLayout) -> None:
        super().__init__()
        self.bands, self.n_freqs, self.in_channels = layout.bands, cfg.n_freqs, cfg.in_channels
        self.norm_mlp = nn.ModuleList(BandMaskHead(cfg, w) for w in layout.widths)
        self.use_freq_weights = cfg.use_freq_weights
        if cfg.use_freq_weights:
            for i, weights in enumerate(layout.weights):
                self.register_buffer(f"freq_weights/{i}", torch.as_tensor(weights))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """[batch, bands, frames, emb] -> complex64 [batch, channels, freqs, frames]."""
        batch, _, frames, _ = q.shape
        mask = torch.zeros((batch, self.in_channels, self.n_freqs, frames), dtype=torch.complex64, device=q.device)
        for i, ((start, end), head) in enumerate(zip(self.bands, self.norm_mlp, strict=True)):
            m = head(q[:, i])
            if self.use_freq_weights:
                m = m * self.get_buffer(f"freq_weights/{i}")[:, None]
            mask[:, :, start:end, :] += m
        return mask


class Bandit(nn.Module):
    """BandIt v2: [batch, channels, samples] -> [batch, stems, channels, samples], each channel separated alone."""

    def __init__(self, cfg: BanditConfig, layout: BandLayout) -> None:
        super().__init__()
        self.stems = list(cfg.stems)
        self.spectral = Spectral(cfg)
        self.band_split = BandSplit(layout, cfg.in_channels, cfg.emb_dim)
        self.tf_model = SequenceModel(cfg.n_sqm_modules, cfg.emb_dim, cfg.rnn_dim, cfg.bidirectional, cfg.rnn_type)
        self.mask_estim = nn.ModuleDict({stem: MaskEstimator(cfg, layout) for stem in cfg.stems})

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Separate every channel of every item as a mono signal."""
        batch, channels, length = audio.shape
        mono = audio.reshape(batch * channels, 1, length)
        spec = self.spectral(mono)  # batch*channels, 1, freqs, frames
        q = self.tf_model(self.band_split(spec))
        outs = []
        for estimator in self.mask_estim.values():
            est = self.spectral.inverse(spec * estimator(q), length)
            outs.append(est.reshape(batch, channels, length))
        return torch.stack(outs, dim=1)
