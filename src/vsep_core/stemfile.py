"""NI Stems files (``<input>.stem.mp4``): the mix and four stems in one MP4 that DJ software opens.

What the file holds, as Native Instruments' Stem File Specification 1.0 lays it out, as NI's
own Stem Creator writes it, and as Mixxx's reader (``SoundSourceSTEM``, ``StemInfoImporter``)
checks it:

* an MP4 whose first audio track is the full mix (the one enabled track, so an ordinary
  player plays the song) and exactly four stem tracks after it (disabled); every track
  stereo, with the same codec (AAC-LC, or ALAC for lossless), sample rate and length;
* a ``stem`` box under ``moov/udta`` whose payload is UTF-8 JSON: ``{"version": 1,
  "mastering_dsp": {...}, "stems": [{"name": ..., "color": "#RRGGBB"} x 4]}``;
* iTunes tags in ``moov/udta/meta/ilst`` (the input's title, artist, ..., BPM, key and cover
  art where it has them, and ``TAUT`` = ``STEM`` as the Stem Creator writes).

Every track is the same number of samples: the movie timescale is the sample rate, so the
edit list (``elst``: skip the AAC encoder's priming, play exactly ``length`` samples) is
sample-exact, and ``iTunSMPB`` repeats it (priming, padding, length) for readers that use it.

Which model stem goes to which track is a *layout*: four ``NAME=SOURCES[#RRGGBB]`` entries,
SOURCES being stem names joined by ``+`` (summed), ``*`` (every stem no other track takes)
or nothing (a silent track). The mix track is the input itself, resampled to the output
rate; the stems share one peak-normalisation gain so that together they still add up to it.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsep_core import audio as audio_io
from vsep_core import mp4boxes
from vsep_core.errors import AudioWriteError, UsageError

log = logging.getLogger("vsep")

STEM_SUFFIX = ".stem.mp4"
STEM_RATES = (44100, 48000)
DEFAULT_AAC_BITRATE = "256k"
MIN_AAC_BITRATE = 32_000
SLOT_COLORS = ("#FD4A4A", "#AD65FF", "#3F8BFE", "#FA8D29")
"""The colours NI's Stem Creator gives tracks 1-4 (drums red, bass purple, melody blue, vocals orange)."""
LAYOUTS = {
    "default": "Drums=drums,Bass=bass,Melody=*,Vocals=vocals",
    "vocals-instrumental": "Instrumental=*,Silence=,Silence=,Vocals=vocals",
}
"""Named layouts for ``--stem_layout``; ``default`` suits 4-stem (and 6-stem) models."""
MASTERING_DSP = {
    "compressor": {"enabled": False, "ratio": 3, "output_gain": 0.5, "release": 0.3, "attack": 0.003,
                   "input_gain": 0.5, "threshold": 0, "hp_cutoff": 300, "dry_wet": 50},
    "limiter": {"enabled": False, "release": 0.05, "threshold": 0, "ceiling": -0.35},
}
"""The spec's mastering block, switched off: separated stems already add up to the mastered mix."""
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_TEXT_TAGS = {"title": "title", "artist": "artist", "album": "album", "album_artist": "album_artist",
              "albumartist": "album_artist", "date": "date", "year": "date", "genre": "genre", "composer": "composer",
              "comment": "comment", "copyright": "copyright", "grouping": "grouping", "lyrics": "lyrics",
              "track": "track", "disc": "disc"}
"""Input tag names (lower-cased) -> the names FFmpeg's MP4 muxer writes as iTunes items."""
_BPM_TAGS = ("bpm", "tbpm", "tmpo")
_KEY_TAGS = ("initialkey", "tkey", "key")


@dataclass(frozen=True)
class StemSlot:
    """One stem track of the file: its name and colour, and the model stems summed into it."""

    name: str
    sources: tuple[str, ...]  # lower-case stem names; ("*",) = every stem no other slot takes; () = silence
    color: str


