"""Running Demucs networks over a whole track: bag of models, random shifts, overlapping segments.

Numerically this follows ``demucs.apply.apply_model`` as the reference implementation uses
it (same padding, same triangular cross-fade, same shift offsets for the same random
draws), with three differences on purpose:

* shift offsets come from a ``random.Random`` owned by the caller (seeded), never from the
  global RNG, so the output is reproducible;
* a Hybrid Transformer asked to run a chunk longer than its training segment without
  segments (``split=False``) falls back to segments with a warning instead of failing;
* progress is reported through a callback, chunk by chunk, with an exact total.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger("vsep.demucs")

MAX_SHIFT_SECONDS = 0.5


class View:
    """Window ``[offset, offset + length)`` of a base tensor ``[batch, channels, time]``.

    Padding a view to a longer length takes the extra samples from the base tensor around
    the window where they exist (zeros beyond its ends), centred on the window.
    """

    def __init__(self, base: torch.Tensor, offset: int = 0, length: int | None = None):
        total = base.shape[-1]
        if not 0 <= offset < max(total, 1):
            raise ValueError(f"offset {offset} outside a tensor of {total} samples")
        self.base = base
        self.offset = offset
        self.length = total - offset if length is None else min(total - offset, length)

    def sub(self, offset: int, length: int) -> View:
        """The window ``[offset, offset + length)`` of this view (clipped to it)."""
        if not 0 <= offset < self.length:
            raise ValueError(f"offset {offset} outside a view of {self.length} samples")
        return View(self.base, self.offset + offset, min(self.length - offset, length))

    def padded(self, target: int) -> torch.Tensor:
        """This window widened symmetrically to ``target`` samples (extra on the right when odd)."""
        delta = target - self.length
        if delta < 0:
            raise ValueError(f"cannot pad {self.length} samples to {target}")
        total = self.base.shape[-1]
        start = self.offset - delta // 2
        end = start + target
        lo, hi = max(0, start), min(total, end)
        return F.pad(self.base[..., lo:hi], (lo - start, end - hi))


def center_trim(x: torch.Tensor, length: int) -> torch.Tensor:
    """The centred ``length`` samples of ``x`` (the extra odd sample is dropped on the right)."""
    delta = x.shape[-1] - length
    if delta < 0:
        raise ValueError(f"cannot trim {x.shape[-1]} samples to {length}")
    return x[..., delta // 2: delta // 2 + length] if delta else x


def segment_samples(model: nn.Module) -> int:
    """Samples per segment of ``model`` (``model.segment`` seconds at ``model.samplerate``)."""
    return int(model.samplerate * model.segment)


def chunk_offsets(length: int, segment: int, overlap: float) -> range:
    """Start of every segment over ``length`` samples with the given overlap fraction."""
    stride = max(1, int((1 - overlap) * segment))
    return range(0, length, stride)


def _train_length(model: nn.Module) -> int | None:
    if getattr(model, "use_train_segment", False):
        return segment_samples(model)
    return None


class BagRunner:
    """Applies a bag of models to standardised mixes.

    models: networks with ``sources``, ``samplerate``, ``segment`` and ``valid_length``;
    weights: one row per model, one weight per source; shifts: number of random shifts
    (0 = none); split: process in segments; overlap: fraction shared by neighbouring
    segments; device: where the networks run; autocast: a half dtype to run them under torch autocast
    in (bf16 or fp16; None: fp32).
    """

    def __init__(self, models: Sequence[nn.Module], weights: Sequence[Sequence[float]], *, shifts: int,
                 split: bool, overlap: float, device: torch.device, autocast: torch.dtype | None = None):
        self.models = list(models)
        self.weights = [list(map(float, row)) for row in weights]
        self.shifts = int(shifts)
        self.split = bool(split)
        self.overlap = float(overlap)
        self.device = device
        self.autocast = autocast
        self._done = 0
        self._total = 0
        self._progress: Callable[[int, int], None] | None = None
        self._warned = False

    # -- planning (exact progress totals)

    def _uses_split(self, model: nn.Module, length: int) -> bool:
        if self.split:
            return True
        train = _train_length(model)
        return train is not None and length > train

    def _forward_count(self, model: nn.Module, length: int) -> int:
        if self._uses_split(model, length):
            return len(chunk_offsets(length, segment_samples(model), self.overlap))
        return 1

    def run(self, mix: torch.Tensor, rng: random.Random,
            progress: Callable[[int, int], None] | None = None,
            sources: Sequence[int] | None = None) -> torch.Tensor:
        """mix [batch, channels, samples] -> estimates [batch, sources, channels, samples].

        ``rng`` draws the shift offsets (per model, per shift, in the reference's order). `sources`: the
        indices of the sources wanted (None: all); a model whose weight is zero for every one of them is
        not run, which leaves the wanted estimates bit for bit as a full run gives them (the others are
        then unspecified; a source no model ran for stays zero).
        """
        with torch.inference_mode():
            return self._run(mix, rng, progress, None if sources is None else list(sources))

    def runs_model(self, row: Sequence[float], sources: Sequence[int] | None) -> bool:
        """Whether a model with weights `row` contributes to any of `sources` (None: all)."""
        return any(row[k] for k in (range(len(row)) if sources is None else sources))

    def _run(self, mix: torch.Tensor, rng: random.Random,
             progress: Callable[[int, int], None] | None, sources: list[int] | None = None) -> torch.Tensor:
        length = mix.shape[-1]
        plan: list[list[int]] = []
        total = 0
        for model, row in zip(self.models, self.weights, strict=True):
            max_shift = int(MAX_SHIFT_SECONDS * model.samplerate)
            offsets = [rng.randint(0, max_shift) for _ in range(self.shifts)]  # drawn even when skipped
            plan.append(offsets)
            if not self.runs_model(row, sources):  # contributes nothing wanted: not run
                continue
            if offsets:
                total += sum(self._forward_count(model, length + max_shift - off) for off in offsets)
            else:
                total += self._forward_count(model, length)
        self._done, self._total, self._progress = 0, total, progress

        estimates: torch.Tensor | None = None
        totals = [0.0] * len(self.weights[0])
        for model, row, offsets in zip(self.models, self.weights, plan, strict=True):
            if not self.runs_model(row, sources):
                continue
            out = self._apply_shifted(model, mix, offsets)
            for k, w in enumerate(row):
                out[:, k] *= w
                totals[k] += w
            if estimates is None:
                estimates = out
            else:
                estimates += out
        assert estimates is not None
        for k, t in enumerate(totals):
            if t:
                estimates[:, k] /= t
        return estimates

    # -- the three levels of apply_model

    def _apply_shifted(self, model: nn.Module, mix: torch.Tensor, offsets: list[int]) -> torch.Tensor:
        if not offsets:
            return self._apply_segments(model, View(mix))
        length = mix.shape[-1]
        max_shift = int(MAX_SHIFT_SECONDS * model.samplerate)
        padded = View(mix).padded(length + 2 * max_shift)
        out: torch.Tensor | None = None
        for off in offsets:
            shifted = View(padded, off, length + max_shift - off)
            part = self._apply_segments(model, shifted)[..., max_shift - off:]
            if out is None:
                out = part
            else:
                out += part
        assert out is not None
        out /= len(offsets)
        return out

    def _apply_segments(self, model: nn.Module, view: View) -> torch.Tensor:
        length = view.length
        if not self._uses_split(model, length):
            return self._apply_whole(model, view)
        if not self.split and not self._warned:
            log.warning("Demucs: %.1f s do not fit the model's %.2f s training segment in one pass; "
                        "processing in segments instead", length / model.samplerate, float(model.segment))
            self._warned = True
        batch, channels = view.base.shape[:2]
        out = torch.zeros(batch, len(model.sources), channels, length, device=view.base.device)
        sum_weight = torch.zeros(length, device=view.base.device)
        segment = segment_samples(model)
        weight = torch.cat([torch.arange(1, segment // 2 + 1), torch.arange(segment - segment // 2, 0, -1)])
        weight = (weight / weight.max()).to(view.base.device)
        for offset in chunk_offsets(length, segment, self.overlap):
            chunk_out = self._apply_whole(model, view.sub(offset, segment))
            n = chunk_out.shape[-1]
            out[..., offset:offset + segment] += weight[:n] * chunk_out
            sum_weight[offset:offset + segment] += weight[:n]
        out /= sum_weight
        return out

    def _apply_whole(self, model: nn.Module, view: View) -> torch.Tensor:
        valid = model.valid_length(view.length) if hasattr(model, "valid_length") else view.length
        x = view.padded(valid).to(self.device)
        ctx = torch.autocast(self.device.type, dtype=self.autocast) if self.autocast else nullcontext()
        with ctx:
            out = model(x)
        out = center_trim(out.float(), view.length).to(view.base.device)
        self._done += 1
        if self._progress is not None:
            self._progress(self._done, self._total)
        return out
