"""STFT helpers shared by the MDXC networks.

Both network families run ``torch.stft`` with a periodic Hann window, ``center=True`` and
reflect padding. Complex tensors live on the "complex host": the model's device on CPU
and CUDA, the CPU on devices without complex support (MPS, DirectML). The networks keep
their real-valued work on the model device and their complex work on the host.
"""

from __future__ import annotations

import torch

_COMPLEX_DEVICES = ("cpu", "cuda")


def complex_host(device: torch.device) -> torch.device:
    """The device that complex work for tensors on `device` runs on."""
    return device if device.type in _COMPLEX_DEVICES else torch.device("cpu")


def stft(x: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None,
         normalized: bool = False) -> torch.Tensor:
    """Complex STFT of `x` [..., samples] -> [..., freqs, frames] on the complex host (Hann, centred)."""
    win_length = win_length or n_fft
    host = complex_host(x.device)
    window = torch.hann_window(win_length, periodic=True, device=host, dtype=torch.float32)
    batch_shape = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1]).to(host, torch.float32)
    spec = torch.stft(flat, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                      center=True, pad_mode="reflect", normalized=normalized, return_complex=True)
    return spec.reshape(*batch_shape, *spec.shape[-2:])


def istft(spec: torch.Tensor, n_fft: int, hop_length: int, win_length: int | None = None,
          normalized: bool = False, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft`: complex [..., freqs, frames] -> real [..., samples] on the complex host."""
    win_length = win_length or n_fft
    host = complex_host(spec.device)
    window = torch.hann_window(win_length, periodic=True, device=host, dtype=torch.float32)
    batch_shape = spec.shape[:-2]
    flat = spec.reshape(-1, *spec.shape[-2:]).to(host)
    wave = torch.istft(flat, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
                       center=True, normalized=normalized, length=length)
    return wave.reshape(*batch_shape, wave.shape[-1])