@dataclass(frozen=True)
class StemEncoding:
    """How the tracks are encoded: AAC at a bitrate, or ALAC at a bit depth."""

    codec: str  # "aac" or "alac"
    bitrate: int = 0
    bit_depth: int = 16


def parse_layout(text: str | None) -> tuple[StemSlot, ...]:
    """Four slots from a layout name (see LAYOUTS) or ``NAME=SOURCES[#RRGGBB],...`` text."""
    spec = LAYOUTS["default"] if not text else LAYOUTS.get(text.strip().lower(), text)
    example = f"e.g. {LAYOUTS['default']!r}, or a named layout: {', '.join(LAYOUTS)}"
    entries = [e.strip() for e in spec.split(",")]
    if len(entries) != 4:
        raise UsageError(f"--stem_layout needs exactly 4 tracks separated by commas, not {len(entries)} "
                         f"({text!r}); {example}")
    slots = []
    for i, entry in enumerate(entries):
        name, sep, rest = entry.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--stem_layout track {i + 1} {entry!r} is not NAME=STEMS[#RRGGBB]; {example}")
        rest, hashed, hexcode = rest.partition("#")
        color = f"#{hexcode.strip()}" if hashed else SLOT_COLORS[i]
        if not _COLOR.match(color):
            raise UsageError(f"--stem_layout track {i + 1} colour {color!r} is not #RRGGBB (six hex digits)")
        sources = tuple(s.strip().lower() for s in rest.split("+") if s.strip())
        if "*" in sources and len(sources) > 1:
            raise UsageError(f"--stem_layout track {i + 1}: '*' (the other stems) stands alone, not in {rest!r}")
        slots.append(StemSlot(name.strip(), sources, color.upper()))
    if sum(s.sources == ("*",) for s in slots) > 1:
        raise UsageError("--stem_layout: only one track can take '*' (the stems no other track takes)")
    return tuple(slots)


def assign_stems(slots: tuple[StemSlot, ...], stems: list[str]) -> list[list[str]]:
    """For each slot, the model stems (names as the model gives them) summed into it.

    A source matches a stem by its name or by its canonical ensemble name (so ``instrumental``
    also finds "No Vocals"), case-insensitively. A source no stem matches is an error that
    says what the model gives and what to do.
    """
    from vsep_core.ensemble_run import canonical_stem

    forms = {s: {s.strip().lower(), canonical_stem(s, stems).lower()} for s in stems}
    picked: list[list[str]] = []
    for i, slot in enumerate(slots):
        if slot.sources == ("*",):
            picked.append([])
            continue
        for source in slot.sources:
            if not any(source in forms[s] for s in stems):
                raise UsageError(_missing_message(i, slot, source, stems))
        picked.append([s for s in stems if forms[s] & set(slot.sources)])
    taken = {s for group in picked for s in group}
    rest = [s for s in stems if s not in taken]
    for i, slot in enumerate(slots):
        if slot.sources == ("*",):
            picked[i] = rest
            rest = []
    if rest:
        log.warning("stem file: stem(s) %s are in no stem track (they are still in the mix track)", ", ".join(rest))
    return picked


def _missing_message(index: int, slot: StemSlot, source: str, stems: list[str]) -> str:
    from vsep_core.ensemble_run import canonical_stem

    message = (f"stem file track {index + 1} ({slot.name}) takes the {source!r} stem, which this model does not "
               f"give (it gives {', '.join(stems)})")
    if len(stems) >= 4:
        return f"{message}: name the model's stems in --stem_layout (see docs/dj.md)"
    models = "use a 4-stem model (list them with `vsep models --list_filter drums`)"
    if source != "vocals" and any(canonical_stem(s, stems) == "Vocals" for s in stems):
        return (f"{message}: a stem file holds drums, bass, melody and vocals, so {models}, or --stem_layout "
                "vocals-instrumental to write this vocals model's instrumental and vocals with two silent tracks")
    return f"{message}: {models}, or name this model's stems in --stem_layout (see docs/dj.md)"


def encoding_for(output_bitrate: str | None, output_bit_depth: int | None, sample_rate: int) -> StemEncoding:
    """AAC at --output_bitrate (default 256k), or ALAC when --output_bit_depth asks for lossless."""
    if output_bit_depth is not None:
        if output_bitrate:
            raise UsageError("stem files are AAC at --output_bitrate or lossless ALAC at --output_bit_depth: "
                             "give one of them, not both")
        if output_bit_depth not in (16, 24):
            raise UsageError(f"lossless (ALAC) stem files store 16 or 24 bits, not {output_bit_depth}: "
                             "use --output_bit_depth 16 or 24")
        return StemEncoding("alac", 0, int(output_bit_depth))
    text = output_bitrate or DEFAULT_AAC_BITRATE
    bitrate = audio_io.parse_bitrate(text)
    most = 6144 * 2 * sample_rate // 1024  # AAC-LC: at most 6144 bits per channel per 1024-sample frame
    if not MIN_AAC_BITRATE <= bitrate <= most:
        raise UsageError(f"--output_bitrate {text} is outside what AAC can carry in a stereo track at {sample_rate} Hz "
                         f"({MIN_AAC_BITRATE // 1000}k to {most // 1000}k); {DEFAULT_AAC_BITRATE} is the Stems "
                         "standard, or ask for lossless ALAC with --output_bit_depth 16")
    return StemEncoding("aac", bitrate)


def check_request(opts: Any, stems: list[str] | None = None, custom_output_names: dict | None = None,
                  ) -> tuple[tuple[StemSlot, ...], StemEncoding]:
    """Validate the output options for a stem file (and the model's stems when known) before any work."""
    if custom_output_names:
        raise UsageError("--custom_output_names does not go with --output_format STEM: the file is named "
                         "<input>.stem.mp4 and its tracks by --stem_layout")
    if opts.output_single_stem:
        raise UsageError("--single_stem does not go with --output_format STEM: a stem file holds every stem")
    if getattr(opts, "extract_instrumental", False):
        raise UsageError("--extract_instrumental does not go with --output_format STEM: the stem tracks are the "
                         "model's stems (for a vocals model, use --stem_layout vocals-instrumental)")
    if opts.sample_rate not in STEM_RATES:
        raise UsageError(f"stem files are {' or '.join(map(str, STEM_RATES))} Hz (the Stems spec's rates), not "
                         f"{opts.sample_rate}: use --sample_rate 44100")
    slots = parse_layout(opts.stem_layout)
    encoding = encoding_for(opts.output_bitrate, opts.output_bit_depth, opts.sample_rate)
    if stems is not None:
        assign_stems(slots, stems)
    return slots, encoding


def manifest(slots: tuple[StemSlot, ...]) -> bytes:
    """The JSON payload of the ``stem`` box."""
    doc = {"version": 1, "mastering_dsp": MASTERING_DSP, "stems": [{"name": s.name, "color": s.color} for s in slots]}
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def output_path(input_path: Path, output_dir: Path) -> Path:
    """``<output_dir>/<input file name without extension>.stem.mp4``."""
    from vsep_core.pipeline import sanitize_filename

    return output_dir / f"{sanitize_filename(input_path.stem)}{STEM_SUFFIX}"


# -- what the tracks are made of ----------------------------------------------------------------------------


class _SummedStereo:
    """The sum of some [channels, n] stems (arrays, memory maps or DiskStems) as a stereo array-like."""

    ndim = 2

    def __init__(self, parts: list[Any], length: int):
        self.parts = parts
        self.shape = (2, int(length))

    def __getitem__(self, key: tuple[Any, slice]) -> np.ndarray:
        rows, cols = key
        start, stop, _ = cols.indices(self.shape[1])
        out = np.zeros((2, max(0, stop - start)), np.float32)
        for part in self.parts:
            out += audio_io.match_channels(np.asarray(part[:, start:stop], dtype=np.float32), 2)
        return out[rows]


class _InputStereo:
    """The input file as a stereo array-like, read in slices (decoded whole for PyAV-only formats)."""

    ndim = 2

    def __init__(self, info: audio_io.AudioInfo):
        self.info = info
        self.whole = audio_io.match_channels(audio_io.read_audio(info.path)[0], 2) if info.subtype == "AV" else None
        self.shape = (2, self.whole.shape[1] if self.whole is not None else info.frames)

    def __getitem__(self, key: tuple[Any, slice]) -> np.ndarray:
        rows, cols = key
        start, stop, _ = cols.indices(self.shape[1])
        if self.whole is not None:
            return self.whole[rows, start:stop]
        return audio_io.match_channels(audio_io.read_frames(self.info.path, start, stop), 2)[rows]


def _peak(data: Any) -> float:
    peak = 0.0
    for start in range(0, data.shape[-1], audio_io.BLOCK):
        peak = max(peak, float(np.max(np.abs(data[:, start:start + audio_io.BLOCK]), initial=0.0)))
    return peak


def write_for_input(input_path: Path, stems: dict[str, Any], stem_rate: int, opts: Any, out_length: int,
                    info: audio_io.AudioInfo | None = None) -> Path:
    """Write ``<input>.stem.mp4`` for one separated input: its mix and the stems as the layout maps them.

    `stems` are [channels, n] arrays (or DiskStems) at `stem_rate`; they are resampled to
    ``opts.sample_rate`` and cut to `out_length`, as are the other output formats' stems.
    `info` is the input's probe when the caller has it.
    """
    slots, encoding = check_request(opts)
    groups = assign_stems(slots, list(stems))
    tracks = [_SummedStereo([stems[name] for name in group], next(iter(stems.values())).shape[-1])
              for group in groups]
    peak = max(_peak(t) for t in tracks)
    gain = audio_io.normalization_gain(peak, opts.normalization_threshold, opts.amplification_threshold)
    from vsep_core.pipeline import resampled_blocks

    info = info or audio_io.probe(input_path)
    mix = resampled_blocks(_InputStereo(info), info.sample_rate, opts.sample_rate, out_length, 1.0)
    stem_blocks = [resampled_blocks(t, stem_rate, opts.sample_rate, out_length, gain) for t in tracks]
    tags, cover = read_tags(input_path)
    path = output_path(input_path, Path(opts.output_dir))
    return write_stem_file(path, [mix, *stem_blocks], opts.sample_rate, out_length, slots, encoding, tags, cover)


# -- tags ---------------------------------------------------------------------------------------------------


def read_tags(path: Path) -> tuple[dict[str, str], tuple[bytes, int] | None]:
    """The input's tags (lower-case names) and its cover art as (image bytes, iTunes data type), where present."""
    import av

    tags: dict[str, str] = {}
    cover = None
    try:
        with av.open(str(path)) as container:
            for source in (container.metadata, *(s.metadata for s in container.streams.audio[:1])):
                for key, value in source.items():
                    tags.setdefault(str(key).lower(), str(value))
            for stream in container.streams.video:
                kind = {"mjpeg": 13, "png": 14}.get(stream.codec_context.name)
                if kind and int(stream.disposition) & 0x400:  # AV_DISPOSITION_ATTACHED_PIC
                    for packet in container.demux(stream):
                        if packet.size:
                            cover = (bytes(packet), kind)
                            break
                    break
    except Exception as exc:  # noqa: BLE001 - tags are a courtesy: a file PyAV cannot read simply has none
        log.debug("no tags read from %s: %s", path, exc)
    return tags, cover


def _ilst_items(tags: dict[str, str], cover: tuple[bytes, int] | None) -> list[bytes]:
    """The items FFmpeg's muxer does not write itself: BPM, key, cover art, and the Stem Creator's mark."""
    items = [mp4boxes.ilst_data(b"TAUT", b"STEM", 1)]
    bpm = next((tags[k] for k in _BPM_TAGS if k in tags), None)
    if bpm:
        try:
            items.append(mp4boxes.ilst_data(b"tmpo", struct.pack(">H", min(65535, round(float(bpm)))), 21))
        except ValueError:
            log.debug("BPM tag %r is not a number; not copied", bpm)
    key = next((tags[k] for k in _KEY_TAGS if k in tags), None)
    if key:
        items.append(mp4boxes.ilst_freeform("initialkey", key))
    if cover:
        items.append(mp4boxes.ilst_data(b"covr", cover[0], cover[1]))
    return items


# -- the container ------------------------------------------------------------------------------------------


def _fixed_blocks(blocks: Iterable[np.ndarray], size: int, length: int) -> Iterator[np.ndarray]:
    """Re-cut [2, k] blocks into blocks of `size` samples (the last one shorter); exactly `length` in all."""
    pending: list[np.ndarray] = []
    have = total = 0
    for block in blocks:
        pending.append(np.asarray(block, dtype=np.float32))
        have += block.shape[-1]
        while have >= size:
            joined = np.concatenate(pending, axis=1)
            yield joined[:, :size]
            total += size
            pending, have = [joined[:, size:]], have - size
    if have:
        total += have
        yield np.concatenate(pending, axis=1)
    if total != length:
        raise AudioWriteError(f"a stem-file track came out {total} samples long instead of {length}")


def _samples_for(block: np.ndarray, fmt: str) -> np.ndarray:
    """Float [-1, 1] samples in the encoder's planar format (fltp for AAC; s16p or s32p with 24 bits for ALAC)."""
    if fmt == "fltp":
        return np.ascontiguousarray(block, dtype=np.float32)
    if fmt == "s16p":
        return np.round(np.clip(block, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    clipped = np.clip(block.astype(np.float64), -1.0, 8388607 / 8388608)
    return (np.round(clipped * 8388608).astype(np.int32) << 8).astype(np.int32)


def write_stem_file(path: Path, tracks: list[Iterable[np.ndarray]], sample_rate: int, length: int,
                    slots: tuple[StemSlot, ...], encoding: StemEncoding, tags: dict[str, str] | None = None,
                    cover: tuple[bytes, int] | None = None) -> Path:
    """Write a stem file atomically: `tracks` are the mix then the four stems, each an iterable of
    float32 [2, k] blocks adding up to exactly `length` samples at `sample_rate`."""
    if len(tracks) != 5 or len(slots) != 4:
        raise ValueError("a stem file has the mix and exactly four stems")
    try:
        with audio_io.atomic_output(path) as tmp:
            packets = _encode(tmp, tracks, sample_rate, length, encoding, tags or {})
            _finish(tmp, manifest(slots), _ilst_items(tags or {}, cover), encoding, packets, length)
    except OSError as exc:
        raise AudioWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except (RuntimeError, ValueError) as exc:
        raise AudioWriteError(f"cannot write {path}: {exc}") from exc
    return path


def _encode(path: Path, tracks: list[Iterable[np.ndarray]], sample_rate: int, length: int,
            encoding: StemEncoding, tags: dict[str, str]) -> int:
    """Encode and mux the five tracks with PyAV; returns the number of packets of the first track."""
    import av

    # movie_timescale = the sample rate makes the edit list's duration sample-exact (FFmpeg's default is 1000).
    with av.open(str(path), "w", format="ipod", options={"movie_timescale": str(sample_rate)}) as container:
        for key, value in tags.items():
            if key in _TEXT_TAGS and value:
                container.metadata[_TEXT_TAGS[key]] = value
        streams = []
        for _ in tracks:
            stream = container.add_stream(encoding.codec, rate=sample_rate, layout="stereo")
            if encoding.codec == "aac":
                stream.bit_rate = encoding.bitrate
            else:
                stream.codec_context.format = "s16p" if encoding.bit_depth == 16 else "s32p"
            streams.append(stream)
        fmt = streams[0].codec_context.format.name
        first_track_packets = 0
        position = 0
        for blocks in zip(*(_fixed_blocks(t, audio_io.BLOCK // 4, length) for t in tracks), strict=True):
            for index, (stream, block) in enumerate(zip(streams, blocks, strict=True)):
                frame = av.AudioFrame.from_ndarray(_samples_for(block, fmt), format=fmt, layout="stereo")
                frame.sample_rate = sample_rate
                frame.pts = position
                for packet in stream.encode(frame):
                    first_track_packets += index == 0
                    container.mux(packet)
            position += blocks[0].shape[-1]
        for index, stream in enumerate(streams):
            for packet in stream.encode(None):
                first_track_packets += index == 0
                container.mux(packet)
    return first_track_packets


def _finish(path: Path, stem_json: bytes, items: list[bytes], encoding: StemEncoding, packets: int,
            length: int) -> None:
    """Add the ``stem`` box, the extra iTunes items and (AAC) iTunSMPB to the moov box the muxer wrote last."""
    with open(path, "r+b") as f:
        layout = mp4boxes.top_level(f)
        kind, offset, size = layout[-1]
        if kind != b"moov":
            raise AudioWriteError(f"unexpected MP4 layout from the muxer (last box {kind!r}, not moov)")
        f.seek(offset)
        moov = mp4boxes.parse(f.read(size))[0]
        kids = mp4boxes.children(moov)
        if encoding.codec == "aac":
            priming = _priming(kids)
            padding = packets * 1024 - priming - length
            smpb = f" 00000000 {priming:08X} {padding:08X} {length:016X}" + " 00000000" * 8
            items = [*items, mp4boxes.ilst_freeform("iTunSMPB", smpb)]
        udta = mp4boxes.find(kids, b"udta") or mp4boxes.Box(b"udta", b"")
        udta_kids = [k for k in mp4boxes.children(udta) if k.kind != b"stem"]
        meta = mp4boxes.find(udta_kids, b"meta")
        if meta is None:
            hdlr = mp4boxes.Box(b"hdlr", b"\0" * 8 + b"mdirappl" + b"\0" * 9)
            meta = mp4boxes.Box(b"meta", b"\0\0\0\0" + hdlr.to_bytes())
            udta_kids.append(meta)
        meta_kids = mp4boxes.children(meta)
        ilst = mp4boxes.find(meta_kids, b"ilst")
        if ilst is None:
            ilst = mp4boxes.Box(b"ilst", b"")
            meta_kids.append(ilst)
        new_ilst = mp4boxes.Box(b"ilst", ilst.payload + b"".join(items))
        meta_kids = [new_ilst if k is ilst else k for k in meta_kids]
        new_meta = mp4boxes.rebuild(meta, meta_kids)
        udta_kids = [new_meta if k is meta else k for k in udta_kids]
        new_udta = mp4boxes.Box(b"udta", b"".join(k.to_bytes() for k in udta_kids)
                                + mp4boxes.box(b"stem", stem_json))
        kids = [k for k in kids if k.kind != b"udta"] + [new_udta]
        f.seek(offset)
        f.write(mp4boxes.rebuild(moov, kids).to_bytes())
        f.truncate()


def _priming(moov_kids: list[mp4boxes.Box]) -> int:
    """The media time the first track's edit list starts at: the encoder's priming samples."""
    trak = mp4boxes.find(moov_kids, b"trak")
    edts = mp4boxes.find(mp4boxes.children(trak), b"edts") if trak else None
    elst = mp4boxes.find(mp4boxes.children(edts), b"elst") if edts else None
    if elst is None:
        return 0
    version = elst.payload[0]
    # version 0: entry_count, then segment_duration u32, media_time i32; version 1: u64, i64
    return struct.unpack_from(">i" if version == 0 else ">q", elst.payload, 12 if version == 0 else 16)[0]
