"""Several models on one input: separate with each, group stems by name, ensemble, write once.

Each model's stems are resampled to the output rate and stored as float32 memory maps in a
temporary folder, so an ensemble of many models on a long song holds at most one model's
output and one ensembled stem in RAM. Stems are matched across models by their canonical
name (:func:`canonical_stem`), so models of different architectures mix; each group is
ensembled with the chosen algorithm and weights, then normalised and written by the usual
writer as ``<input>_(<Stem>)_preset_<id>.<ext>`` or ``<input>_(<Stem>)_ensemble.<ext>``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vsep_core import audio as audio_io
from vsep_core import pipeline
from vsep_core import resample as resample_methods
from vsep_core.ensemble import DEFAULT_ALGORITHM, ensemble, get_algorithm, resolve_weights
from vsep_core.errors import AudioReadError, UsageError, VsepError

if TYPE_CHECKING:
    from vsep_core.separator import Separator

log = logging.getLogger("vsep")

STEM_NAME_MAP = {
    "vocals": "Vocals", "vocal": "Vocals",
    "instrumental": "Instrumental", "inst": "Instrumental", "instrument": "Instrumental",
    "karaoke": "Instrumental", "accompaniment": "Instrumental",
    "no_vocals": "Instrumental", "no vocals": "Instrumental", "no_vocal": "Instrumental", "no vocal": "Instrumental",
    "other": "Other", "drums": "Drums", "bass": "Bass", "guitar": "Guitar", "piano": "Piano",
    "synthesizer": "Synthesizer", "strings": "Strings", "woodwinds": "Woodwinds", "brass": "Brass",
    "wind inst": "Wind Inst", "lead vocals": "Lead Vocals", "backing vocals": "Backing Vocals",
    "primary stem": "Primary Stem", "secondary stem": "Secondary Stem",
}
"""Lower-cased model stem names -> the name their ensemble group and output file get."""


def canonical_stem(stem: str, model_stems: list[str] | None = None) -> str:
    """The name under which a model's stem is ensembled with other models' stems.

    The reference's rules, in an order that keeps "no_vocals"/"No Vocals" apart from Vocals:
    a known name maps through :data:`STEM_NAME_MAP`; "other" of a two-stem model whose other
    stem is vocals is the Instrumental; a remaining name containing "vocal" (but not "lead",
    "backing" or a leading "no") is Vocals; anything else is title-cased.
    """
    raw = stem.strip()
    low = raw.lower()
    if low == "other" and model_stems is not None and len(model_stems) == 2:
        partner = [s for s in model_stems if s.strip().lower() != "other"]
        if partner and canonical_stem(partner[0]) == "Vocals":
            return "Instrumental"
    if low in STEM_NAME_MAP:
        return STEM_NAME_MAP[low]
    if low.startswith(("no ", "no_", "no-")) and "vocal" in low:
        return "Instrumental"
    if "vocal" in low and "lead" not in low and "backing" not in low:
        return "Vocals"
    return raw.title()


def output_label(preset: str | None) -> str:
    """The part of ensemble output names where a single model's name would be."""
    return f"preset_{preset}" if preset else "ensemble"


@dataclass
class _StemGroup:
    """One canonical stem: the memory-mapped waves of the models that produced it."""

    name: str
    waves: list[np.ndarray] = field(default_factory=list)
    model_index: list[int] = field(default_factory=list)


