"""Model downloads that never leave a broken model behind.

Each missing file of a record is fetched into ``<name>.part`` and renamed into place only
after its length (Content-Length / Content-Range, and the catalogue's size and sha256 when
known) checks out. A dropped connection resumes with an HTTP Range request; timeouts, 5xx
and dropped connections are retried with backoff; a 404 (or repeated failure) moves on to
the fallback URL. Up to ``MAX_DOWNLOAD_WORKERS`` files download in parallel, each under a
file lock (``<model_dir>/.locks/<name>.lock``) so that two processes never write the same
file. Offline (``VSEP_OFFLINE=1`` or ``offline=True``) the network is never touched.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import tempfile
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vsep_core import config, sources
from vsep_core.api import DownloadFile, ModelRecord
from vsep_core.errors import DownloadError
from vsep_core.helpers import sha256_file

logger = logging.getLogger("vsep.download")

RETRIES = 3
"""Attempts per URL for timeouts, 5xx answers and dropped connections (each resumes the .part)."""

BACKOFF_S = 1.0
"""Wait before the second attempt; doubles for each further attempt."""

LOCK_DIR = ".locks"
"""Directory in the model directory that holds the per-file locks."""

_RETRYABLE_STATUS = {408, 425, 429}


class _NotThere(Exception):
    """This URL does not have the file (404 and other final 4xx): try the next URL."""


class _Retry(Exception):
    """A transient failure (timeout, 5xx, dropped or short body): try the same URL again."""


class _BadContent(Exception):
    """The finished file does not match what the catalogue or server promised."""


class _Cancelled(Exception):
    """The user interrupted the download (Ctrl-C)."""


@dataclass
class _Job:
    file: DownloadFile
    dest: Path
    urls: list[str]


def candidate_urls(record: ModelRecord, file: DownloadFile) -> list[str]:
    """The URLs tried in order for one file of a record: the sources its plugin gave, mirrors applied.

    A ``file:`` URL (a file packaged with its plugin) is copied, never downloaded. A file with
    no source is an error naming the plugin that catalogued it.
    """
    if not file.sources:
        raise DownloadError(f"{file.name} (model {record.filename}) has no download source in the catalogue of "
                            f"{record.package or 'the plugin of ' + record.architecture}; put the file in the "
                            f"model directory yourself, or ask the plugin's authors for its URL")
    return [url if url.startswith("file:") else sources.rewrite_url(url) for url in file.sources]


def is_complete(path: Path, file: DownloadFile) -> bool:
    """Whether ``path`` holds the finished file (exists, and has the catalogue's size when known)."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if file.size is not None and size != file.size:
        logger.warning("%s has %d bytes, the catalogue says %d: downloading it again", path, size, file.size)
        return False
    return path.is_file()


def ensure_model_files(record: ModelRecord, model_dir: str | Path, *, offline: bool = False,
                       show_progress: bool = True) -> dict[str, Path]:
    """Make every file of ``record`` present in ``model_dir``; return ``{file name: local path}``.

    Existing complete files are never fetched again. Missing ones are downloaded in parallel
    (resumable, verified, atomically renamed); packaged configs are copied. Offline
    (``offline`` or ``VSEP_OFFLINE=1``) a missing file raises :class:`DownloadError` naming it,
    without any network access.
    """
    model_dir = Path(model_dir).expanduser()
    offline = offline or config.offline_from_env()
    paths: dict[str, Path] = {}
    jobs: list[_Job] = []
    for file in record.files:
        dest = model_dir / file.name
        paths[file.name] = dest
        if is_complete(dest, file):
            continue
        packaged = next((u for u in file.sources if u.startswith("file:")), None)
        if offline and packaged:
            _copy_packaged(packaged, dest)
        elif offline:
            jobs.append(_Job(file, dest, []))
        else:
            jobs.append(_Job(file, dest, candidate_urls(record, file)))
    if not jobs:
        return paths
    names = ", ".join(job.file.name for job in jobs)
    if offline:
        raise DownloadError(
            f"offline mode (--offline / VSEP_OFFLINE=1): model {record.filename} needs {names}, missing from "
            f"{model_dir}; run `vsep download {record.filename}` while online, or copy the file(s) there")
    try:
        (model_dir / LOCK_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the model directory {model_dir}: {exc.strerror or exc} "
                            f"(choose another with --model_file_dir or VSEP_MODEL_DIR)") from exc
    _run_jobs(jobs, show_progress)
    return paths


def download_model_files(name: str, model_dir: str | Path | None = None, *, offline: bool = False,
                         show_progress: bool = True) -> tuple[str, str, str, str, str | None]:
    """Resolve ``name`` and make its files present; the reference's tuple
    ``(model_filename, model_type, friendly_name, model_path, yaml_config_filename or None)``."""
    from vsep_core.catalog import resolve_model

    model_dir = Path(model_dir) if model_dir is not None else config.default_model_dir()
    record = resolve_model(name, model_dir)
    ensure_model_files(record, model_dir, offline=offline, show_progress=show_progress)
    return (record.filename, record.architecture, record.friendly_name, str(model_dir / record.filename),
            record.config)


def download_url(url: str, dest: str | Path, *, offline: bool = False, show_progress: bool = True) -> Path:
    """Fetch one URL to ``dest`` unless a file is already there (resumable, retried, atomically renamed).

    Offline (``offline`` or ``VSEP_OFFLINE=1``) a missing file raises :class:`DownloadError`.
    """
    dest = Path(dest).expanduser()
    if dest.is_file():
        return dest
    if offline or config.offline_from_env():
        raise DownloadError(f"offline mode (--offline / VSEP_OFFLINE=1): {dest} is missing and {url} "
                            "may not be fetched; copy the file there or run while online")
    try:
        (dest.parent / LOCK_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the directory {dest.parent}: {exc.strerror or exc}") from exc
    _run_jobs([_Job(DownloadFile(dest.name, url), dest, [url])], show_progress)
    return dest


def _copy_packaged(url: str, dest: Path) -> None:
    source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out)
        os.replace(tmp, dest)
    except OSError as exc:
        raise DownloadError(f"cannot copy the packaged file {source} to {dest}: {exc.strerror or exc}") from exc


def _make_progress(show: bool):
    if not show:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True))


