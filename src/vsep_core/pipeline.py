"""One job: read -> channels -> resample -> model (in parts if asked) -> normalise -> write.

Core owns everything that is the same for every model; the model only maps arrays to stems.
With ``chunk_duration`` (or automatically above AUTO_PART_ABOVE_SECONDS) the input is separated
part by part and the stems are gathered in float files on disk (`DiskStem`), so a long song
does not hold every stem in RAM; the writer then streams each stem from disk in blocks,
applying the peak gain found on the way in. The files are written and read with plain file
I/O, not memory maps: pages of a memory-mapped file count in the process's resident set for as
long as they stay mapped, which made the peak RSS grow with the song by its stems' full size.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from vsep_core import audio as audio_io
from vsep_core import resample as resample_methods
from vsep_core.api import SeparationModel
from vsep_core.chunking import CrossfadeJoiner, plan_parts
from vsep_core.errors import AudioReadError, AudioWriteError, UsageError
from vsep_core.publish import StagedFiles, staged, work_dir

log = logging.getLogger("vsep")

CROSSFADE_SECONDS = 0.5
# Inputs longer than AUTO_PART_ABOVE_SECONDS run in parts of AUTO_PART_SECONDS even without
# --chunk_duration. A whole input costs ~45 (RoFormer) to ~90 (MDX-Net) bytes of peak RSS per stereo
# frame (mix, stems and the model's buffers: 120-240 MB per minute, docs/benchmarks.md), so 1-minute
# parts keep the peak within ~150 MB of a 1-minute song's, whatever the length. Songs up to 5 minutes
# still run whole: no part seams, and exactly the reference's result.
AUTO_PART_ABOVE_SECONDS = 5 * 60
AUTO_PART_SECONDS = 60
Progress = Callable[[int, int], None]


@dataclass
class OutputOptions:
    """How stems are written (the reference's Separator settings that concern output)."""

    output_dir: Path
    output_format: str = "WAV"
    output_bitrate: str | None = None
    output_bit_depth: int | None = None
    normalization_threshold: float = 0.9
    amplification_threshold: float = 0.0
    sample_rate: int = 44100
    output_single_stem: str | None = None
    chunk_duration: float | None = None
    extract_instrumental: bool = False
    use_tta: bool = False
    stem_layout: str | None = None  # STEM format: which stems go to the file's four tracks (vsep_core.stemfile)


_UNSAFE = re.compile(r'[<>:"/\\|?*]')


def sanitize_filename(name: str) -> str:
    """The reference's sanitiser: unsafe characters -> '_', runs of '_' collapsed, edges stripped."""
    name = re.sub(r"_+", "_", _UNSAFE.sub("_", name))
    return name.strip("_. ")


def model_name_of(filename: str) -> str:
    """Model name used in output names: the model file name cut at its first '.'."""
    return Path(filename).name.split(".")[0]


def stem_output_name(input_path: Path, stem: str, model_name: str, fmt: str,
                     custom_output_names: dict[str, str] | None = None) -> str:
    """`<input stem>_(<Stem>)_<model name>.<ext>`, or the custom name given for the stem (case-insensitive)."""
    ext = fmt.lower()
    for key, custom in (custom_output_names or {}).items():
        if key.lower() == stem.lower():
            return f"{sanitize_filename(custom)}.{ext}"
    return f"{sanitize_filename(input_path.stem)}_({sanitize_filename(stem)})_{sanitize_filename(model_name)}.{ext}"


def select_stems(available: list[str], single_stem: str | None) -> list[str]:
    """All stems, or the one matching `single_stem` case-insensitively (error listing the stems if none)."""
    if not single_stem:
        return list(available)
    wanted = [s for s in available if s.lower() == single_stem.lower()]
    if not wanted:
        raise UsageError(f"--single_stem {single_stem!r} matches no stem of this model; it gives "
                         f"{', '.join(available)}")
    return wanted


def resampled_blocks(data: np.ndarray, rate_in: int, rate_out: int, length: int, gain: float,
                      block: int = audio_io.BLOCK) -> Iterator[np.ndarray]:
    """Stream [channels, samples] from (possibly memory-mapped) `data`, resampled and scaled,
    exactly `length` samples long."""
    stream = soxr.ResampleStream(rate_in, rate_out, data.shape[0], dtype="float32", quality="HQ") \
        if rate_in != rate_out else None
    emitted = 0
    n = data.shape[-1]
    for start in range(0, max(n, 1), block):
        piece = np.asarray(data[:, start:start + block], dtype=np.float32)
        last = start + block >= n
        if stream is not None:
            piece = stream.resample_chunk(np.ascontiguousarray(piece.T), last=last).T
        piece = piece[:, : max(0, length - emitted)]
        if piece.shape[-1]:
            emitted += piece.shape[-1]
            yield piece * np.float32(gain) if gain != 1.0 else piece
    if emitted < length:
        yield np.zeros((data.shape[0], length - emitted), np.float32)


def check_output_paths(paths: list[Path]) -> None:
    """Before any work: a one-line error when two outputs of one result share a name (one would overwrite the
    other) or a directory is in the way of one."""
    seen: dict[str, Path] = {}
    for path in paths:
        key = str(path).lower()  # names differing only in case are one file on macOS and Windows
        if key in seen:
            raise UsageError(f"two stems would both be written to {path.name}; give them different names "
                             "(--custom_output_names)")
        seen[key] = path
        if path.is_dir():
            raise AudioWriteError(f"cannot write {path}: a directory of that name is in the way; move it or "
                                  "choose another output directory", path=str(path))


def write_stem(data: np.ndarray, path: Path, opts: OutputOptions, model_rate: int, out_length: int,
               bit_depth: int, files: StagedFiles | None = None, normalize: bool = True) -> Path:
    """Peak-normalise (as the reference's writer; not with `normalize` False) and write one stem, streaming
    from `data` (into the set `files` when given: see :func:`vsep_core.publish.staged`)."""
    gain = 1.0
    if normalize:
        peak = 0.0
        for start in range(0, data.shape[-1], audio_io.BLOCK):
            peak = max(peak, float(np.max(np.abs(data[:, start:start + audio_io.BLOCK]), initial=0.0)))
        gain = audio_io.normalization_gain(peak, opts.normalization_threshold, opts.amplification_threshold)
    blocks = resampled_blocks(data, model_rate, opts.sample_rate, out_length, gain)
    return audio_io.write_audio(path, blocks, opts.sample_rate, opts.output_format, bit_depth,
                                opts.output_bitrate, channels=data.shape[0], files=files)


class MixSource:
    """The input mix at the model's rate and channel count, read whole or one segment at a time.

    Segments are read from the file on demand (soundfile seeks) and resampled with a short
    margin on both sides, so a long input is never decoded into memory at once.
    """

    MARGIN_SECONDS = 0.05

    def __init__(self, info: audio_io.AudioInfo, model_rate: int, channels: int, resampler: str = "soxr_hq"):
        self.info = info
        self.model_rate = model_rate
        self.channels = channels
        self.resampler = resampler
        self.length = resample_methods.output_length(info.frames, info.sample_rate, model_rate)  # librosa's ceil

    def _resample(self, audio: np.ndarray, length: int | None = None) -> np.ndarray:
        rin, rout = self.info.sample_rate, self.model_rate
        if self.resampler == "soxr_hq" or rin == rout:
            return audio_io.resample(audio, rin, rout, length)
        out = resample_methods.resample(audio, rin, rout, self.resampler)
        return audio_io.fit_length(out, length) if length is not None else out

    def whole(self) -> np.ndarray:
        """The whole mix, float32 [channels, length]."""
        mix, _ = audio_io.read_audio(self.info.path)
        mix = audio_io.match_channels(mix, self.channels)
        return self._resample(mix, self.length)

    def peak(self, block_seconds: float = 30.0) -> float:
        """The largest |sample| of the whole mix at the model's rate, read block by block."""
        step = max(1, int(block_seconds * self.model_rate))
        return max((float(np.max(np.abs(self.segment(s, min(self.length, s + step))), initial=0.0))
                    for s in range(0, self.length, step)), default=0.0)

    def segment(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) at the model rate."""
        rin, rout = self.info.sample_rate, self.model_rate
        margin = int(self.MARGIN_SECONDS * rin) if rin != rout else 0
        first = max(0, int(start * rin / rout) - margin)
        last = min(self.info.frames, int(np.ceil(stop * rin / rout)) + margin + 1)
        if self.info.subtype == "AV":
            raw = audio_io.read_audio(self.info.path)[0][:, first:last]
        else:
            raw = audio_io.read_frames(self.info.path, first, last)
        raw = audio_io.match_channels(raw, self.channels)
        if rin == rout:
            return audio_io.fit_length(raw, stop - start)
        out = self._resample(raw)
        offset = int(round(start - first * rout / rin))
        return audio_io.fit_length(out[:, offset:], stop - start)


class SlicedStem:
    """A float32 stem [channels, length] read in slices (``stem[:, a:b]``, ``np.asarray(stem)``) through its
    ``read(start, stop)``, so no caller needs the whole stem in memory. Subclasses set ``shape``."""

    dtype = np.dtype(np.float32)
    ndim = 2
    shape: tuple[int, int]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as float32 [channels, stop - start]."""
        raise NotImplementedError

    def __getitem__(self, key: object) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if rows is Ellipsis:
            rows = slice(None)
        if not isinstance(cols, slice) or cols.step not in (None, 1):
            raise TypeError(f"{type(self).__name__} supports stem[:, a:b] only")
        start, stop, _ = cols.indices(self.shape[1])
        return self.read(start, stop)[rows]

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        data = self.read(0, self.shape[1])
        return data if dtype is None else data.astype(dtype)


class DiskStem(SlicedStem):
    """A float32 stem [channels, length] in a file under the work directory, filled in order.

    `append` writes blocks with plain writes (frame-major, so appending is sequential); reads
    (``stem[:, a:b]``, ``np.asarray(stem)``) use ``os.pread``. Nothing is memory-mapped, so the
    data sits in the kernel's page cache, not in the process's resident set.
    """

    def __init__(self, path: Path, channels: int, length: int):
        self.path = Path(path)
        self.shape = (int(channels), int(length))
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.filled = 0

    def append(self, block: np.ndarray) -> None:
        """Write [channels, k] samples after the ones already written."""
        data = np.ascontiguousarray(np.asarray(block, dtype=np.float32).T)
        if data.shape[1] != self.shape[0] or self.filled + data.shape[0] > self.shape[1]:
            raise ValueError(f"block {block.shape} does not fit stem {self.shape} at {self.filled}")
        view = memoryview(data).cast("B")
        offset = self.filled * self.shape[0] * 4
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written
        self.filled += data.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as float32 [channels, stop - start] (zeros where nothing was written)."""
        start, stop = max(0, start), min(self.shape[1], stop)
        out = np.zeros((max(0, stop - start), self.shape[0]), np.float32)
        have = max(0, min(stop, self.filled) - start)
        if have:
            raw = os.pread(self._fd, have * self.shape[0] * 4, start * self.shape[0] * 4)
            out[:have] = np.frombuffer(raw, np.float32).reshape(have, self.shape[0])
        return out.T

    def close(self) -> None:
        """Close the file (the work directory is removed by the caller)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def input_resampler_of(model: SeparationModel) -> str:
    """How the input is brought to the model's rate: the model's `input_resampler` (a librosa res_type name,
    see vsep_core.resample), else soxr HQ (librosa's default, what the reference loads most inputs with)."""
    return str(getattr(model, "input_resampler", None) or "soxr_hq")


INSTRUMENTAL = "Instrumental"
PEAK_MODES = ("keep_level", "restore_level")


def model_channels(model: SeparationModel, default: int = 2) -> int:
    """Channels a loaded model takes: its ``channels`` attribute, else `default` (its architecture's)."""
    return int(getattr(model, "channels", None) or default)


def output_stems(model: SeparationModel, opts: OutputOptions) -> list[str]:
    """The stems a run writes: the model's, plus Instrumental with ``extract_instrumental``."""
    stems = list(model.stems)
    if opts.extract_instrumental and not any(s.lower() == INSTRUMENTAL.lower() for s in stems):
        stems.append(INSTRUMENTAL)
    return stems


def input_gain(model: SeparationModel, peak: float, opts: OutputOptions) -> float:
    """The gain core applies to the whole mix for a model that asks for peak normalisation of its input.

    A model declares ``input_peak_normalization`` "keep_level" (its stems stay at the normalised
    level, as the reference's Roformer/MDX23C code) or "restore_level" (its stems are scaled back,
    as the reference's MDX-Net code); core computes the gain once from the whole input's peak, so
    the parts of a long input all get the same gain and the level never steps at a seam.
    """
    mode = getattr(model, "input_peak_normalization", None)
    if mode is None:
        return 1.0
    if not np.isfinite(peak):
        raise AudioReadError("the input holds NaN or infinite samples; fix or re-export the file")
    if mode not in PEAK_MODES:
        raise UsageError(f"model declares input_peak_normalization {mode!r}; expected one of {', '.join(PEAK_MODES)}")
    return audio_io.normalization_gain(peak, opts.normalization_threshold, opts.amplification_threshold)


def run_model(model: SeparationModel, mix: np.ndarray, opts: OutputOptions, progress: Progress | None = None,
              gain: float = 1.0, channels: int = 2) -> dict[str, np.ndarray]:
    """One model on one mix at its rate, with core's steps around it.

    - channel policy: a mono model (``channels`` 1) separates each channel of the mix on its own;
    - `gain` (see :func:`input_gain`) scales the mix, and is undone on the stems for "restore_level";
    - ``use_tta``: the mix, its channels swapped and its polarity inverted are separated and averaged;
    - ``extract_instrumental``: mix minus the first target (vocals when the model has them, else its
      first stem) is added as Instrumental (replacing a model's own instrumental stem).
    Every stem comes back float32 exactly as long as the mix.
    """
    n = mix.shape[-1]
    work = mix * np.float32(gain) if gain != 1.0 else mix

    def once(x: np.ndarray, report: Progress | None) -> dict[str, np.ndarray]:
        if model_channels(model, channels) == 1 and x.shape[0] > 1:
            runs = [model.separate(np.ascontiguousarray(x[c:c + 1]), report if c == 0 else None)
                    for c in range(x.shape[0])]
            return {k: np.concatenate([audio_io.fit_length(np.asarray(r[k], np.float32)[:1], n) for r in runs])
                    for k in runs[0]}
        result = model.separate(x, report)
        return {k: audio_io.fit_length(np.asarray(v, dtype=np.float32), n) for k, v in result.items()}

    stems = once(work, progress)
    if opts.use_tta:
        swapped = once(np.ascontiguousarray(work[::-1]), None)
        inverted = once(-work, None)
        stems = {k: (v + swapped[k][::-1] - inverted[k]) / np.float32(3) for k, v in stems.items()}
    if opts.extract_instrumental:
        target = next((k for k in stems if k.lower() == "vocals"), next(iter(stems)))
        own = next((k for k in stems if k.lower() == INSTRUMENTAL.lower()), INSTRUMENTAL)
        stems[own] = audio_io.match_channels(work, stems[target].shape[0]) - stems[target]
    if gain != 1.0 and getattr(model, "input_peak_normalization", None) == "restore_level":
        stems = {k: v / np.float32(gain) for k, v in stems.items()}
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in stems.items()}