def _store(stem: np.ndarray, path: Path, rate_in: int, rate_out: int, length: int) -> np.memmap:
    """Write `stem` resampled to `rate_out` and exactly `length` long into a float32 memory map."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(stem.shape[0], length))
    pos = 0
    for block in pipeline.resampled_blocks(stem, rate_in, rate_out, length, 1.0):
        out[:, pos:pos + block.shape[-1]] = block
        pos += block.shape[-1]
    out.flush()
    return out


def _order(models: list[str], loaded: str | None) -> list[int]:
    """Model indices, starting with the one already loaded (saves a reload on the next input)."""
    start = models.index(loaded) if loaded in models else 0
    return [(start + k) % len(models) for k in range(len(models))]


def separate_ensemble(separator: Separator, models: list[str], input_path: str | Path,
                      custom_output_names: dict[str, str] | None = None) -> list[Path]:
    """Separate `input_path` with every model of `models`, ensemble their stems, write them once.

    Uses the separator's output settings, ``ensemble_algorithm`` (default avg_wave),
    ``ensemble_weights`` (one per model) and ``ensemble_preset`` (for output names).
    Returns the written paths in stem order (first model's stems first). A model that
    fails stops the run with an error naming it.
    """
    input_path = Path(input_path)
    models = list(models)
    n = len(models)
    if n < 2:
        raise UsageError("an ensemble needs at least 2 models")
    algorithm = separator.ensemble_algorithm or DEFAULT_ALGORITHM
    algo = get_algorithm(algorithm)
    weights = resolve_weights(separator.ensemble_weights, n)
    if weights is not None and not algo.uses_weights:
        if not np.allclose(weights, weights[0]):
            log.warning("ensemble algorithm %s does not use weights; ignoring %s", algorithm, weights.tolist())
        weights = None
    opts = separator._output_options()
    fmt = audio_io.check_output_format(opts.output_format)
    info = audio_io.probe(input_path)
    if info.frames == 0:
        raise AudioReadError(f"input has no audio samples: {input_path}")
    bit_depth = opts.output_bit_depth or info.bit_depth
    if fmt in audio_io.LOSSLESS_FORMATS:
        audio_io.output_subtype(fmt, bit_depth)
    out_length = resample_methods.output_length(info.frames, info.sample_rate, opts.sample_rate)
    wanted = opts.output_single_stem.lower() if opts.output_single_stem else None

    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="vsep-ensemble-"))
    groups: dict[str, _StemGroup] = {}
    first_seen: dict[str, tuple[int, int]] = {}
    seen_names: list[str] = []
    try:
        for step, index in enumerate(_order(models, separator.model_filename), start=1):
            name = models[index]
            log.info("%s: model %d of %d: %s", input_path.name, step, n, name)
            try:
                stems, rate = _run_model(separator, name, info, opts, workdir / f"m{index}",
                                         f"{input_path.name} · model {step} of {n} · {name}")
                for order, (raw, data) in enumerate(stems.items()):
                    canon = canonical_stem(raw, list(stems))
                    if canon not in seen_names:
                        seen_names.append(canon)
                    if wanted is not None and canon.lower() != wanted and raw.lower() != wanted:
                        continue
                    group = groups.setdefault(canon, _StemGroup(canon))
                    if index in group.model_index:
                        raise VsepError(f"model {name} gives two stems that both count as {canon!r} "
                                        f"({', '.join(stems)}); it cannot be ensembled with them")
                    first_seen[canon] = min(first_seen.get(canon, (index, order)), (index, order))
                    path = workdir / f"stem{len(group.waves)}-{list(groups).index(canon)}-{index}.npy"
                    group.waves.append(_store(data, path, rate, opts.sample_rate, out_length))
                    group.model_index.append(index)
                del stems
                shutil.rmtree(workdir / f"m{index}", ignore_errors=True)
            except VsepError as exc:
                exc.args = (f"ensemble model {name} ({step} of {n}) failed on {input_path.name}: {exc}",
                            *exc.args[1:])
                raise
            except Exception as exc:
                raise VsepError(f"ensemble model {name} ({step} of {n}) failed on {input_path.name}: "
                                f"{type(exc).__name__}: {exc}") from exc
        if wanted is not None and not groups:
            raise UsageError(f"--single_stem {opts.output_single_stem!r} matches no stem of the ensemble; "
                             f"its models give {', '.join(seen_names)}")
        label = output_label(separator.ensemble_preset)
        opts.output_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for canon in sorted(groups, key=lambda c: first_seen[c]):
            group = groups[canon]
            order = np.argsort(group.model_index)
            waves = [group.waves[i] for i in order]
            indices = [group.model_index[i] for i in order]
            channels = max(w.shape[0] for w in waves)
            waves = [audio_io.match_channels(w, channels) for w in waves]
            stem_weights = None if weights is None else [float(weights[i]) for i in indices]
            if len(waves) < n:
                log.info("%s: only %d of %d models give %s", input_path.name, len(waves), n, canon)
            result = ensemble(waves, algorithm, stem_weights)
            path = opts.output_dir / pipeline.stem_output_name(input_path, canon, label, fmt, custom_output_names)
            pipeline.write_stem(result, path, opts, opts.sample_rate, out_length, bit_depth)
            log.info("wrote %s", path)
            written.append(path)
            del result, waves
            group.waves.clear()
        log.info("ensembled %s with %d models (%s) in %.2f s", input_path.name, n, algorithm,
                 time.perf_counter() - started)
        return written
    finally:
        separator.model_filenames = models
        groups.clear()
        shutil.rmtree(workdir, ignore_errors=True)


def _run_model(separator: Separator, name: str, info: audio_io.AudioInfo, opts: pipeline.OutputOptions,
               workdir: Path, description: str) -> tuple[dict[str, np.ndarray], int]:
    """Load model `name` (a one-element list, so no preset substitution) and separate the input with it."""
    separator.load_model([name])
    model = separator.model_instance
    if model is None:
        raise VsepError(f"model {name} did not load")
    source = pipeline.MixSource(info, model.sample_rate, getattr(separator, "_channels", 2),
                                pipeline.input_resampler_of(model))
    workdir.mkdir(parents=True, exist_ok=True)
    progress = separator.progress_factory(description) if separator.progress_factory else None
    stems = pipeline.separate_audio(model, source, opts, workdir, progress)
    return stems, model.sample_rate
