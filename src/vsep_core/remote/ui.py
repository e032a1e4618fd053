"""The web page of ``vsep serve``: its static files and the few routes the page adds to the API.

The page (``GET /`` from a browser, assets under ``/ui/static/``) is plain HTML, CSS and JS
shipped in this package (``ui_static/``); it holds no data, so it is served without a token,
and it asks for the token itself. Everything else it does goes through the token-protected
API: the reference's routes (``POST /separate``, ``GET /status``, ``POST /cancel``,
``GET /download``) plus the ones below, which need the server's job store and storage:

- ``GET /ui/api/info``: version, limits, the model catalogue (stems, SDR, on disk), presets
  and the form fields of ``POST /separate`` (the same :class:`FormField` list the server's form is built from)
- ``GET /ui/api/jobs``: every job in the store, newest first
- ``GET /ui/api/jobs/{task_id}/peaks``: each stem's waveform peaks, computed once and cached with the job
- ``POST /ui/api/jobs/{task_id}/mix``: the stems mixed with per-stem gains, written by vsep's writer
- ``GET /ui/api/jobs/{task_id}/zip``: every stem in one zip file
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from vsep_core.errors import VsepError
from vsep_core.remote.store import COMPLETED, EXPIRED, Job

if TYPE_CHECKING:
    from vsep_core.remote.server import App

STATIC_PACKAGE = "vsep_core.remote"
STATIC_DIR = "ui_static"
STATIC_PREFIX = "/ui/static/"
PEAK_BUCKETS = 1600
"""Waveform resolution: peaks per stem (enough for a lane as wide as a large screen)."""
MAX_GAIN = 4.0
MIX_FORMATS = ("wav", "flac", "mp3")
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_SECURITY_HEADERS = {
    # everything comes from this server; audio is decoded from blobs the page fetched itself
    "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
_STEM_IN_NAME = re.compile(r"_\(([^()]+)\)")


def static_file(name: str) -> bytes | None:
    """The bytes of one packaged page file (``index.html``, ``app.js``, ...), or None if there is none."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+\.[a-z]+", name):
        return None
    item = resources.files(STATIC_PACKAGE).joinpath(STATIC_DIR, name)
    return item.read_bytes() if item.is_file() else None


def wants_page(scope: dict[str, Any]) -> bool:
    """A browser navigating to ``/`` (it accepts HTML); API clients keep getting the JSON service document."""
    if scope.get("method") not in ("GET", "HEAD") or scope.get("path") != "/":
        return False
    accept = dict(scope.get("headers") or []).get(b"accept", b"").decode("latin-1").lower()
    return "text/html" in accept


