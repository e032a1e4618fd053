"""A content-addressed cache of the stems a chain's steps produce, on disk, with a size cap and LRU eviction.

An entry is a folder ``<root>/<key[:2]>/<key>/`` holding one float32 WAV file per stem and
``meta.json`` (stem names, size, what made it). The key is a hash that the caller builds from
everything that decides the stems (:func:`make_key`: for a chain step, the input's hash, the
model files' hashes, the effective params and the parents' keys), so an entry is never returned
for other input or settings. An entry is built in a private folder and renamed into place, so a
run that dies leaves no half entry. The time of last use is the mtime of the entry's ``used``
file; :meth:`StemCache.evict` drops least recently used entries until the cache fits its cap.
File hashes are remembered by (path, size, mtime) in ``file-hashes.json`` so a large model or input
is hashed once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from vsep_core.errors import AudioReadError, VsepError
from vsep_core.helpers import sha256_file
from vsep_core.pipeline import SlicedStem

FORMAT_VERSION = 1
HASHES_FILE = "file-hashes.json"
META_FILE = "meta.json"
USED_FILE = "used"
MAX_REMEMBERED_HASHES = 5000


class CacheError(VsepError):
    """The stem cache cannot be used (unwritable folder, damaged entry)."""


def make_key(parts: Any) -> str:
    """The sha256 of `parts` as canonical JSON (sorted keys), prefixed with the cache format version."""
    text = json.dumps({"format": FORMAT_VERSION, "parts": parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class StoredStem(SlicedStem):
    """A stem stored as a float32 WAV file, read in slices (``stem[:, a:b]``) without loading it whole."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            info = sf.info(str(self.path))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise CacheError(f"cached stem {self.path} is damaged ({exc}); run `vsep cache clear`") from exc
        self.sample_rate = int(info.samplerate)
        self.shape = (int(info.channels), int(info.frames))

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as float32 [channels, stop - start]."""
        start, stop = max(0, start), min(self.shape[1], stop)
        with sf.SoundFile(str(self.path)) as f:
            f.seek(start)
            return f.read(max(0, stop - start), dtype="float32", always_2d=True).T

    def blocks(self, block: int = 1 << 18) -> Iterator[np.ndarray]:
        """The whole stem in consecutive [channels, <= block] pieces."""
        for start in range(0, self.shape[1], block):
            yield self.read(start, start + block)


def write_stem_file(path: Path, blocks: Iterator[np.ndarray], sample_rate: int, channels: int) -> Path:
    """Write float32 blocks as the cache's stem file (32-bit float WAV: exact, readable by any tool)."""
    from vsep_core import audio as audio_io

    return audio_io.write_audio(path, blocks, sample_rate, "WAV", 32, channels=channels)


@dataclass
class Entry:
    """A cached step result: its folder and stem name -> file."""

    key: str
    path: Path
    stems: dict[str, Path]
    meta: dict[str, Any]

    def stem(self, name: str) -> StoredStem:
        """The stored stem called `name` (exactly as the step gave it)."""
        return StoredStem(self.stems[name])

    @property
    def size(self) -> int:
        """Bytes on disk."""
        return int(self.meta.get("bytes", 0))


class Builder:
    """A private folder that becomes a cache entry on :meth:`StemCache.commit` (or is removed on abort)."""

    def __init__(self, key: str, folder: Path):
        self.key = key
        self.folder = folder
        self.stems: dict[str, Path] = {}

    def path_for(self, stem: str) -> Path:
        """Where to write stem `stem` (the file name is its index, so any stem name is safe)."""
        path = self.folder / f"{len(self.stems)}.wav"
        self.stems[stem] = path
        return path


