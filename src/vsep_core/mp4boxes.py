"""The few ISO-BMFF (MP4) box operations the stem-file writer needs, on bytes.

FFmpeg's MP4 muxer (through PyAV) writes the audio tracks, but it has no way to add a box of
a type it does not know (NI's ``moov/udta/stem``) or iTunes freeform items (``----``), so
the writer adds those to the finished file here. Sizes are 32-bit except where a box says
otherwise (size 1: 64-bit size follows; size 0: to the end).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

FULL_BOXES = {b"meta"}
"""Container boxes whose children follow 4 bytes of version and flags."""


@dataclass
class Box:
    """One box: its four-character type and its payload (everything after the header)."""

    kind: bytes
    payload: bytes

    def to_bytes(self) -> bytes:
        """Header and payload; 64-bit size only when the box needs it."""
        return box(self.kind, self.payload)


def box(kind: bytes, payload: bytes) -> bytes:
    """Serialise a box of type `kind` (4 bytes) around `payload`."""
    if len(kind) != 4:
        raise ValueError(f"box type must be 4 bytes, not {kind!r}")
    size = 8 + len(payload)
    if size < 2**32:
        return struct.pack(">I4s", size, kind) + payload
    return struct.pack(">I4sQ", 1, kind, size + 8) + payload


def parse(data: bytes) -> list[Box]:
    """The boxes laid end to end in `data` (raises ValueError when a size does not fit)."""
    out, offset = [], 0
    while offset < len(data):
        if len(data) - offset < 8:
            raise ValueError(f"{len(data) - offset} stray bytes at offset {offset}")
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
        elif size == 0:
            size = len(data) - offset
        if size < header or offset + size > len(data):
            raise ValueError(f"box {kind!r} at offset {offset} claims {size} bytes; {len(data) - offset} are left")
        out.append(Box(kind, data[offset + header:offset + size]))
        offset += size
    return out


def children(container: Box) -> list[Box]:
    """The boxes inside a container box (skipping version/flags of full boxes such as ``meta``)."""
    return parse(container.payload[4:] if container.kind in FULL_BOXES else container.payload)


def rebuild(container: Box, kids: list[Box]) -> Box:
    """`container` with its children replaced by `kids` (keeping a full box's version/flags)."""
    head = container.payload[:4] if container.kind in FULL_BOXES else b""
    return Box(container.kind, head + b"".join(k.to_bytes() for k in kids))


def find(boxes: list[Box], kind: bytes) -> Box | None:
    """The first box of type `kind`, or None."""
    return next((b for b in boxes if b.kind == kind), None)


def top_level(f: BinaryIO) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the top-level boxes of an open file, reading headers only."""
    f.seek(0, 2)
    end = f.tell()
    out, offset = [], 0
    while offset < end:
        f.seek(offset)
        head = f.read(16)
        if len(head) < 8:
            raise ValueError(f"stray bytes at the end of the file (offset {offset})")
        size, kind = struct.unpack_from(">I4s", head)
        if size == 1:
            size = struct.unpack_from(">Q", head, 8)[0]
        elif size == 0:
            size = end - offset
        if size < 8 or offset + size > end:
            raise ValueError(f"top-level box {kind!r} at offset {offset} claims {size} bytes; the file has {end}")
        out.append((kind, offset, size))
        offset += size
    return out


def ilst_data(kind: bytes, value: bytes, data_type: int) -> bytes:
    """An iTunes metadata item: ``kind`` around a ``data`` box of well-known type `data_type`
    (1 UTF-8 text, 13 JPEG, 14 PNG, 21 big-endian integer)."""
    return box(kind, box(b"data", struct.pack(">II", data_type, 0) + value))


def ilst_freeform(name: str, value: str, mean: str = "com.apple.iTunes") -> bytes:
    """An iTunes freeform item (``----`` with mean, name and UTF-8 data), e.g. iTunSMPB."""
    return box(b"----", box(b"mean", b"\0\0\0\0" + mean.encode()) + box(b"name", b"\0\0\0\0" + name.encode())
               + box(b"data", struct.pack(">II", 1, 0) + value.encode()))