class PageMiddleware:
    """Serves the page and its static files before the token check (they hold no data)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
            path = scope.get("path", "")
            name = "index.html" if wants_page(scope) else (
                path[len(STATIC_PREFIX):] if path.startswith(STATIC_PREFIX) else None)
            if name is not None:
                body = static_file(name)
                if body is None:
                    return await _send(send, 404, b'{"detail": "no such page file"}', "application/json")
                ctype = _CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
                return await _send(send, 200, b"" if scope["method"] == "HEAD" else body, ctype, len(body))
        await self.app(scope, receive, send)


async def _send(send: Any, status: int, body: bytes, ctype: str, length: int | None = None) -> None:
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body) if length is None
                                                                          else length).encode())]
    headers += [(k.encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class MixRequest(BaseModel):
    """``POST /ui/api/jobs/{task_id}/mix``: a gain per stem (download id); stems not listed are silent."""

    format: Literal["wav", "flac", "mp3"] = "wav"
    gains: dict[str, float] = Field(default_factory=dict)


def stem_label(filename: str) -> str:
    """The stem a result file holds, from vsep's ``<input>_(<Stem>)_<model>`` naming (else the file's stem)."""
    found = _STEM_IN_NAME.findall(Path(filename).stem)
    return found[-1] if found else Path(filename).stem


def field_document(field: Any) -> dict[str, Any]:
    """One ``POST /separate`` form field (a :class:`vsep_core.remote.backend.FormField`) as JSON for the page."""
    return {"name": field.name, "type": field.type.__name__, "help": field.help, "group": field.group,
            "min": field.ge, "max": field.le, "exclusive_min": field.gt, "pattern": field.pattern,
            "choices": list(field.choices) if field.choices else None, "json": field.json}


def catalogue(models_json: dict[str, Any], model_dir: str | None) -> list[dict[str, Any]]:
    """The backend's ``/models-json`` document flattened for the page: one entry per model file with its
    architecture, stems, SDR per stem and whether its files are in ``model_dir``."""
    out = []
    for arch, entries in models_json.items():
        for name, entry in entries.items():
            filename = entry.get("filename")
            if not filename:
                continue
            scores = entry.get("scores") or {}
            stems = [str(s).rstrip("*") for s in entry.get("stems") or []]
            sdr = {s: (scores.get(s) or {}).get("SDR") if isinstance(scores.get(s), dict) else None for s in stems}
            # a URL's last path part is the local file name (as the downloader saves it)
            files = {str(f).split("?")[0].rsplit("/", 1)[-1] for f in entry.get("download_files") or []}
            on_disk = bool(model_dir) and all((Path(model_dir) / f).is_file() for f in files | {filename})
            out.append({"filename": filename, "name": name, "architecture": arch, "stems": stems,
                        "target_stem": entry.get("target_stem"), "sdr": sdr, "on_disk": on_disk})
    return out


def compute_peaks(path: Path, buckets: int = PEAK_BUCKETS) -> tuple[list[float], dict[str, int]]:
    """Peak amplitude (over channels) of ``buckets`` equal slices of an audio file, and its format."""
    from vsep_core.audio import read_audio

    data, info = read_audio(path)
    level = np.abs(data).max(axis=0)
    edges = np.linspace(0, level.size, min(buckets, level.size) + 1).astype(int)
    peaks = np.maximum.reduceat(level, edges[:-1]) if level.size else np.zeros(0)
    return [round(float(p), 4) for p in peaks], {"sample_rate": info.sample_rate, "frames": info.frames,
                                                 "channels": info.channels, "bit_depth": info.bit_depth}


class UI:
    """The page's routes on one :class:`vsep_core.remote.server.App`."""

    def __init__(self, app: App):
        self.app = app

    def install(self, api: FastAPI) -> None:
        """Add the page's routes to the API (call before the middleware is added)."""
        from vsep_core.remote.server import ErrorDetail

        def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
            return {code: {"model": ErrorDetail} for code in codes}

        file = {200: {"content": {"application/octet-stream": {}}}}
        api.add_api_route("/ui/api/info", self.info, methods=["GET"], responses=errors(401, 500),
                          summary="Page: limits, models, presets and the form fields of POST /separate")
        api.add_api_route("/ui/api/jobs", self.jobs, methods=["GET"], responses=errors(401),
                          summary="Page: every job, newest first")
        api.add_api_route("/ui/api/jobs/{task_id}/peaks", self.peaks, methods=["GET"],
                          responses=errors(401, 404, 409, 410, 500),
                          summary="Page: waveform peaks of a finished job's stems (cached with the job)")
        api.add_api_route("/ui/api/jobs/{task_id}/mix", self.mix, methods=["POST"], response_class=FileResponse,
                          responses={**file, **errors(400, 401, 404, 409, 410, 500)},
                          summary="Page: the stems mixed with per-stem gains, in WAV, FLAC or MP3")
        api.add_api_route("/ui/api/jobs/{task_id}/zip", self.zip, methods=["GET"], response_class=FileResponse,
                          responses={**file, **errors(401, 404, 409, 410)},
                          summary="Page: every stem of a finished job in one zip file")

    # -- routes ---------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What the page needs to draw its upload form."""
        from vsep_core.audio import AUDIO_EXTENSIONS
        from vsep_core.remote.server import server_version

        backend = self.app.backend
        try:
            models = catalogue(backend.models_json(), getattr(backend, "model_file_dir", None))
            default = backend.check_selection([], None)[0]  # what a job without a model runs
        except VsepError as exc:
            raise HTTPException(500, f"cannot list the models: {exc}") from exc
        presets = backend.presets()
        presets = presets.get("presets", presets) if isinstance(presets, dict) else {}
        return {"version": server_version(), "default_model": default,
                "max_upload_bytes": int(self.app.settings.max_upload_mb * 2**20),
                "audio_extensions": list(AUDIO_EXTENSIONS), "mix_formats": list(MIX_FORMATS),
                "models": models, "presets": presets,
                "fields": [field_document(f) for f in self.app.fields]}

    def jobs(self) -> list[dict[str, Any]]:
        """Every job of the store (the page's job list), newest first, with the stem of each file."""
        from vsep_core.remote.store import CANCELLED, ERROR, PROCESSING, SUBMITTED

        jobs = self.app.store.with_status(SUBMITTED, PROCESSING, COMPLETED, ERROR, CANCELLED, EXPIRED)
        docs = []
        for job in reversed(jobs):
            doc = job.public()
            doc["stems"] = {fid: stem_label(name) for fid, name in job.files.items()}
            if doc.get("error"):  # the worker's message names the upload's path on the server: keep the name only
                for folder in (self.app.storage.input_path(job.task_id, "x").parent,
                               self.app.storage.output_dir(job.task_id)):
                    doc["error"] = doc["error"].replace(f"{folder}{os.sep}", "")
            docs.append(doc)
        return docs

    def peaks(self, task_id: str) -> Any:
        """Each stem's peaks and the stems' format; computed on first request, then read from the job's cache."""
        job = self._finished(task_id)
        cache = self.app.storage.job_dir(task_id) / "ui" / "peaks.json"
        if cache.is_file():
            return json.loads(cache.read_text())
        stems, fmt = [], None
        for fid, name in job.files.items():
            peaks, fmt = compute_peaks(self._file(job, fid))
            stems.append({"id": fid, "name": name, "stem": stem_label(name), "peaks": peaks})
        doc = {"task_id": task_id, **(fmt or {}), "stems": stems}
        _write_atomically(cache, json.dumps(doc).encode())
        return doc

    def mix(self, task_id: str, request: MixRequest) -> FileResponse:
        """The sum of ``gain x stem`` over the stems, as long as the stems, at their rate and bit depth."""
        from vsep_core.audio import fit_length, match_channels, probe, read_audio, write_audio

        job = self._finished(task_id)
        for fid, gain in request.gains.items():
            if fid not in job.files:
                raise HTTPException(400, f"job {task_id} has no stem {fid!r}; GET /status/{task_id} lists them")
            if not math.isfinite(gain) or not 0 <= gain <= MAX_GAIN:
                raise HTTPException(400, f"the gain of {job.files[fid]!r} must be between 0 and {MAX_GAIN:g}")
        try:
            infos = {fid: probe(self._file(job, fid)) for fid in job.files}
            first = next(iter(infos.values()))
            frames = max(i.frames for i in infos.values())
            channels = max(i.channels for i in infos.values())
            mix = np.zeros((channels, frames), np.float32)
            for fid, gain in request.gains.items():
                if gain > 0:
                    data = read_audio(self._file(job, fid))[0]
                    mix += np.float32(gain) * fit_length(match_channels(data, channels), frames)
        except VsepError as exc:
            raise HTTPException(500, f"could not read the stems: {exc}") from exc
        np.clip(mix, -1.0, 1.0, out=mix)
        work = self._work_dir(task_id)
        target = work / f"{Path(job.original_filename).stem}_(Mix).{request.format}"
        try:
            write_audio(target, mix, first.sample_rate, request.format, bit_depth=first.bit_depth)
        except VsepError as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise HTTPException(500, f"could not write the mix: {exc}") from exc
        return _attachment(target, work)

    def zip(self, task_id: str) -> FileResponse:
        """Every stem of the job, stored (not recompressed) in one zip file."""
        job = self._finished(task_id)
        work = self._work_dir(task_id)
        target = work / f"{Path(job.original_filename).stem}_stems.zip"
        try:
            with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
                for fid, name in job.files.items():
                    archive.write(self._file(job, fid), arcname=name)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return _attachment(target, work)

    # -- helpers --------------------------------------------------------------------------------
    def _finished(self, task_id: str) -> Job:
        job = self.app.store.get(task_id)
        if job is None:
            raise HTTPException(404, f"no job {task_id}")
        if job.status == EXPIRED:
            raise HTTPException(410, job.error or "the results of this job were removed")
        if job.status != COMPLETED:
            raise HTTPException(409, f"job {task_id} is {job.status}, not completed: it has no stems yet")
        return job

    def _file(self, job: Job, fid: str) -> Path:
        path = self.app.storage.output_file(job.task_id, job.files[fid])
        if path is None:
            raise HTTPException(410, f"the file {job.files[fid]!r} of job {job.task_id} is gone")
        return path

    def _work_dir(self, task_id: str) -> Path:
        """A fresh private directory for one export, inside the job's directory (removed after sending)."""
        base = self.app.storage.job_dir(task_id) / "ui"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="export-", dir=base))


def _write_atomically(path: Path, body: bytes) -> None:
    from vsep_core.helpers import publish_atomically

    publish_atomically(body, path)


def _attachment(path: Path, work: Path) -> FileResponse:
    """Send ``path`` as a download, then delete its export directory."""
    return FileResponse(path, filename=path.name, media_type=None,
                        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True))