def part_frames_for(opts: OutputOptions, source: MixSource) -> int:
    """Samples per part: --chunk_duration, else the whole input unless it is longer than AUTO_PART_ABOVE."""
    if opts.chunk_duration:
        return int(round(opts.chunk_duration * source.model_rate))
    if source.length > AUTO_PART_ABOVE_SECONDS * source.model_rate:
        log.info("input is %.0f min long: separating it in %d-second parts to bound memory "
                 "(set --chunk_duration to choose)", source.length / source.model_rate / 60,
                 AUTO_PART_SECONDS)
        return AUTO_PART_SECONDS * source.model_rate
    return source.length


def separate_audio(model: SeparationModel, source: MixSource, opts: OutputOptions, workdir: Path,
                   progress: Progress | None = None, channels: int = 2) -> dict[str, np.ndarray]:
    """Run `model` over the mix (with core's steps: :func:`run_model`).

    A short input goes to the model whole. A long one (``--chunk_duration``, or longer than
    AUTO_PART_ABOVE_SECONDS) runs part by part with crossfades: each part is read from the file
    when it is needed and its stems land in `DiskStem` files under `workdir`. The input's peak
    normalisation gain is found once over the whole input.
    """
    n = source.length
    part_frames = part_frames_for(opts, source)
    needs_peak = getattr(model, "input_peak_normalization", None) is not None
    if part_frames >= n:
        mix = source.whole()
        gain = input_gain(model, float(np.max(np.abs(mix), initial=0.0)), opts) if needs_peak else 1.0
        return run_model(model, mix, opts, progress, gain, channels)
    gain = input_gain(model, source.peak(), opts) if needs_peak else 1.0
    parts = plan_parts(n, part_frames, int(CROSSFADE_SECONDS * model.sample_rate))
    joiner = CrossfadeJoiner()
    out: dict[str, DiskStem] = {}
    for i, part in enumerate(parts):
        log.info("part %d of %d (%.1f s - %.1f s)", i + 1, len(parts), part.start / model.sample_rate,
                 part.stop / model.sample_rate)
        stems = run_model(model, source.segment(part.start, part.stop), opts, None, gain, channels)
        overlap_next = parts[i + 1].overlap if i + 1 < len(parts) else 0
        for name, block in joiner.push(stems, part.overlap, overlap_next):
            if name not in out:
                out[name] = DiskStem(workdir / f"{len(out)}.f32", block.shape[0], n)
            out[name].append(block)
        stems = block = None  # free this part's stems before the next part runs
        if progress:
            progress(i + 1, len(parts))
    return dict(out)  # type: ignore[arg-type] - DiskStem reads like a [channels, n] array


