"""Helpers of the vsep-vr tests: oracle paths, hand-built LoadContexts, the parity metric, tiny VR nets.

A uniquely named module (tests run with --import-mode=importlib; conftest.py puts this folder on sys.path).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from vsep_vr.plugin import VRParams

from vsep_core.api import Device, LoadContext, ModelRecord

REPO_ROOT = Path(__file__).resolve().parents[3]
REFERENCE = REPO_ROOT.parent / "shared" / "reference"
CASES = ("vr_nets_default", "vr_nets_tta_pp_highend", "vr_nets_new_default")

# tiny random networks: 4band_v2 band parameters (672 bins), 1.5 s of audio = one 512-frame window
TINY_V5 = {"vr_model_param": "4band_v2", "primary_stem": "Instrumental"}
TINY_V51 = {"vr_model_param": "4band_v3", "primary_stem": "No Echo", "nout": 4, "nout_lstm": 8}
# and on a 256-bin single band (a third of the work per window) for the option-by-option tests
SMALL_V5 = {"vr_model_param": "1band_sr44100_hl256", "primary_stem": "Vocals"}
SMALL_V51 = {"vr_model_param": "1band_sr44100_hl256", "primary_stem": "No Reverb", "nout": 4, "nout_lstm": 8}


def make_ctx(model_path: Path, model_data: dict[str, Any], **params: Any) -> LoadContext:
    """A LoadContext as core builds it, on CPU."""
    return LoadContext(
        record=ModelRecord(filename=model_path.name, architecture="VR", friendly_name=model_path.stem, files=[]),
        model_path=model_path, model_dir=model_path.parent, config_path=None, params=VRParams(**params),
        device=Device("cpu", ("CPUExecutionProvider",)), model_data=dict(model_data))


def parity_db(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(parity dB, gain dB) as check_reference.py computes them, over the common length."""
    n = min(ours.shape[-1], ref.shape[-1])
    ours, ref = ours[..., :n].astype(np.float64), ref[..., :n].astype(np.float64)
    g = float(np.sum(ours * ref)) / float(np.sum(ref**2))
    err = float(np.sum((ours - g * ref) ** 2))
    gain = 20 * math.log10(abs(g)) if g else -math.inf
    return (math.inf if err == 0 else 10 * math.log10(g * g * float(np.sum(ref**2)) / err)), gain


def randomize_(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give a freshly built net non-trivial weights and BatchNorm statistics (in place)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1:  # norm gains
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.05 * torch.randn(b.shape, generator=gen))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen))
    return net


def calibrate_(net: torch.nn.Module, param: str = "4band_v2", window: int = 512, seed: int = 0) -> torch.nn.Module:
    """Set BatchNorm statistics from one train-mode pass over real VR input windows (as the
    oracle's files were made), so that the random net's mask varies with its input."""
    from vsep_vr import bands

    bp = bands.load_band_params(param)
    waves = bands.band_waves(noise_mix(3.0, seed=seed + 1), bp)
    mag = np.abs(bands.analyse(waves, bp, False, bands.frames_of(waves, bp)).spec)
    mag = np.pad(mag, ((0, 0), (0, 0), (0, max(0, 2 * window - mag.shape[2]))))
    batch = torch.from_numpy(np.stack([mag[..., :window], mag[..., -window:]]) / mag.max())
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
    net.train()
    with torch.no_grad():
        net(batch.float())
    return net.eval()


def save_tiny(path: Path, generation: str = "v5", seed: int = 0, param: str = "4band_v2", **kw: Any) -> Path:
    """Save a small random VR state dict (v5: ch=2; v51: nout=4, nout_lstm=8) for the bins of
    band parameters `param`, with calibrated BatchNorm statistics."""
    from vsep_vr import bands, nets

    n_fft = 2 * bands.load_band_params(param).bins
    torch.manual_seed(seed)
    if generation == "v5":
        net = nets.CascadedASPPNet(n_fft, kw.get("ch", 2), kw.get("branches", 5), kw.get("extra_level", False))
    else:
        net = nets.CascadedNet(n_fft, kw.get("nout", 4), kw.get("nout_lstm", 8))
    net = calibrate_(randomize_(net, seed), param, seed=seed)
    torch.save(net.state_dict(), path)
    return path


def noise_mix(seconds: float = 1.5, rate: int = 44100, seed: int = 0, channels: int = 2) -> np.ndarray:
    """A music-like test signal: decaying tones plus a little noise, float32 [channels, samples]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    sig = np.zeros((channels, t.size))
    for f in (110, 220, 330, 440, 880, 1760, 3520, 7040):
        sig += (0.3 / np.sqrt(f / 110)) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6, (channels, 1)))
    sig *= 0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)
    sig += 0.02 * rng.standard_normal(sig.shape)
    return (0.8 * sig / np.abs(sig).max()).astype(np.float32)


def band_energy(x: np.ndarray, rate: int, lo: float, hi: float) -> float:
    """Energy of x (all channels) between lo and hi Hz."""
    spec = np.abs(np.fft.rfft(x.astype(np.float64), axis=-1)) ** 2
    f = np.fft.rfftfreq(x.shape[-1], 1 / rate)
    return float(spec[..., (f >= lo) & (f < hi)].sum())
