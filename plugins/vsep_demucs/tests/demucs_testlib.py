"""Helpers of the vsep-demucs tests: tiny HTDemucs models saved in the real `.th` format."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from vsep_demucs.hdemucs import HDemucs
from vsep_demucs.htdemucs import HTDemucs
from vsep_demucs.plugin import DemucsParams

from vsep_core.api import Device, LoadContext, ModelRecord
from vsep_core.testlib import importable_class

REPO_ROOT = Path(__file__).resolve().parents[3]
ORACLE = REPO_ROOT.parent / "shared" / "reference"
SOURCES = ["drums", "bass", "other", "vocals"]
TINY_KWARGS: dict[str, Any] = dict(sources=SOURCES, audio_channels=2, samplerate=8000, segment=Fraction(3, 2),
                                   channels=4, depth=4, nfft=4096, t_layers=2, t_heads=2, dconv_comp=2)


def demucs_class(qualified: str = "demucs.htdemucs.HTDemucs") -> contextlib.AbstractContextManager[type]:
    """A stand-in class importable as `qualified` (e.g. demucs.htdemucs.HTDemucs) while the
    context lasts, so that pickle stores it by reference exactly like the published files."""
    return importable_class(qualified)


#: hdemucs_mmi's structure (depth 6, BiLSTM and local attention in the deepest DConv), tiny.
TINY_HDEMUCS_KWARGS: dict[str, Any] = dict(sources=SOURCES, audio_channels=2, samplerate=8000, segment=40,
                                           channels=4, depth=6, nfft=4096, dconv_comp=2)


def save_package(package: dict[str, Any], directory: Path, signature: str,
                 klass: str = "demucs.htdemucs.HTDemucs") -> Path:
    """torch.save `package` as `<signature>-<sha256[:8]>.th`, with `klass` pickled by reference
    (as `demucs.htdemucs.HTDemucs` by default) like the published files. A `klass` already in
    `package` is kept (it must be picklable)."""
    buf = io.BytesIO()
    with demucs_class(klass) as ref:
        torch.save({"klass": ref, **package}, buf)
    data = buf.getvalue()
    path = directory / f"{signature}-{hashlib.sha256(data).hexdigest()[:8]}.th"
    path.write_bytes(data)
    return path


def make_tiny(directory: Path, signature: str, seed: int, hybrid_v3: bool = False, **overrides: Any) -> Path:
    """A random tiny HTDemucs (or HDemucs with `hybrid_v3`; own classes, torch seed `seed`)
    saved as a real Demucs package."""
    torch.manual_seed(seed)
    base = TINY_HDEMUCS_KWARGS if hybrid_v3 else TINY_KWARGS
    kwargs = {**base, **overrides}
    model = (HDemucs if hybrid_v3 else HTDemucs)(**kwargs)
    with torch.no_grad():  # make the layer scales matter, so every branch shows in the output
        for name, p in model.named_parameters():
            if name.endswith(".scale"):
                p.normal_(0.5, 0.1)
    state = {k: v.half() for k, v in model.state_dict().items()}
    return save_package({"args": (), "kwargs": kwargs, "state": state, "training_args": {"note": "test"}},
                        directory, signature, "demucs.hdemucs.HDemucs" if hybrid_v3 else "demucs.htdemucs.HTDemucs")


def write_bag(directory: Path, name: str, signatures: list[str], weights: list[list[float]] | None = None,
              segment: float | None = None) -> Path:
    """Write a bag-of-models yaml like the published ones."""
    lines = [f"models: {signatures!r}"]
    if weights is not None:
        lines.append(f"weights: {weights!r}")
    if segment is not None:
        lines.append(f"segment: {segment}")
    path = directory / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def context(model_path: Path, **params: Any) -> LoadContext:
    """A LoadContext as core builds it, for a CPU run."""
    return LoadContext(record=ModelRecord(model_path.name, "Demucs", model_path.stem, []), model_path=model_path,
                       model_dir=model_path.parent, config_path=None, params=DemucsParams(**params),
                       device=Device("cpu", ("CPUExecutionProvider",)), logger=logging.getLogger("vsep.test"))
