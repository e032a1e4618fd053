"""Helpers of the vsep-demucs tests: tiny HTDemucs models saved in the real `.th` format."""

from __future__ import annotations

import hashlib
import io
import logging
import sys
import types
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from vsep_core.api import Device, LoadContext, ModelRecord

from vsep_demucs.htdemucs import HTDemucs
from vsep_demucs.plugin import DemucsParams

REPO_ROOT = Path(__file__).resolve().parents[3]
ORACLE = REPO_ROOT.parent / "shared" / "reference"
SOURCES = ["drums", "bass", "other", "vocals"]
TINY_KWARGS: dict[str, Any] = dict(sources=SOURCES, audio_channels=2, samplerate=44100, segment=Fraction(3, 2),
                                   channels=4, depth=4, nfft=4096, t_layers=2, t_heads=2, dconv_comp=2)


def save_package(package: dict[str, Any], directory: Path, signature: str) -> Path:
    """torch.save `package` as `<signature>-<sha256[:8]>.th`, with `klass` pickled by reference as
    `demucs.htdemucs.HTDemucs` exactly like the published files (a stand-in module is
    registered in sys.modules only while saving)."""
    fake_pkg, fake_mod = types.ModuleType("demucs"), types.ModuleType("demucs.htdemucs")
    ref = type("HTDemucs", (), {"__module__": "demucs.htdemucs"})
    fake_mod.HTDemucs = ref
    fake_pkg.htdemucs = fake_mod
    saved = {name: sys.modules.get(name) for name in ("demucs", "demucs.htdemucs")}
    sys.modules.update({"demucs": fake_pkg, "demucs.htdemucs": fake_mod})
    try:
        buf = io.BytesIO()
        klass = package.get("klass", ref)
        torch.save({**package, "klass": klass}, buf)
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod
    data = buf.getvalue()
    path = directory / f"{signature}-{hashlib.sha256(data).hexdigest()[:8]}.th"
    path.write_bytes(data)
    return path


def make_tiny(directory: Path, signature: str, seed: int, **overrides: Any) -> Path:
    """A random tiny HTDemucs (own class, torch seed `seed`) saved as a real Demucs package."""
    torch.manual_seed(seed)
    kwargs = {**TINY_KWARGS, **overrides}
    model = HTDemucs(**kwargs)
    with torch.no_grad():  # make the layer scales matter, so every branch shows in the output
        for name, p in model.named_parameters():
            if name.endswith(".scale"):
                p.normal_(0.5, 0.1)
    state = {k: v.half() for k, v in model.state_dict().items()}
    return save_package({"args": (), "kwargs": kwargs, "state": state, "training_args": {"note": "test"}},
                        directory, signature)


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
