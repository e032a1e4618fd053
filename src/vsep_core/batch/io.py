"""Local paths and fsspec URLs for batch inputs and outputs.

A location is either a local path or a URL with a scheme (``s3://bucket/x``, ``gs://``,
``memory://`` ...). ``file://`` URLs are turned into local paths. URLs need the optional
``fsspec`` package (plus the backend for the scheme, e.g. ``s3fs``, ``gcsfs``); local paths
need nothing. Workers always separate a local copy: a URL input is downloaded to a temporary
folder first, and outputs written under a URL are uploaded once complete.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from vsep_core.audio import AUDIO_EXTENSIONS
from vsep_core.errors import AudioReadError, UsageError
from vsep_core.helpers import sha256_file

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
ATOMIC_PUT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory", "oss", "r2"}
"""Object stores where an upload appears under its name only when complete (no temp name needed)."""

STAT_THREADS = 16


@dataclass(frozen=True)
class InputFile:
    """One input of a batch: where it is, where its stems go, and what it looked like when planned.

    `key` is the absolute path or URL (the manifest's key); `rel_dir` is the folder, relative to
    the output directory, that its stems are written to (the input's folder below the input
    directory; "" for files named directly or in a list); `sig` changes when the file changes.
    """

    key: str
    rel_dir: str
    name: str
    size: int
    sig: str
    missing: bool = False


def normalize(location: str | os.PathLike) -> str:
    """A URL as given, ``file://x`` as the local path ``x``, a local path made absolute."""
    text = os.fspath(location)
    if text.startswith("file://"):
        text = text[len("file://"):]
    if is_url(text):
        return text.rstrip("/") if not text.endswith("://") else text
    return str(Path(text).expanduser().absolute())


def is_url(location: str | os.PathLike) -> bool:
    """True for ``scheme://...`` locations (other than ``file://``)."""
    m = _SCHEME.match(os.fspath(location))
    return bool(m) and m.group(1).lower() != "file"


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for a URL; a clear error when fsspec or the backend is missing."""
    try:
        import fsspec.core
    except ImportError:
        raise UsageError(f"{url} is a URL: reading and writing URLs needs fsspec (pip install fsspec, plus "
                         f"s3fs for s3://, gcsfs for gs://)") from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise UsageError(f"cannot open {url}: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"cannot open {url}: {exc}") from None


def protocol_of(url: str) -> str:
    """The scheme of a URL, lower case ("" for a local path)."""
    m = _SCHEME.match(url)
    return m.group(1).lower() if m else ""


def join(base: str, *parts: str) -> str:
    """`base` joined with posix `parts` (empty parts skipped), for paths and URLs alike."""
    parts = tuple(p for p in parts if p)
    if is_url(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base).joinpath(*parts))


def is_audio_name(name: str) -> bool:
    """Whether a file name has an audio extension vsep reads and is not hidden."""
    return not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS


def _local_stat(path: str, rel_dir: str) -> InputFile:
    try:
        st = os.stat(path)
    except OSError:
        return InputFile(path, rel_dir, Path(path).name, -1, "", missing=True)
    return InputFile(path, rel_dir, Path(path).name, st.st_size, f"{st.st_size}:{st.st_mtime_ns}")


def _url_sig(info: dict[str, Any]) -> str:
    tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("mtime") or info.get("LastModified") \
        or info.get("created") or ""
    return f"{info.get('size')}:{tag}"


def _url_stat(url: str, rel_dir: str) -> InputFile:
    fs, path = filesystem(url)
    name = PurePosixPath(path).name
    try:
        info = fs.info(path)
    except (FileNotFoundError, OSError):
        return InputFile(url, rel_dir, name, -1, "", missing=True)
    return InputFile(url, rel_dir, name, int(info.get("size") or 0), _url_sig(info))


def _walk_local(root: str, exclude: str | None) -> list[InputFile]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not (exclude and _inside(os.path.join(dirpath, d), exclude)))
        rel = Path(dirpath).relative_to(root).as_posix()
        for name in sorted(filenames):
            if is_audio_name(name):
                found.append(_local_stat(os.path.join(dirpath, name), "" if rel == "." else rel))
    return found


def _walk_url(url: str, exclude: str | None) -> list[InputFile]:
    fs, root = filesystem(url)
    root = root.rstrip("/")
    found = []
    for path, info in sorted(fs.find(root, detail=True).items()):
        if info.get("type", "file") != "file":
            continue
        rel = PurePosixPath(path).relative_to(root) if path.startswith(root) else PurePosixPath(path)
        if any(part.startswith(".") for part in rel.parts) or not is_audio_name(rel.name):
            continue
        full = fs.unstrip_protocol(path)
        if exclude and _inside(full, exclude):
            continue
        rel_dir = rel.parent.as_posix()
        found.append(InputFile(full, "" if rel_dir == "." else rel_dir, rel.name, int(info.get("size") or 0),
                               _url_sig(info)))
    return found


def _inside(path: str, folder: str) -> bool:
    path, folder = path.rstrip("/"), folder.rstrip("/")
    if is_url(path) != is_url(folder):
        return False
    if is_url(path):
        if protocol_of(path) != protocol_of(folder):
            return False
        path, folder = filesystem(path)[1].rstrip("/"), filesystem(folder)[1].rstrip("/")
        return path == folder or path.startswith(folder + "/")
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder + os.sep)


def _is_dir(location: str) -> bool:
    if is_url(location):
        fs, path = filesystem(location)
        return bool(fs.isdir(path))
    return os.path.isdir(location)


def _read_text(location: str) -> str:
    if is_url(location):
        fs, path = filesystem(location)
        try:
            return fs.cat_file(path).decode("utf-8")
        except FileNotFoundError:
            raise UsageError(f"input not found: {location}") from None
    try:
        return Path(location).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"input not found: {location} (give a directory, an audio file or a list file)") from None
    except UnicodeDecodeError:
        raise UsageError(f"{location} is neither a directory, an audio file nor a text list of inputs") from None


def _parent(location: str) -> str:
    if is_url(location):
        return location.rsplit("/", 1)[0]
    return str(Path(location).parent)


def _stat_all(items: Iterable[tuple[str, str]]) -> list[InputFile]:
    items = list(items)

    def stat(item: tuple[str, str]) -> InputFile:
        loc, rel = item
        return _url_stat(loc, rel) if is_url(loc) else _local_stat(loc, rel)

    if len(items) < 4:
        return [stat(i) for i in items]
    with ThreadPoolExecutor(STAT_THREADS) as pool:
        return list(pool.map(stat, items))


def discover_inputs(spec: str | os.PathLike, exclude: str | None = None) -> list[InputFile]:
    """The inputs named by `spec`: a directory (searched recursively), one audio file, or a list file.

    A list file is text with one path or URL per line (blank lines and ``#`` comments skipped;
    relative paths are relative to the list's folder); a directory in it is searched
    recursively. Hidden files and folders, and anything under `exclude` (the output
    directory), are skipped. Entries of a list that do not exist are returned with
    ``missing=True`` so that they fail alone instead of stopping the batch.
    """
    location = normalize(spec)
    if _is_dir(location):
        return _walk_url(location, exclude) if is_url(location) else _walk_local(location, exclude)
    name = location.rsplit("/", 1)[-1] if is_url(location) else Path(location).name
    if Path(name).suffix.lower() in AUDIO_EXTENSIONS:
        found = _stat_all([(location, "")])
        if found[0].missing:
            raise AudioReadError(f"input not found: {location}")
        return found
    base = _parent(location)
    plain: list[tuple[str, str]] = []
    found: list[InputFile] = []
    for line in _read_text(location).splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        entry = entry if is_url(entry) or entry.startswith("file://") or os.path.isabs(entry) else join(base, entry)
        entry = normalize(entry)
        if _is_dir(entry):
            found.extend(_walk_url(entry, exclude) if is_url(entry) else _walk_local(entry, exclude))
        else:
            plain.append((entry, ""))
    found.extend(_stat_all(plain))
    return found


# -- files ----------------------------------------------------------------------------------------------------

def sha256_of(location: str, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a local file or a URL."""
    if not is_url(location):
        return sha256_file(location)
    fs, path = filesystem(location)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def size_of(location: str) -> int | None:
    """Size in bytes of a local file or URL, or None when it does not exist."""
    if is_url(location):
        fs, path = filesystem(location)
        try:
            info = fs.info(path)
        except (FileNotFoundError, OSError):
            return None
        return int(info.get("size") or 0) if info.get("type", "file") == "file" else None
    try:
        return os.stat(location).st_size if os.path.isfile(location) else None
    except OSError:
        return None


def download(url: str, folder: Path) -> Path:
    """Copy a URL input into `folder`, keeping its file name (output names derive from it)."""
    fs, path = filesystem(url)
    local = folder / PurePosixPath(path).name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fs.get_file(path, str(local))
    except FileNotFoundError:
        raise AudioReadError(f"input not found: {url}") from None
    return local


def place(local: Path, final: str) -> None:
    """Move a finished local file to its final location so that it appears there only when complete.

    Local: ``os.replace`` (copy to a hidden temporary name beside `final` first when the two
    are on different filesystems). URL: object stores get a direct upload (an object appears
    only when complete); other filesystems a temporary name and a rename.
    """
    if not is_url(final):
        Path(final).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(local, final)
        except OSError:
            tmp = Path(final).parent / f".{Path(final).name}.{uuid.uuid4().hex[:8]}.part"
            try:
                shutil.copyfile(local, tmp)
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
        return
    fs, path = filesystem(final)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    if protocol_of(final) in ATOMIC_PUT_PROTOCOLS:
        fs.put_file(str(local), path)
        return
    tmp = f"{parent}/.{PurePosixPath(path).name}.{uuid.uuid4().hex[:8]}.part"
    fs.put_file(str(local), tmp)
    fs.mv(tmp, path)


def place_all(moves: list[tuple[Path, str]]) -> None:
    """:func:`place` every ``(local, final)`` pair of one input's outputs: all of them, or none.

    A directory in the way of a local final name is found before anything moves; when a move fails,
    the files already placed are removed again, so the output directory only ever holds whole sets.
    """
    from vsep_core.errors import AudioWriteError

    for _, final in moves:
        if not is_url(final) and Path(final).is_dir():
            raise AudioWriteError(f"cannot write {final}: a directory of that name is in the way; move it or "
                                  "choose another output directory", path=final)
    placed: list[str] = []
    try:
        for local, final in moves:
            place(local, final)
            placed.append(final)
    except BaseException:
        for final in placed:
            try:
                if is_url(final):
                    fs, path = filesystem(final)
                    fs.rm_file(path)
                else:
                    os.unlink(final)
            except OSError:
                pass
        raise


def read_bytes(location: str) -> bytes | None:
    """Bytes of a local file or URL, or None when it does not exist."""
    if is_url(location):
        fs, path = filesystem(location)
        try:
            return fs.cat_file(path)
        except FileNotFoundError:
            return None
    try:
        return Path(location).read_bytes()
    except FileNotFoundError:
        return None


def write_bytes_atomic(location: str, data: bytes) -> None:
    """Replace a local file or URL with `data` so that readers see the old or the new content, never half."""
    if is_url(location):
        fs, path = filesystem(location)
        parent = path.rsplit("/", 1)[0]
        if parent:
            fs.makedirs(parent, exist_ok=True)
        if protocol_of(location) in ATOMIC_PUT_PROTOCOLS:
            fs.pipe_file(path, data)
        else:
            tmp = f"{path}.{uuid.uuid4().hex[:8]}.part"
            fs.pipe_file(tmp, data)
            fs.mv(tmp, path)
        return
    target = Path(location)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