def _client():
    import httpx

    return httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(config.DOWNLOAD_TIMEOUT, connect=min(30.0, config.DOWNLOAD_TIMEOUT)),
        limits=httpx.Limits(max_connections=config.HTTP_POOL_MAXSIZE,
                            max_keepalive_connections=config.HTTP_POOL_CONNECTIONS),
        headers={"User-Agent": "vsep", "Accept-Encoding": "identity"},
    )


def _run_jobs(jobs: list[_Job], show_progress: bool) -> None:
    cancel = threading.Event()
    pending: queue.Queue[_Job] = queue.Queue()
    for job in jobs:
        pending.put(job)
    errors: list[tuple[_Job, BaseException]] = []
    progress = _make_progress(show_progress)
    with _client() as client:
        if progress is not None:
            progress.start()

        def worker() -> None:
            while not cancel.is_set():
                try:
                    job = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    _fetch(client, job, progress, cancel)
                except BaseException as exc:  # reported below, in the caller's thread
                    errors.append((job, exc))

        threads = [threading.Thread(target=worker, name=f"vsep-download-{i}", daemon=True)
                   for i in range(min(config.MAX_DOWNLOAD_WORKERS, len(jobs)))]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except BaseException:
            cancel.set()  # workers stop at their next chunk; the .part files stay for the next run
            for thread in threads:
                thread.join(2.0)
            raise
        finally:
            if progress is not None:
                progress.stop()
    failures = [(job, exc) for job, exc in errors if not isinstance(exc, _Cancelled)]
    if failures:
        if len(failures) == 1 and isinstance(failures[0][1], DownloadError):
            raise failures[0][1]
        raise DownloadError("; ".join(str(exc) if isinstance(exc, DownloadError)
                                      else f"{job.file.name}: {exc}" for job, exc in failures))


def _fetch(client, job: _Job, progress, cancel: threading.Event) -> None:
    from filelock import FileLock, Timeout

    lock = FileLock(str(job.dest.parent / LOCK_DIR / f"{job.dest.name}.lock"))
    try:
        lock.acquire(timeout=0.2)
    except Timeout:
        logger.info("waiting for another vsep process that is downloading %s", job.dest.name)
        while True:
            if cancel.is_set():
                raise _Cancelled() from None
            try:
                lock.acquire(timeout=0.5)
                break
            except Timeout:
                continue
    try:
        if is_complete(job.dest, job.file):  # another process finished it while we waited
            return
        _download(client, job, progress, cancel)
    finally:
        lock.release()


