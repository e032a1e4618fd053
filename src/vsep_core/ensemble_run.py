"""Several models on one input: separate with each, group stems by name, ensemble, write once.

Each model's stems are resampled to the output rate and stored as float32 files in a temporary
folder (the pipeline's `DiskStem`, read with plain I/O: no memory maps, whose pages would count in
the resident set), so an ensemble of many models on a long song holds at most one model's output
and one ensembled stem in RAM. The models come loaded (:class:`vsep_core.loader.ModelLoader`), so
an ensemble over many files loads each model once. Stems are matched across models by their canonical
name (:func:`canonical_stem`), so models of different architectures mix; each group is
ensembled with the chosen algorithm and weights, then normalised and written by the usual
writer as ``<input>_(<Stem>)_preset_<id>.<ext>`` or, as the reference names them,
``<input>_(<Stem>)_custom_ensemble_<short model names>.<ext>`` (:func:`output_label`).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vsep_core import audio as audio_io
from vsep_core import pipeline
from vsep_core import resample as resample_methods
from vsep_core.ensemble import DEFAULT_ALGORITHM, ensemble, get_algorithm, resolve_weights
from vsep_core.errors import AudioReadError, ModelRunError, UsageError, VsepError
from vsep_core.publish import staged, work_dir

if TYPE_CHECKING:
    from vsep_core.loader import LoadedModel

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


MODEL_NAME_PREFIXES = ("mel_band_roformer_", "melband_roformer_", "bs_roformer_", "model_bs_roformer_",
                       "UVR-MDX-NET-", "UVR_MDXNET_")
"""Prefixes the reference strips from model names in ensemble output names (the first that matches)."""
SHORT_NAME_LENGTH = 12


def short_model_names(models: list[str]) -> list[str]:
    """The reference's short names: file name without extension, first known prefix stripped, 12 characters.

    Where two models of the set would get the same short name, theirs are lengthened until
    they differ (the full name at most), so every model of a set shows in the output name.
    """
    full = []
    for model in models:
        name = Path(model).name
        stem = name[: -len(Path(name).suffix)] if Path(name).suffix else name
        for prefix in MODEL_NAME_PREFIXES:
            if stem.startswith(prefix):
                stem = stem[len(prefix):]
                break
        full.append(stem)
    short = [f[:SHORT_NAME_LENGTH] for f in full]
    for length in range(SHORT_NAME_LENGTH + 1, max(map(len, full), default=0) + 1):
        clashing = {s for s in short if short.count(s) > 1}
        if not clashing:
            break
        short = [f[:length] if s in clashing else s for s, f in zip(short, full, strict=True)]
    return short


def output_label(preset: str | None, models: list[str] | None = None) -> str:
    """The part of ensemble output names where a single model's name would be.

    ``preset_<id>`` for a preset, else ``custom_ensemble_<short model names>`` (:func:`short_model_names`).
    """
    if preset:
        return f"preset_{preset}"
    return "_".join(["custom_ensemble", *short_model_names(list(models or []))])


@dataclass
class _StemGroup:
    """One canonical stem: the on-disk waves of the models that produced it."""

    name: str
    waves: list[pipeline.DiskStem] = field(default_factory=list)
    model_index: list[int] = field(default_factory=list)


def _store(stem: np.ndarray, path: Path, rate_in: int, rate_out: int, length: int) -> pipeline.DiskStem:
    """Write `stem` resampled to `rate_out` and exactly `length` long into a float32 file on disk."""
    out = pipeline.DiskStem(path, stem.shape[0], length)
    for block in pipeline.resampled_blocks(stem, rate_in, rate_out, length, 1.0):
        out.append(block)
    return out


def separate_ensemble(models: list[LoadedModel], input_path: str | Path, opts: pipeline.OutputOptions,
                      algorithm: str | None = None, weights: list[float] | None = None, label: str = "ensemble",
                      custom_output_names: dict[str, str] | None = None,
                      progress_factory: Callable[[str], Callable[[int, int], None] | None] | None = None,
                      normalize: bool = True) -> list[Path]:
    """Separate `input_path` with every loaded model, ensemble their stems, write them once.

    `algorithm` defaults to avg_wave; `weights` has one weight per model; `label` is what output
    names carry where a single model's name would be; `normalize` False writes the ensembled stems
    without the writer's peak normalisation (a chain's intermediate stems). Returns the written paths in stem order
    (first model's stems first). A model that fails stops the run with an error naming it.
    """
    input_path = Path(input_path)
    n = len(models)
    if n < 2:
        raise UsageError("an ensemble needs at least 2 models")
    algorithm = algorithm or DEFAULT_ALGORITHM
    algo = get_algorithm(algorithm)
    resolved = resolve_weights(weights, n)
    if resolved is not None and not algo.uses_weights:
        if not np.allclose(resolved, resolved[0]):
            log.warning("ensemble algorithm %s does not use weights; ignoring %s", algorithm, resolved.tolist())
        resolved = None
    fmt = audio_io.check_output_format(opts.output_format)
    if fmt == audio_io.STEM_FORMAT:
        from vsep_core import stemfile

        stemfile.check_request(opts, None, custom_output_names)
    info = audio_io.probe(input_path)
    if info.frames == 0:
        raise AudioReadError(f"input has no audio samples: {input_path}")
    bit_depth = opts.output_bit_depth or info.bit_depth
    if fmt in audio_io.LOSSLESS_FORMATS:
        audio_io.output_subtype(fmt, bit_depth)
    out_length = resample_methods.output_length(info.frames, info.sample_rate, opts.sample_rate)
    wanted = opts.output_single_stem.lower() if opts.output_single_stem else None

    started = time.perf_counter()
    workdir = work_dir("ensemble")
    groups: dict[str, _StemGroup] = {}
    first_seen: dict[str, tuple[int, int]] = {}
    seen_names: list[str] = []
    try:
        for index, loaded in enumerate(models):
            name = loaded.record.filename
            log.info("%s: model %d of %d: %s", input_path.name, index + 1, n, name)
            description = f"{input_path.name} · model {index + 1} of {n} · {name}"
            try:
                model = loaded.model
                source = pipeline.mix_source(info, model, loaded.channels)
                (workdir / f"m{index}").mkdir(parents=True, exist_ok=True)
                progress = progress_factory(description) if progress_factory else None
                stems = pipeline.separate_audio(model, source, opts, workdir / f"m{index}", progress, loaded.channels)
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
                    path = workdir / f"stem{len(group.waves)}-{list(groups).index(canon)}-{index}.f32"
                    group.waves.append(_store(data, path, model.sample_rate, opts.sample_rate, out_length))
                    group.model_index.append(index)
                del stems
                shutil.rmtree(workdir / f"m{index}", ignore_errors=True)
            except VsepError as exc:
                exc.args = (f"ensemble model {name} ({index + 1} of {n}) failed on {input_path.name}: {exc}",
                            *exc.args[1:])
                raise
            except Exception as exc:
                raise ModelRunError(f"ensemble model {name} ({index + 1} of {n}) failed on {input_path.name}: "
                                    f"{type(exc).__name__}: {exc}") from exc
        if wanted is not None and not groups:  # as the reference: nothing written, no error
            log.warning("%s: --single_stem %r matches no stem of the ensemble (its models give %s); nothing written",
                        input_path.name, opts.output_single_stem, ", ".join(seen_names))
            return []
        order_of_stems = sorted(groups, key=lambda c: first_seen[c])
        from vsep_core.options import check_custom_output_names

        check_custom_output_names(custom_output_names, order_of_stems, "the ensemble")
        if fmt != audio_io.STEM_FORMAT:
            pipeline.check_output_paths([opts.output_dir / pipeline.stem_output_name(
                input_path, canon, label, fmt, custom_output_names) for canon in order_of_stems])
        written = []
        gathered: dict[str, np.ndarray] = {}  # STEM: the ensembled stems, kept on disk until the file is written
        with staged() as files:  # every stem, or none: renamed into place together
            for canon in order_of_stems:
                group = groups[canon]
                order = np.argsort(group.model_index)
                waves = [np.asarray(group.waves[i]) for i in order]
                indices = [group.model_index[i] for i in order]
                channels = max(w.shape[0] for w in waves)
                waves = [audio_io.match_channels(w, channels) for w in waves]
                stem_weights = None if resolved is None else [float(resolved[i]) for i in indices]
                if len(waves) < n:
                    log.info("%s: only %d of %d models give %s", input_path.name, len(waves), n, canon)
                result = ensemble(waves, algorithm, stem_weights)
                if fmt == audio_io.STEM_FORMAT:
                    store = workdir / f"ensembled-{len(gathered)}.f32"
                    gathered[canon] = _store(result, store, opts.sample_rate, opts.sample_rate, out_length)
                else:
                    path = opts.output_dir / pipeline.stem_output_name(input_path, canon, label, fmt,
                                                                       custom_output_names)
                    pipeline.write_stem(result, path, opts, opts.sample_rate, out_length, bit_depth, files,
                                        normalize)
                    written.append(path)
                del result, waves
                for wave in group.waves:
                    wave.close()
                group.waves.clear()
        for path in written:
            log.info("wrote %s", path)
        if gathered:
            written.append(stemfile.write_for_input(input_path, gathered, opts.sample_rate, opts, out_length, info))
            log.info("wrote %s", written[-1])
        log.info("ensembled %s with %d models (%s) in %.2f s", input_path.name, n, algorithm,
                 time.perf_counter() - started)
        return written
    finally:
        for group in groups.values():
            for wave in group.waves:
                wave.close()
        groups.clear()
        shutil.rmtree(workdir, ignore_errors=True)
