"""Loading a Demucs v4 model (a bag-of-models yaml or a single ``.th``) as a vsep SeparationModel."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsep_core.api import LoadContext, Progress
from vsep_core.errors import ModelLoadError, UsageError
from vsep_core.helpers import half_dtype, mono_or_stereo
from vsep_demucs.apply import BagRunner
from vsep_demucs.checkpoint import build_model, find_signature_file, read_bag, read_package, verify_checksum
from vsep_demucs.plugin import DemucsParams, parse_segment

#: Demucs source name -> vsep stem name, in the reference's output order.
STEM_NAMES = {"bass": "Bass", "drums": "Drums", "other": "Other", "vocals": "Vocals",
              "guitar": "Guitar", "piano": "Piano"}

_STD_EPS = float(np.finfo(np.float32).eps)  # 1.1920929e-07, the reference's guard (0.47.1)

def stem_order(sources: list[str]) -> list[tuple[str, int]]:
    """(stem name, source index) pairs in output order: Bass, Drums, Other, Vocals, Guitar,
    Piano first (the reference's order), then any other source in model order."""
    known = [(STEM_NAMES[s.lower()], i) for i, s in enumerate(sources) if s.lower() in STEM_NAMES]
    order = list(STEM_NAMES.values())
    known.sort(key=lambda pair: order.index(pair[0]))
    others = [(s.replace("_", " ").title() if s.islower() else s, i)
              for i, s in enumerate(sources) if s.lower() not in STEM_NAMES]
    return known + others


class DemucsModel:
    """A loaded Demucs model or bag of models: float32 [channels, samples] in, stems out.

    The mix is standardised (mean and std of its mono downmix) before the networks and the
    stems are scaled back. Mono input runs as two identical channels and the stems are
    returned mono; stems are always exactly as long as the input.
    """

    def __init__(self, models: list[nn.Module], weights: list[list[float]], *, shifts: int, overlap: float,
                 segments_enabled: bool, seed: int, device: torch.device, autocast: torch.dtype | None = None,
                 logger: logging.Logger | None = None, wanted_stems: tuple[str, ...] | None = None):
        first = models[0]
        self.models = models
        self.sources: list[str] = list(first.sources)
        self.sample_rate: int = int(first.samplerate)
        self.audio_channels: int = int(first.audio_channels)
        self._order = stem_order(self.sources)
        self.stems: list[str] = [name for name, _ in self._order]
        self.seed = int(seed)
        self.runner = BagRunner(models, weights, shifts=shifts, split=segments_enabled, overlap=overlap,
                                device=device, autocast=autocast)
        self.logger = logger or logging.getLogger("vsep.demucs")
        wanted = {w.lower() for w in wanted_stems or ()}
        chosen = [(name, index) for name, index in self._order if name.lower() in wanted]
        # --single_stem: only the bag's models with weight on these sources run (htdemucs_ft: 1 of 4)
        self._wanted = chosen or None
        if chosen:
            sources = [index for _, index in chosen]
            skipped = sum(not self.runner.runs_model(row, sources) for row in self.runner.weights)
            if skipped:
                self.logger.info("Demucs: %d of %d models of the bag give %s no weight: not run", skipped,
                                 len(models), ", ".join(name for name, _ in chosen))

    def separate(self, audio: np.ndarray, progress: Progress | None = None) -> dict[str, np.ndarray]:
        """audio float32 [channels, samples] at ``sample_rate`` -> {stem: float32 [channels, samples]}."""
        audio = mono_or_stereo(audio, "Demucs models", channels=(1, self.audio_channels))
        channels, length = audio.shape
        if length == 0:
            return {name: np.zeros((channels, 0), np.float32) for name in self.stems}
        mix = torch.from_numpy(np.ascontiguousarray(audio))
        if channels == 1 and self.audio_channels == 2:
            mix = mix.expand(2, length)

        ref = mix.mean(0)
        mean = ref.mean()
        std = ref.std()
        if not torch.isfinite(std):
            std = torch.zeros_like(std)
        x = (mix - mean) / torch.clamp(std, min=_STD_EPS)

        rng = random.Random(self.seed)  # fresh per call: the same input gives the same output
        order = self._wanted or self._order
        out = self.runner.run(x[None], rng, progress, None if self._wanted is None else [i for _, i in order])[0]
        out = out * std + mean
        stems = out.numpy()
        result: dict[str, np.ndarray] = {}
        for name, index in order:
            stem = stems[index]
            if channels == 1 and self.audio_channels == 2:
                stem = stem.mean(0, keepdims=True)
            result[name] = np.ascontiguousarray(stem, dtype=np.float32)
        return result


def _yaml_data(ctx: LoadContext) -> dict[str, Any] | None:
    data = ctx.model_data or None
    if data and "models" not in data and isinstance(data.get("yaml"), str):
        import yaml

        data = yaml.safe_load(data["yaml"])
    return data if data and "models" in data else None


def load_model(ctx: LoadContext[DemucsParams]) -> DemucsModel:
    """Load the model ``ctx.model_path`` names: a bag yaml (``models``, optional ``weights`` and
    ``segment``) whose ``<signature>-<checksum>.th`` files are in ``ctx.model_dir``, or one ``.th``.

    Every ``.th`` is read with the allow-listed unpickler (checkpoint.read_package) and its
    checksum (the name's sha256 prefix) verified. Raises ModelLoadError (bad or unsafe files,
    unsupported classes, inconsistent bags) or UsageError (bad parameters).
    """
    model_path = Path(ctx.model_path)
    model_dir = Path(ctx.model_dir) if ctx.model_dir else model_path.parent
    params = ctx.params if ctx.params is not None else DemucsParams()
    if not isinstance(params, DemucsParams):
        raise UsageError(f"Demucs load needs DemucsParams (core validates them), got {type(params).__name__}")
    segment = parse_segment(params.segment_size)

    if model_path.suffix == ".th":
        files = [model_path]
        bag = {"models": [model_path.stem.split("-")[0]], "weights": None, "segment": None}
    else:
        bag = read_bag(model_path, _yaml_data(ctx))
        files = [find_signature_file(model_dir, sig) for sig in bag["models"]]

    models: list[nn.Module] = []
    for path in files:
        verify_checksum(path)
        models.append(build_model(read_package(path), path.name))

    first = models[0]
    for path, other in zip(files, models, strict=True):
        if (list(other.sources) != list(first.sources) or other.samplerate != first.samplerate
                or other.audio_channels != first.audio_channels):
            raise ModelLoadError(f"{model_path.name}: {path.name} has other sources, sample rate or channels "
                                 f"than {files[0].name}; a bag must agree on all three")
    n_sources = len(first.sources)
    weights = bag["weights"] or [[1.0] * n_sources for _ in models]
    if any(len(row) != n_sources for row in weights):
        raise ModelLoadError(f"{model_path.name}: every 'weights' row needs {n_sources} values (one per source)")
    for k in range(n_sources):
        if sum(row[k] for row in weights) == 0:
            raise ModelLoadError(f"{model_path.name}: source {first.sources[k]!r} has zero total weight")

    capped = []  # (asked, training) segments of Hybrid Transformers that cannot run longer chunks
    for m in models:
        trained = m.segment  # the training segment (HTDemucs cannot run longer chunks)
        if bag["segment"] is not None:
            m.segment = bag["segment"]
        if segment is not None:
            m.segment = segment
        if getattr(m, "use_train_segment", False) and m.segment > trained:
            capped.append((m.segment, trained))
            m.segment = trained
    if capped:
        asked, trained = capped[0]
        ctx.logger.warning("Demucs: segment_size %s s is longer than the Hybrid Transformer's training segment "
                           "%.2f s: processing in %.2f s segments instead (the reference runs the transformer past "
                           "its training length; upstream Demucs refuses it)", float(asked), float(trained),
                           float(trained))

    device = torch.device(ctx.device.torch_device if ctx.device else "cpu")
    for m in models:
        m.to(device)
    return DemucsModel(models, weights, shifts=params.shifts, overlap=params.overlap,
                       segments_enabled=params.segments_enabled, seed=params.seed, device=device,
                       autocast=half_dtype(ctx.precision), logger=ctx.logger, wanted_stems=ctx.wanted_stems)