def _download(client, job: _Job, progress, cancel: threading.Event) -> None:
    part = job.dest.with_name(job.dest.name + ".part")
    task = progress.add_task(job.file.name, total=job.file.size) if progress is not None else None
    problems: list[str] = []
    restarted = False
    for url in job.urls:
        if url.startswith("file:"):
            logger.info("using the packaged copy of %s (%s)", job.file.name, "; ".join(problems[-2:]))
            _copy_packaged(url, job.dest)
            return
        attempt = 0
        while attempt < RETRIES:
            if attempt and cancel.wait(BACKOFF_S * 2 ** (attempt - 1)):
                raise _Cancelled()
            attempt += 1
            try:
                logger.info("downloading %s from %s", job.file.name, url)
                _stream(client, url, part, job.file, progress, task, cancel)
                _verify(part, job.file)
            except _NotThere as exc:
                problems.append(str(exc))
                break
            except _Retry as exc:
                problems.append(str(exc))
                logger.info("%s (attempt %d of %d)", exc, attempt, RETRIES)
                continue
            except _BadContent as exc:
                problems.append(str(exc))
                part.unlink(missing_ok=True)
                if restarted:
                    break
                restarted, attempt = True, 0  # one fresh start, in case a resumed .part was stale
                continue
            os.replace(part, job.dest)
            return
    kept = f"; the partial file {part.name} is kept and resumed next time" if part.exists() else ""
    raise DownloadError(f"could not download {job.file.name}: {'; '.join(problems[-3:])}{kept}")


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _stream(client, url: str, part: Path, file: DownloadFile, progress, task, cancel: threading.Event) -> None:
    import httpx

    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status == 416 and offset:
                total = _range_total(response.headers.get("content-range", ""))
                if total == offset:
                    return  # the .part already holds the whole file
                part.unlink(missing_ok=True)
                raise _Retry(f"{url} refused to resume at byte {offset}; starting again")
            if status in _RETRYABLE_STATUS or status >= 500:
                raise _Retry(f"HTTP {status} from {url}")
            if 400 <= status < 500:
                raise _NotThere(f"HTTP {status} from {url}")
            if status == 206:
                match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
                if not match or int(match.group(1)) != offset:
                    part.unlink(missing_ok=True)
                    raise _Retry(f"{url} answered a range other than the one asked; starting again")
                total = None if match.group(3) == "*" else int(match.group(3))
                mode = "ab"
            elif status == 200:
                offset, mode = 0, "wb"
                length = response.headers.get("content-length")
                total = int(length) if length and length.isdigit() else None
            else:
                raise _Retry(f"unexpected HTTP {status} from {url}")
            if response.headers.get("content-encoding", "identity") != "identity":
                total = None  # the length counts encoded bytes
            if file.size is not None and total is not None and total != file.size:
                raise _BadContent(f"{url} serves {total} bytes, the catalogue expects {file.size}")
            if progress is not None:
                progress.update(task, total=total or file.size, completed=offset)
            # Write what arrives, buffered by the chunk size: a drop loses nothing already received.
            with part.open(mode, buffering=config.DOWNLOAD_CHUNK_SIZE) as out:
                for chunk in response.iter_bytes():
                    if cancel.is_set():
                        raise _Cancelled()
                    out.write(chunk)
                    if progress is not None:
                        progress.advance(task, len(chunk))
                out.flush()
                os.fsync(out.fileno())
    except (httpx.TimeoutException, httpx.TransportError) as exc:
        raise _Retry(f"{type(exc).__name__} from {url}: {exc}") from exc
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Retry(f"{url} sent {size} of {total} bytes")


def _range_total(content_range: str) -> int | None:
    match = re.match(r"bytes\s+\*/(\d+)", content_range)
    return int(match.group(1)) if match else None


def _verify(part: Path, file: DownloadFile) -> None:
    size = part.stat().st_size
    if file.size is not None and size != file.size:
        raise _BadContent(f"{file.name}: got {size} bytes, the catalogue expects {file.size}")
    if file.sha256:
        digest = sha256_file(part)
        if digest != file.sha256.lower():
            raise _BadContent(f"{file.name}: sha256 {digest} differs from the catalogue's {file.sha256}")
