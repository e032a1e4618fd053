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
outputs of all earlier steps), ``stereo``, the STFT settings, BS ``freqs_per_bands`` and Mel
``num_bands``/``sample_rate``. ``zero_dc``, ``flash_attn``, ``sage_attention``,
``use_torch_checkpoint`` and dropouts do not change inference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise the last axis."""
        # sqrt(dim) / ||x|| on the small [..., 1] tensor first: two passes over x instead of three
        return x * (self.scale * _inverse_norm(x)).to(x.dtype) * self.gamma


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


class Attention(nn.Module):
    """Multi-head self-attention with rotary positions and a sigmoid gate per head."""

    def __init__(self, dim: int, heads: int, dim_head: int, rotary_embed: RotaryEmbedding | None):
        super().__init__()
        self.heads = heads
        inner = heads * dim_head
        self.rotary_embed = rotary_embed
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(inner, dim, bias=False), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[b, n, dim] -> [b, n, dim]."""
        x = self.norm(x)
        b, n, _ = x.shape
        qkv = self.to_qkv(x).reshape(b, n, 3, self.heads, -1)  # [b, n, (q k v), h, d]
        if self.rotary_embed is not None:  # q and k rotated in one pass
            qk = self.rotary_embed.rotate(qkv[:, :, :2], seq_dim=1)
            q, k = qk.permute(2, 0, 3, 1, 4)
            v = qkv[:, :, 2].transpose(1, 2)
        else:
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        gates = self.to_gates(x).sigmoid()  # [b, n, h]
        out = out * gates.transpose(1, 2).unsqueeze(-1)
        out = out.transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., dim] -> [..., dim]."""
        return self.net(x)


class Transformer(nn.Module):
    """A stack of pre-norm residual (attention, feed-forward) pairs, optionally RMS-normed at the end."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, norm_output: bool,
                 rotary_embed: RotaryEmbedding | None = None, linear_attn: bool = False):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(depth):
            attn: nn.Module
            if linear_attn:
                attn = LinearAttention(dim, heads, dim_head)
            else:
                attn = Attention(dim, heads, dim_head, rotary_embed)
            self.layers.append(nn.ModuleList([attn, FeedForward(dim)]))
        self.norm = RMSNorm(dim) if norm_output else nn.Identity()

    max_elements = 4096 * 512
    """Sequences are run through the stack in groups of at most this many activations (tokens x
    dim; at least one sequence): every sequence is independent, so the result is the same, while
    the largest activations (qkv, the 4x feed-forward hidden layer) shrink from the whole batch to
    one group. For BS-RoFormer ep_317 (dim 512) on an 8 s chunk, groups of 4096 tokens take the
    forward's peak from 1.96 to 1.40 GB; small networks get proportionally more tokens per group."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[b, n, dim] -> [b, n, dim]."""
        group = max(1, self.max_elements // max(1, x.shape[1] * x.shape[2]))
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


class BandSplit(nn.Module):
    """Per band: RMSNorm + Linear from the band's (re, im) x channel x bins to `dim` features."""

    def __init__(self, dim: int, dim_inputs: Sequence[int]):
        super().__init__()
        self.dim_inputs = tuple(dim_inputs)
        self.to_features = nn.ModuleList(nn.Sequential(RMSNorm(d), nn.Linear(d, dim)) for d in self.dim_inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[b, t, sum(dim_inputs)] -> [b, t, bands, dim]."""
        parts = x.split(self.dim_inputs, dim=-1)
        return torch.stack([net(p) for p, net in zip(parts, self.to_features, strict=True)], dim=-2)


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
        self.to_freqs = nn.ModuleList(
            nn.Sequential(_mlp(dim, d * 2, hidden, hidden_layers), nn.GLU(dim=-1)) for d in dim_inputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[b, t, bands, dim] -> [b, t, sum(dim_inputs)]."""
        bands = x.unbind(dim=-2)
        return torch.cat([mlp(band) for band, mlp in zip(bands, self.to_freqs, strict=True)], dim=-1)


@dataclass
class RoformerConfig:
    """Constructor options of both RoFormer variants (yaml ``model`` section after alias resolution)."""

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

    @classmethod
    def field_names(cls) -> set[str]:
        """Names of every option."""
        return {f.name for f in fields(cls)}


class _RoformerBase(nn.Module):
    """Shared body: STFT, band features, axial transformers, masks, iSTFT."""

    final_norm: nn.Module | None

    def __init__(self, cfg: RoformerConfig, dim_inputs: Sequence[int], norm_output: bool, mask_hidden_layers: int):
        super().__init__()
        self.cfg = cfg
        self.audio_channels = 2 if cfg.stereo else 1
        time_rotary = RotaryEmbedding(cfg.dim_head)
        freq_rotary = RotaryEmbedding(cfg.dim_head)
        common = dict(dim=cfg.dim, heads=cfg.heads, dim_head=cfg.dim_head, norm_output=norm_output)
        self.layers = nn.ModuleList()
        for _ in range(cfg.depth):
            blocks = []
            if cfg.linear_transformer_depth > 0:
                blocks.append(Transformer(depth=cfg.linear_transformer_depth, linear_attn=True, **common))
            blocks.append(Transformer(depth=cfg.time_transformer_depth, rotary_embed=time_rotary, **common))
            blocks.append(Transformer(depth=cfg.freq_transformer_depth, rotary_embed=freq_rotary, **common))
            self.layers.append(nn.ModuleList(blocks))
        self.band_split = BandSplit(cfg.dim, dim_inputs)
        self.mask_estimators = nn.ModuleList(
            MaskEstimator(cfg.dim, dim_inputs, mask_hidden_layers, cfg.mlp_expansion_factor)
            for _ in range(cfg.num_stems))

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
                    x = x + earlier
            b, t, f, d = x.shape
            x = x.transpose(1, 2).reshape(b * f, t, d)
            x = time_tf(x)
            x = x.reshape(b, f, t, d).transpose(1, 2).reshape(b * t, f, d)
            x = freq_tf(x)
            x = x.reshape(b, t, f, d)
            if self.cfg.skip_connection:
                store.append(x)
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
            x = self.final_norm(x)
        masks = torch.stack([est(x) for est in self.mask_estimators], dim=1)  # [b, n, t, features]
        masks = masks.reshape(*masks.shape[:3], -1, 2).transpose(2, 3)  # [b, n, features/2, t, 2]
        host = complex_host(device)
        masks = torch.view_as_complex(masks.to(host, torch.float32).contiguous())
        out = self._apply_masks(spec.unsqueeze(1), masks)  # [b, n, (f s), t]
        n = out.shape[1]
        out = out.reshape(b, n, -1, self.audio_channels, out.shape[-1]).transpose(2, 3)  # [b, n, s, f, t]
        wave = istft(out, self.cfg.stft_n_fft, self.cfg.stft_hop_length, self.cfg.stft_win_length,
                     self.cfg.stft_normalized, length=length).to(device)
        return wave[:, 0] if n == 1 else wave


class BSRoformer(_RoformerBase):
    """Band-Split RoFormer: contiguous, non-overlapping bands of `freqs_per_bands` bins."""

    def __init__(self, cfg: RoformerConfig):
        channels = 2 if cfg.stereo else 1
        freqs = cfg.stft_n_fft // 2 + 1
        if len(cfg.freqs_per_bands) < 2 or sum(cfg.freqs_per_bands) != freqs:
            raise ValueError(f"freqs_per_bands must have at least 2 bands summing to {freqs} "
                             f"(stft_n_fft {cfg.stft_n_fft}), got {sum(cfg.freqs_per_bands)} in "
                             f"{len(cfg.freqs_per_bands)} bands")
        dim_inputs = tuple(2 * f * channels for f in cfg.freqs_per_bands)
        super().__init__(cfg, dim_inputs, norm_output=False, mask_hidden_layers=cfg.mask_estimator_depth - 1)
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

    def __init__(self, cfg: RoformerConfig):
        channels = 2 if cfg.stereo else 1
        with torch.device("cpu"):  # real values even when the network is built on meta (model.build_with_weights)
            member = torch.from_numpy(mel_band_membership(cfg.sample_rate, cfg.stft_n_fft, cfg.num_bands))
            freqs = member.shape[1]
            freq_indices = torch.arange(freqs).expand(cfg.num_bands, freqs)[member]
            if channels == 2:
                freq_indices = (freq_indices[:, None] * 2 + torch.arange(2)).reshape(-1)
        dim_inputs = tuple(2 * int(f) * channels for f in member.sum(dim=1).tolist())
        super().__init__(cfg, dim_inputs, norm_output=True, mask_hidden_layers=cfg.mask_estimator_depth)
        self.final_norm = None
        self.register_buffer("freq_indices", freq_indices, persistent=False)
        self.register_buffer("num_bands_per_freq", member.sum(dim=0), persistent=False)

    def _gather(self, spec: torch.Tensor) -> torch.Tensor:
        """Pick every band's bins (a bin may appear in two bands): -> [b, t, (bins 2)]."""
        x = spec[:, self.freq_indices]  # [b, idx, t, 2]
        b, idx, t, _ = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, t, idx * 2)

    def _apply_masks(self, spec: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Scatter-add band masks onto bins, average by the number of bands per bin, multiply."""
        b, n, _, t = masks.shape
        indices = self.freq_indices.to(masks.device)
        summed = torch.zeros(b, n, spec.shape[2], t, dtype=masks.dtype, device=masks.device)
        summed.scatter_add_(2, indices.view(1, 1, -1, 1).expand(b, n, -1, t), masks)
        denom = self.num_bands_per_freq.to(masks.device, torch.float32).repeat_interleave(self.audio_channels)
        return spec * (summed / denom.clamp(min=1e-8).view(1, 1, -1, 1))


_ALIASES = {
    "n_fft": "stft_n_fft", "hop_length": "stft_hop_length", "win_length": "stft_win_length",
    "normalized": "stft_normalized", "n_heads": "heads", "num_heads": "heads", "head_dim": "dim_head",
    "expansion_factor": "mlp_expansion_factor", "mlp_ratio": "mlp_expansion_factor",
    "freq_bands": "freqs_per_bands", "frequency_bands": "freqs_per_bands", "mel_bands": "num_bands",
    "n_mels": "num_bands",
}
_BOOL_KEYS = {"stereo", "skip_connection", "stft_normalized"}
_NO_EFFECT_KEYS = {
    "zero_dc", "flash_attn", "sage_attention", "use_torch_checkpoint", "attn_dropout", "ff_dropout", "dim_freqs_in",
    "multi_stft_resolution_loss_weight", "multi_stft_resolutions_window_sizes", "multi_stft_hop_size",
    "multi_stft_normalized", "multi_stft_window_fn", "match_input_audio_length", "stft_window_fn",
}


def normalize_model_section(model: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the community's alias names (``n_heads`` -> ``heads``, ``n_mels`` -> ``num_bands``, ...)."""
    return {_ALIASES.get(k, k): v for k, v in model.items()}


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def roformer_config(model: Mapping[str, Any], variant: str, num_stems: int | None = None,
                    num_bands: int | None = None) -> RoformerConfig:
    """Build the options of `variant` ("bs" or "mel") from a yaml ``model`` section.

    Missing ``num_stems``/``num_bands`` fall back to the given values (counted from the
    checkpoint by the caller), then to 1 / 60. Missing ``mask_estimator_depth`` is 2 for BS
    and 1 for Mel, the constructors' defaults.
    """
    section = normalize_model_section(model)
    window = section.get("stft_window_fn")
    if window not in (None, "hann", "hann_window", "torch.hann_window"):
        raise ValueError(f"unsupported stft_window_fn {window!r} (only the Hann window is implemented)")
    names = RoformerConfig.field_names()
    kwargs: dict[str, Any] = {}
    for key, value in section.items():
        if key not in names or value is None:
            continue
        if key in _BOOL_KEYS:
            kwargs[key] = _to_bool(value)
        elif key == "freqs_per_bands":
            kwargs[key] = tuple(int(v) for v in value)
        else:
            kwargs[key] = int(float(value))
    for required in ("dim", "depth"):
        if required not in kwargs:
            raise ValueError(f"the yaml model section has no {required!r}")
    if "num_stems" not in kwargs:
        kwargs["num_stems"] = num_stems or 1
    if variant == "bs":
        if "freqs_per_bands" not in kwargs:
            raise ValueError("a BS-RoFormer yaml needs model.freqs_per_bands")
        kwargs.setdefault("mask_estimator_depth", 2)
    else:
        if "num_bands" not in kwargs:
            kwargs["num_bands"] = num_bands or 60
        kwargs.setdefault("mask_estimator_depth", 1)
    return RoformerConfig(**kwargs)


def build_roformer(cfg: RoformerConfig, variant: str) -> _RoformerBase:
    """The network of `variant` ("bs" or "mel") with random weights."""
    return BSRoformer(cfg) if variant == "bs" else MelBandRoformer(cfg)


def ignored_keys(model: Mapping[str, Any]) -> list[str]:
    """Keys of a yaml ``model`` section that neither shape the network nor are known to be inert."""
    names = RoformerConfig.field_names() | _NO_EFFECT_KEYS
    return sorted(k for k in normalize_model_section(model) if k not in names)
