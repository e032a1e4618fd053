"""Audio in and out without a system ffmpeg: soundfile (libsndfile) first, PyAV (its bundled FFmpeg) for the rest.

Arrays are float32 ``[channels, samples]`` everywhere in vsep. Writers publish atomically: the
data goes to a hidden temporary file in the output directory that is renamed into place.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from vsep_core.errors import AudioReadError, AudioWriteError, InputNotFoundError, UsageError, VsepError
from vsep_core.helpers import atomic_path as atomic_output  # noqa: F401 - stemfile's writer uses it
from vsep_core.helpers import fit_length
from vsep_core.helpers import peak_gain as normalization_gain
from vsep_core.publish import StagedFiles, staged

log = logging.getLogger("vsep")

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif", ".ac3", ".aac", ".wma")
OUTPUT_FORMATS = ("WAV", "FLAC", "MP3", "OGG", "OPUS", "M4A", "AIFF", "STEM")
STEM_FORMAT = "STEM"  # NI Stems (.stem.mp4): the mix and four stems in one file, written by vsep_core.stemfile
LOSSLESS_FORMATS = ("WAV", "FLAC", "AIFF")
DEFAULT_BITRATES = {"MP3": "320k", "M4A": "256k", "OPUS": "192k", "OGG": "192k"}
BLOCK = 1 << 18  # samples per block when streaming to and from disk


@dataclass(frozen=True)
class AudioInfo:
    """What an input file is: rate, channels, length, and the bit depth its stems keep by default."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    subtype: str
    bit_depth: int  # 16, 24 or 32 (32 = float)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def bit_depth_of_subtype(subtype: str) -> int:
    """16, 24 or 32 (float/32-bit) for a libsndfile subtype; lossy and unknown subtypes give 16."""
    if subtype in ("PCM_24",):
        return 24
    if subtype in ("PCM_32", "FLOAT", "DOUBLE"):
        return 32
    return 16


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputNotFoundError(f"input not found: {path}")
    if path.is_dir():
        raise AudioReadError(f"input is a directory, not an audio file: {path}")
    if path.stat().st_size == 0:
        raise AudioReadError(f"input file is empty (0 bytes): {path}")