def separate_file(model: SeparationModel, model_name: str, input_path: Path, opts: OutputOptions,
                  custom_output_names: dict[str, str] | None = None, progress: Progress | None = None,
                  channels: int = 2) -> list[Path]:
    """Separate one input file with one loaded model and write its stems; returns the written paths.

    `channels` is what the model takes when it does not say itself (its architecture's).
    """
    fmt = audio_io.check_output_format(opts.output_format)
    if fmt == audio_io.STEM_FORMAT:
        from vsep_core import stemfile

        stemfile.check_request(opts, list(model.stems), custom_output_names)
    info = audio_io.probe(input_path)
    if info.frames == 0:
        raise AudioReadError(f"input has no audio samples: {input_path}")
    wanted = select_stems(output_stems(model, opts), opts.output_single_stem)
    from vsep_core.options import check_custom_output_names

    check_custom_output_names(custom_output_names, output_stems(model, opts), f"model {model_name}")
    bit_depth = opts.output_bit_depth or info.bit_depth
    if fmt in audio_io.LOSSLESS_FORMATS:
        audio_io.output_subtype(fmt, bit_depth)  # fail before the work, not after it
    paths = {stem: opts.output_dir / stem_output_name(input_path, stem, model_name, fmt, custom_output_names)
             for stem in wanted}
    if fmt != audio_io.STEM_FORMAT:
        check_output_paths(list(paths.values()))
    source = mix_source(info, model, channels)
    out_length = resample_methods.output_length(info.frames, info.sample_rate, opts.sample_rate)
    workdir = work_dir("stems")
    try:
        stems = separate_audio(model, source, opts, workdir, progress, channels)
        missing = [s for s in wanted if s not in stems]
        if missing:
            raise UsageError(f"the model did not produce stem(s) {', '.join(missing)}")
        if fmt == audio_io.STEM_FORMAT:
            path = stemfile.write_for_input(input_path, stems, model.sample_rate, opts, out_length, info)
            log.info("wrote %s", path)
            return [path]
        with staged() as files:  # every stem, or none: renamed into place together
            for stem in wanted:
                write_stem(stems[stem], paths[stem], opts, model.sample_rate, out_length, bit_depth, files)
        for path in paths.values():
            log.info("wrote %s", path)
        return list(paths.values())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def mix_source(info: audio_io.AudioInfo, model: SeparationModel, channels: int = 2) -> MixSource:
    """The input as the model takes it: a mono model keeps the input's channels (core runs them one by
    one); any other model gets its channel count (mono input duplicated)."""
    want = model_channels(model, channels)
    return MixSource(info, model.sample_rate, min(info.channels, 2) if want == 1 else want, input_resampler_of(model))