class StemCache:
    """Stem entries under `root`, at most `max_bytes` in all after :meth:`evict`."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the stem cache {self.root}: {exc.strerror or exc} "
                             f"(choose another with --cache_dir or VSEP_CACHE_DIR)") from exc
        self._hashes: dict[str, Any] | None = None

    @classmethod
    def temporary(cls) -> StemCache:
        """A cache in a new temporary folder (``--no-cache``: nothing read from or left in the user's cache)."""
        return cls(Path(tempfile.mkdtemp(prefix="vsep-chain-")), max_bytes=1 << 62)

    def _folder(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> Entry | None:
        """The entry for `key` (marked as just used), or None."""
        folder = self._folder(key)
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        stems = {name: folder / file for name, file in meta["stems"]}
        if meta.get("key") != key or not all(p.is_file() for p in stems.values()):
            return None
        (folder / USED_FILE).touch()
        return Entry(key, folder, stems, meta)

    def has(self, key: str) -> bool:
        """Whether a complete entry for `key` is here (without marking it used)."""
        entry = self.get_quietly(self._folder(key))
        return entry is not None and entry.key == key and all(p.is_file() for p in entry.stems.values())

    def begin(self, key: str) -> Builder:
        """A builder for the entry `key` in a private folder under the cache root."""
        staging = self.root / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        return Builder(key, Path(tempfile.mkdtemp(prefix=f"{key[:12]}-", dir=staging)))

    def commit(self, builder: Builder, info: dict[str, Any]) -> Entry:
        """Publish a built entry (if another process published the same key meanwhile, that one is kept)."""
        size = sum(p.stat().st_size for p in builder.stems.values())
        meta = {"key": builder.key, "stems": [[n, p.name] for n, p in builder.stems.items()], "bytes": size,
                "created": time.time(), **info}
        (builder.folder / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        (builder.folder / USED_FILE).touch()
        final = self._folder(builder.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists() and not self.has(builder.key):  # a damaged entry (a file lost): replace it
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(builder.folder, final)
        except OSError:  # already there (another run made it meanwhile): keep that one
            shutil.rmtree(builder.folder, ignore_errors=True)
        entry = self.get(builder.key)
        if entry is None:
            raise CacheError(f"cache entry {builder.key[:12]} could not be published under {self.root}")
        return entry

    def abort(self, builder: Builder) -> None:
        """Drop an unfinished entry."""
        shutil.rmtree(builder.folder, ignore_errors=True)

    def entries(self) -> list[Entry]:
        """Every complete entry, least recently used first."""
        found = []
        for meta_path in self.root.glob(f"??/*/{META_FILE}"):
            entry = self.get_quietly(meta_path.parent)
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda e: _mtime(e.path / USED_FILE))

    def get_quietly(self, folder: Path) -> Entry | None:
        """The entry in `folder` without marking it used."""
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            return Entry(meta["key"], folder, {n: folder / f for n, f in meta["stems"]}, meta)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def total_bytes(self) -> int:
        """Bytes of every entry."""
        return sum(e.size for e in self.entries())

    def evict(self, keep: set[str] | None = None) -> list[str]:
        """Remove least recently used entries (never those in `keep`) until the total fits the cap;
        returns the removed keys."""
        entries = self.entries()
        total = sum(e.size for e in entries)
        removed = []
        for entry in entries:
            if total <= self.max_bytes:
                break
            if keep and entry.key in keep:
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            total -= entry.size
            removed.append(entry.key)
        return removed

    def clear(self) -> int:
        """Remove every entry (and unfinished ones); returns the number of entries removed."""
        count = len(self.entries())
        for child in self.root.iterdir():
            if child.is_dir() and (len(child.name) == 2 or child.name == ".staging"):
                shutil.rmtree(child, ignore_errors=True)
        (self.root / HASHES_FILE).unlink(missing_ok=True)
        return count

    def remove_all(self) -> None:
        """Delete the cache folder itself (a temporary cache at the end of a run)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def file_hash(self, path: Path) -> str:
        """sha256 of a file's bytes, remembered by (path, size, mtime) so an unchanged file is read once."""
        path = Path(path).resolve()
        try:
            st = path.stat()
        except OSError as exc:
            raise AudioReadError(f"cannot read {path}: {exc.strerror or exc}") from exc
        stamp = [st.st_size, st.st_mtime_ns]
        hashes = self._load_hashes()
        known = hashes.get(str(path))
        if known and known[0] == stamp:
            return str(known[1])
        digest = sha256_file(path)
        hashes[str(path)] = [stamp, digest]
        self._save_hashes(hashes)
        return digest

    def _load_hashes(self) -> dict[str, Any]:
        if self._hashes is None:
            try:
                self._hashes = json.loads((self.root / HASHES_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._hashes = {}
        return self._hashes

    def _save_hashes(self, hashes: dict[str, Any]) -> None:
        if len(hashes) > MAX_REMEMBERED_HASHES:  # forget files that are gone (temporary inputs of batch/server)
            for path in [p for p in hashes if not os.path.exists(p)]:
                del hashes[path]
        tmp = self.root / f".{HASHES_FILE}.{os.getpid()}"
        try:
            tmp.write_text(json.dumps(hashes), encoding="utf-8")
            os.replace(tmp, self.root / HASHES_FILE)
        except OSError:
            tmp.unlink(missing_ok=True)  # the memo is an optimisation: a failed save only costs a re-hash


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def default_cache() -> StemCache:
    """The user's stem cache (``VSEP_CACHE_DIR`` / the user cache dir; cap ``VSEP_CACHE_SIZE_GB``)."""
    from vsep_core import config

    return StemCache(config.stem_cache_dir(), config.stem_cache_bytes())