def wav_claimed_frames(path: Path, channels: int, subtype: str) -> int | None:
    """The frames a RIFF WAV file's ``data`` chunk header claims (None when it is not a plain WAV or the header
    says nothing useful: a streamed WAV writes 0 or 0xFFFFFFFF there)."""
    width = {"PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}.get(subtype)
    if width is None:
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            for _ in range(64):  # chunks before "data" (fmt, LIST, ...)
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                size = int.from_bytes(chunk[4:], "little")
                if chunk[:4] == b"data":
                    return None if size in (0, 0xFFFFFFFF) else size // (width * channels)
                f.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return None
    return None


def warn_truncated(path: Path, claimed: int, have: int, rate: int) -> None:
    """Say once per file that it holds fewer frames than its header claims (a truncated download or copy)."""
    if str(path) in _warned_truncated:
        return
    _warned_truncated.add(str(path))
    log.warning("%s looks truncated: its header claims %.2f s but only %.2f s could be decoded; separating what "
                "is there", path.name, claimed / rate, have / rate)


_warned_truncated: set[str] = set()


def probe(path: str | os.PathLike) -> AudioInfo:
    """Read an input's header (rate, channels, frames, bit depth) or raise AudioReadError.

    A WAV whose data chunk claims more frames than the file holds gets a warning (see :func:`warn_truncated`);
    other formats are checked when decoded."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
        result = AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames), info.subtype,
                           bit_depth_of_subtype(info.subtype))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    else:
        claimed = wav_claimed_frames(path, result.channels, result.subtype) if info.format == "WAV" else None
        if claimed is not None and claimed > result.frames:
            warn_truncated(path, claimed, result.frames, result.sample_rate)
        return result
    data, rate = _decode_with_av(path)
    return AudioInfo(path, rate, data.shape[0], data.shape[1], "AV", 16)


def _decode_with_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioReadError(f"no audio stream in {path}")
            stream = container.streams.audio[0]
            rate = stream.rate or stream.codec_context.sample_rate
            channels = stream.codec_context.channels or len(stream.layout.channels)
            resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
            parts = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray())
            for out in resampler.resample(None):
                parts.append(out.to_ndarray())
    except AudioReadError:
        raise
    except Exception as exc:  # PyAV raises many error types for damaged files
        reason = getattr(exc, "strerror", None) or exc  # FFmpeg's own words, without its error number
        raise AudioReadError(f"cannot decode {path}: {reason} (is it a supported, undamaged audio file?)") from exc
    if not parts:
        return np.zeros((channels or 2, 0), np.float32), int(rate)
    return np.ascontiguousarray(np.concatenate(parts, axis=1)[:channels], dtype=np.float32), int(rate)


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, AudioInfo]:
    """Decode a whole file to float32 [channels, samples]; errors name the file and what is wrong."""
    path = Path(path)
    info = probe(path)
    if info.subtype == "AV":
        data, _ = _decode_with_av(path)
    else:
        data = read_frames(path, 0, info.frames)
    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.shape[1] == 0:
        raise AudioReadError(f"input has no audio samples: {path}")
    if not np.all(np.isfinite(data)):
        raise AudioReadError(f"input contains non-finite samples (NaN/inf): {path}")
    return data, AudioInfo(path, info.sample_rate, data.shape[0], data.shape[1], info.subtype, info.bit_depth)


def read_frames(path: str | os.PathLike, start: int, stop: int) -> np.ndarray:
    """Frames [start, stop) of a libsndfile-readable file as float32 [channels, samples].

    A file that ends (or stops decoding) before `stop` gives what could be read, with a warning that it
    looks truncated; one that gives nothing at all is an AudioReadError."""
    path = Path(path)
    rate, channels, parts = 0, 0, []
    for block_frames in (BLOCK, 1024):  # on a decode error, read again in small blocks to keep what decodes
        parts, got = [], 0
        try:
            with sf.SoundFile(str(path)) as f:
                rate, channels = f.samplerate, f.channels
                f.seek(start)
                while got < stop - start:
                    block = f.read(min(block_frames, stop - start - got), dtype="float32", always_2d=True)
                    if not len(block):
                        break
                    parts.append(block.T)
                    got += len(block)
            break
        except (sf.LibsndfileError, RuntimeError) as exc:
            if block_frames == 1024 and not got:
                raise AudioReadError(f"cannot decode {path}: {exc} (the file may be truncated or corrupt)") from exc
    if got < stop - start:
        warn_truncated(path, stop, start + got, rate)
    data = np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)
    if not np.all(np.isfinite(data)):
        raise AudioReadError(f"input contains non-finite samples (NaN/inf): {path}")
    return np.ascontiguousarray(data)


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Mono to stereo by duplication; stereo to mono by averaging; more than two channels is an error."""
    have = audio.shape[0]
    if have == channels:
        return audio
    if have == 1:
        return np.repeat(audio, channels, axis=0)
    if have == 2 and channels == 1:
        return audio.mean(axis=0, keepdims=True)
    raise AudioReadError(f"input has {have} channels; vsep separates mono and stereo audio only "
                         "(downmix it first, e.g. to stereo)")


def resample(audio: np.ndarray, rate_in: int, rate_out: int, length: int | None = None) -> np.ndarray:
    """Resample [channels, samples] with soxr (HQ); `length` pads or trims the result exactly."""
    if rate_in != rate_out:
        audio = soxr.resample(audio.T, rate_in, rate_out, quality="HQ").T
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if length is not None:
        audio = fit_length(audio, length)
    return audio


def normalize(audio: np.ndarray, max_peak: float = 0.9, min_peak: float = 0.0) -> np.ndarray:
    """The reference's normalize(): scale down to `max_peak` if above it, up to `min_peak` if 0 < peak < it."""
    gain = normalization_gain(float(np.max(np.abs(audio))) if audio.size else 0.0, max_peak, min_peak)
    return audio * np.float32(gain) if gain != 1.0 else audio


def output_subtype(fmt: str, bit_depth: int) -> str:
    """libsndfile subtype for a lossless format at a bit depth (32 means float)."""
    fmt = fmt.upper()
    if bit_depth not in (16, 24, 32):
        raise UsageError(f"--output_bit_depth must be 16, 24 or 32, not {bit_depth}")
    if fmt == "FLAC" and bit_depth == 32:
        raise UsageError("FLAC cannot store 32-bit float samples: use --output_bit_depth 16 or 24, or WAV")
    return {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}[bit_depth]


def check_output_format(fmt: str) -> str:
    """Upper-case and validate an output format name."""
    up = (fmt or "WAV").upper()
    if up == "AIF":
        up = "AIFF"
    if up not in OUTPUT_FORMATS:
        raise UsageError(f"unknown output format {fmt!r}: choose one of {', '.join(OUTPUT_FORMATS)}")
    return up


def write_audio(path: Path, blocks: Iterator[np.ndarray] | np.ndarray, sample_rate: int, fmt: str,
                bit_depth: int = 16, bitrate: str | None = None, channels: int | None = None,
                files: StagedFiles | None = None) -> Path:
    """Write float32 [channels, samples] (an array, or an iterator of blocks) to `path` atomically.

    With `files` (a set of one result's outputs, :func:`vsep_core.publish.staged`) the data goes to the set's
    temporary name for `path` and appears under `path` only when the whole set is published.
    WAV/FLAC/AIFF and OGG go through soundfile; MP3, M4A and OPUS through PyAV's bundled encoders.
    """
    fmt = check_output_format(fmt)
    if fmt == STEM_FORMAT:
        raise UsageError("STEM files hold the mix and four stems: write them with vsep_core.stemfile")
    if isinstance(blocks, np.ndarray):
        channels = blocks.shape[0]
        blocks = iter([blocks])
    assert channels is not None
    try:
        with contextlib.nullcontext(files) if files is not None else staged() as into:
            tmp = into.temp_for(path)
            if fmt in LOSSLESS_FORMATS or fmt == "OGG":
                if fmt == "OGG":
                    kwargs = {"format": "OGG", "subtype": "VORBIS", "compression_level": _vorbis_level(bitrate)}
                else:
                    kwargs = {"format": fmt, "subtype": output_subtype(fmt, bit_depth)}
                written = 0
                with sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=channels, **kwargs) as f:
                    for block in blocks:
                        f.write(np.ascontiguousarray(block.T))
                        written += block.shape[-1]
                check_written(tmp, path, written)
            else:
                _write_with_av(tmp, blocks, sample_rate, fmt, bitrate or DEFAULT_BITRATES[fmt], channels)
    except VsepError:
        raise  # already says what is wrong (some are also ValueError/OSError)
    except OSError as exc:
        raise AudioWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        hint = " (is the disk full, or the file larger than allowed?)" if "System error" in str(exc) else ""
        raise AudioWriteError(f"cannot write {path}: {exc}{hint}") from exc
    return path


def check_written(tmp: Path, final: Path, frames: int) -> None:
    """AudioWriteError unless `tmp` reads back as `frames` frames to its end: libsndfile does not report a
    write that fails while the file is closed (the disk filling up on the last buffer), which would publish
    a truncated file."""
    try:
        with sf.SoundFile(str(tmp)) as f:
            ok = f.frames == frames
            if ok and frames:
                f.seek(max(0, frames - 4096))
                ok = len(f.read(4096)) == min(frames, 4096)
    except (sf.LibsndfileError, RuntimeError) as exc:
        ok = False
        log.debug("reading back %s: %s", tmp, exc)
    if not ok:
        raise AudioWriteError(f"cannot write {final}: the file came out incomplete (is the disk full, or the file "
                              "larger than allowed?)", path=str(final))


def _vorbis_level(bitrate: str | None) -> float:
    """Map a bitrate like "192k" onto libsndfile's Vorbis compression level (0 = best quality)."""
    if not bitrate:
        return 0.4
    kbps = parse_bitrate(bitrate) / 1000
    return float(min(1.0, max(0.0, 1.0 - (kbps - 64) / 256)))


BITRATE_RANGES = {"MP3": (32_000, 320_000), "M4A": (32_000, 512_000), "OPUS": (6_000, 512_000),
                  "OGG": (32_000, 500_000)}
"""Bits per second each lossy encoder takes at music rates (LAME: 32-320k for 44.1/48 kHz; libopus 6-512k)."""


def check_bitrate(fmt: str, bitrate: str) -> int:
    """`bitrate` in bits per second, or a one-line UsageError when it is not a bitrate `fmt`'s encoder takes."""
    bps = parse_bitrate(bitrate)
    low, high = BITRATE_RANGES.get(check_output_format(fmt), (0, None))
    if bps < low or (high is not None and bps > high):
        raise UsageError(f"--output_bitrate {bitrate} does not suit {fmt.upper()}: use {low // 1000}k to "
                         f"{high // 1000}k, e.g. {DEFAULT_BITRATES[fmt.upper()]}")
    return bps


def parse_bitrate(bitrate: str) -> int:
    """'320k' -> 320000; plain numbers are bits per second."""
    text = str(bitrate).strip().lower()
    try:
        return int(float(text[:-1]) * 1000) if text.endswith("k") else int(text)
    except ValueError as exc:
        raise UsageError(f"bad --output_bitrate {bitrate!r}: use e.g. 320k") from exc


def _write_with_av(path: Path, blocks: Iterator[np.ndarray], sample_rate: int, fmt: str, bitrate: str,
                   channels: int) -> None:
    import av

    codec, container_fmt = {"MP3": ("libmp3lame", "mp3"), "M4A": ("aac", "ipod"), "OPUS": ("libopus", "opus")}[fmt]
    rate = 48000 if fmt == "OPUS" else sample_rate
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format=container_fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        stream.bit_rate = parse_bitrate(bitrate)
        for block in blocks:
            if rate != sample_rate:
                block = resample(block, sample_rate, rate)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block, dtype=np.float32), format="fltp",
                                               layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def find_audio_files(inputs: list[str | os.PathLike]) -> list[Path]:
    """Expand directories recursively into their audio files (sorted); files are kept as given."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            hits = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS
                          and not f.name.startswith("."))
            if not hits:
                raise AudioReadError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in directory {p}")
            found.extend(hits)
        else:
            found.append(p)
    return found
