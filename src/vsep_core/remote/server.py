"""The ``vsep serve`` HTTP API: the reference's routes on a queue, a job store and worker processes.

Import this module only when serving: it needs the ``server`` extra (FastAPI, uvicorn,
python-multipart). Routes (all but ``/health`` need ``Authorization: Bearer <token>`` when a
token is set):

- ``POST /separate`` multipart upload ``file`` + the separation parameters -> a queued job
- ``GET /status/{task_id}``, ``POST /cancel/{task_id}``
- ``GET /download/{task_id}/{file_hash}`` (a file name also works: the legacy route)
- ``GET /models-json``, ``GET /models?filter_sort_by=``, ``GET /presets``, ``GET /health``, ``GET /``
- the web page (``GET /`` from a browser) and its routes under ``/ui/``: see ``vsep_core.remote.ui``
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
import mimetypes
import secrets
import shutil
import subprocess
import threading
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional
from urllib.parse import quote

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from filelock import FileLock, Timeout
from pydantic import BaseModel

from vsep_core.errors import VsepError
from vsep_core.remote.backend import Backend, VsepBackend
from vsep_core.remote.files import Storage, is_plain_name, safe_filename
from vsep_core.remote.store import EXPIRED, PROCESSING, SUBMITTED, Job, JobStore
from vsep_core.remote.ui import UI, PageMiddleware
from vsep_core.remote.worker import Sweeper, WorkerPool

log = logging.getLogger("vsep.remote")

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
UNAUTHENTICATED_PATHS = ("/health",)


def server_version() -> str:
    """The installed vsep-core version."""
    from vsep_core import __version__

    return __version__


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def gpu_count() -> int:
    """Number of NVIDIA GPUs ``nvidia-smi -L`` lists (0 without one); torch is not imported."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


@dataclass
class ServerSettings:
    """Everything ``vsep serve`` can be told. Sizes are in MiB, times in hours."""

    data_dir: Path
    model_file_dir: Path | None = None
    device: str | None = None
    token: str | None = None
    workers: int = 1
    pin_gpus: bool = False
    max_upload_mb: float = 500.0
    retention_hours: float = 24.0
    max_storage_mb: float = 20_480.0
    max_queue: int = 100
    cors_origins: list[str] = field(default_factory=list)
    sweep_interval_s: float = 60.0


class JobStatus(BaseModel):
    """A job as ``GET /status`` returns it (the reference's status document)."""

    task_id: str
    status: Literal["submitted", "processing", "completed", "error", "cancelled", "expired"]
    progress: int
    original_filename: str
    models_used: list[str]
    total_models: int
    current_model_index: int
    files: dict[str, str]
    created_at: Optional[str] = None  # noqa: UP045 - pydantic needs runtime types on 3.10
    updated_at: Optional[str] = None  # noqa: UP045
    preset: Optional[str] = None  # noqa: UP045
    error: Optional[str] = None  # noqa: UP045


class SubmitResponse(BaseModel):
    """The answer to ``POST /separate``."""

    task_id: str
    status: str
    message: str
    models_used: list[str]
    total_models: int
    original_filename: str


class StatusNotFound(BaseModel):
    """``GET /status`` of an unknown id (HTTP 404, the reference's ``not_found`` document)."""

    task_id: str
    status: Literal["not_found"]
    progress: int
    error: str


class Health(BaseModel):
    """``GET /health``."""

    status: str
    service: str
    version: str
    models_ready: bool
    workers: int
    queued: int


class ErrorDetail(BaseModel):
    """Every error response: one line that says what to do (a 422 also lists pydantic's errors in ``errors``)."""

    detail: str
    errors: Optional[list[dict[str, Any]]] = None  # noqa: UP045 - pydantic needs runtime types on 3.10


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorDetail} for code in codes}


def _json_error(status: int, detail: str, headers: dict[str, str] | None = None) -> tuple[dict, dict]:
    body = json.dumps({"detail": detail}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http.response.start", "status": status, "headers": hdrs}, {"type": "http.response.body",
                                                                                 "body": body}


class TokenMiddleware:
    """Every path but ``/health`` needs ``Authorization: Bearer <token>`` (constant-time compare)."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in UNAUTHENTICATED_PATHS:
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if not secrets.compare_digest(given, self.expected):
            start, body = _json_error(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                                           "with the server's VSEP_API_TOKEN", {"www-authenticate": "Bearer"})
            await send(start)
            await send(body)
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuses request bodies over ``limit`` bytes with 413: by Content-Length, or while streaming."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        detail = (f"upload too large: this server accepts at most {self.limit / 2**20:.3g} MiB per request "
                  "(vsep serve --max-upload-mb)")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            for message in _json_error(413, detail):
                await send(message)
            return
        seen = 0
        exceeded = False
        started = False

        async def limited_receive() -> dict:
            nonlocal seen, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if exceeded:
                if not started:
                    started = True
                    for msg in _json_error(413, detail):
                        await send(msg)
                return
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            for message in _json_error(413, detail):
                await send(message)


def validation_detail(errors: list[dict[str, Any]]) -> str:
    """Pydantic's validation errors as one line: ``field: what is wrong (got value)``, joined with "; "."""
    lines = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "form"))
        message = str(error.get("msg", "invalid value"))
        message = message[:1].lower() + message[1:]
        given = error.get("input")
        shown = f" (got {given!r})" if isinstance(given, (str, int, float, bool)) else ""
        lines.append(f"{where or 'request'}: {message}{shown}")
    return "; ".join(lines).replace("\n", " ") or "invalid request"


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Every validation error in one ``detail`` line; pydantic's list stays in ``errors``."""
    errors = list(exc.errors())
    return JSONResponse(status_code=422, content={"detail": validation_detail(errors),
                                                  "errors": jsonable_encoder(errors)})


def unknown_field_error(name: str, known: list[str]) -> str:
    """The 400 message for a form field the server does not know, with the closest known name."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown form field {name!r}{hint} (GET /docs lists the fields of POST /separate)"


def _parse_json(name: str, value: str | None, kind: type) -> Any:
    if value is None or value == "":
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise HTTPException(400, f"{name} must be JSON ({exc.msg} at character {exc.pos})") from exc
    if not isinstance(parsed, kind):
        raise HTTPException(400, f"{name} must be a JSON {kind.__name__}")
    return parsed


def _selection(model: str | None, models: str | None, preset: str | None) -> tuple[list[str], str | None]:
    given = [n for n, v in (("preset", preset), ("models", models), ("model", model)) if v]
    if len(given) > 1:
        raise HTTPException(400, f"give only one of preset, models and model (got {', '.join(given)})")
    if preset:
        return [], preset
    if models:
        names = _parse_json("models", models, list)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise HTTPException(400, 'models must be a JSON list of model file names, e.g. ["a.ckpt", "b.onnx"]')
        return names, None
    return ([model] if model else []), None


class App:
    """The server's state: settings, store, storage, pool, sweeper and backend, and the FastAPI app."""

    def __init__(self, settings: ServerSettings, backend: Backend | None = None):
        self.settings = settings
        self.backend: Backend = backend or VsepBackend(settings.model_file_dir)
        data = Path(settings.data_dir)
        self.store = JobStore(data / "jobs.sqlite3")
        self.storage = Storage(data / "jobs")
        self.sweeper = Sweeper(self.store, self.storage, settings.retention_hours * 3600,
                               int(settings.max_storage_mb * 2**20), settings.sweep_interval_s)
        envs = None
        if settings.pin_gpus:
            envs = [{"CUDA_VISIBLE_DEVICES": str(i)} for i in range(settings.workers)]
        self.pool = WorkerPool(self.store, self.storage, self.backend.runner, settings.workers,
                               str(settings.model_file_dir) if settings.model_file_dir else None, envs,
                               on_job_finished=self.sweeper.poke, device=settings.device)
        self.lock = FileLock(str(data / "server.lock"))
        self.fields = self.backend.option_fields()
        self._submit_lock = threading.Lock()
        self.api = self._build()

    def claim_data_dir(self) -> None:
        """Lock the data directory for this process (re-entrant); another server on it is an error."""
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            raise VsepError(f"another vsep serve already uses {self.settings.data_dir}; stop it or give "
                            "this one its own --data-dir") from None

    # -- FastAPI wiring -------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
            self.claim_data_dir()
            interrupted = self.pool.start()
            if interrupted:
                log.warning("marked %d job(s) interrupted by the last shutdown as failed", len(interrupted))
            self.sweeper.start()
            try:
                yield
            finally:
                self.pool.stop()
                self.sweeper.stop()
                self.store.close()
                self.lock.release()

        api = FastAPI(title="vsep", version=server_version(), lifespan=lifespan,
                      description="Remote music source separation, compatible with audio-separator's API.")
        api.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
        endpoint = self._separate_endpoint()
        known = sorted(inspect.signature(endpoint).parameters)

        async def known_fields_only(request: Request) -> None:
            form = await request.form()  # parsed once: FastAPI reads the same cached form
            for name in form.keys():
                if name not in known:
                    raise HTTPException(400, unknown_field_error(name, known))

        api.add_api_route("/separate", endpoint, methods=["POST"], response_model=SubmitResponse,
                          dependencies=[Depends(known_fields_only)],
                          responses=_errors(400, 401, 413, 422, 503, 507), summary="Submit a separation job")
        api.add_api_route("/status/{task_id}", self.status, methods=["GET"], response_model=JobStatus,
                          responses={404: {"model": StatusNotFound}, **_errors(401)}, summary="Job status")
        api.add_api_route("/cancel/{task_id}", self.cancel, methods=["POST"], response_model=JobStatus,
                          responses=_errors(401, 404, 409), summary="Cancel a queued or running job")
        api.add_api_route("/download/{task_id}/{file_hash}", self.download, methods=["GET"],
                          response_class=FileResponse, responses={
                              200: {"content": {"application/octet-stream": {}}}, **_errors(401, 404, 410)},
                          summary="Download a result by its id (or, legacy, by its file name)")
        api.add_api_route("/models-json", self.models_json, methods=["GET"], responses=_errors(401),
                          summary="Supported models (JSON)")
        api.add_api_route("/models", self.models, methods=["GET"], response_class=PlainTextResponse,
                          responses={200: {"content": {"text/plain": {}}}, **_errors(401)},
                          summary="Supported models (table); filter_sort_by: name, filename or a stem")
        api.add_api_route("/presets", self.presets, methods=["GET"], responses=_errors(401),
                          summary="Ensemble presets")
        api.add_api_route("/health", self.health, methods=["GET"], response_model=Health, summary="Health and version")
        api.add_api_route("/", self.root, methods=["GET"], responses=_errors(401), summary="Service information")
        UI(self).install(api)

        # the last added runs first: CORS (answers preflights), then the token, then the size limit
        api.add_middleware(BodyLimitMiddleware, limit=int(self.settings.max_upload_mb * 2**20))
        if self.settings.token:
            api.add_middleware(TokenMiddleware, token=self.settings.token)
            self._document_token(api)
        api.add_middleware(PageMiddleware)  # the page and its files need no token: they hold no data
        if self.settings.cors_origins:
            api.add_middleware(CORSMiddleware, allow_origins=self.settings.cors_origins, allow_credentials=False,
                               allow_methods=["GET", "POST"], allow_headers=["Authorization"])
        return api

    def _document_token(self, api: FastAPI) -> None:
        original = api.openapi

        def openapi() -> dict[str, Any]:
            if api.openapi_schema:
                return api.openapi_schema
            schema = original()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
                "type": "http", "scheme": "bearer"}
            for path, ops in schema.get("paths", {}).items():
                if path not in UNAUTHENTICATED_PATHS:
                    for op in ops.values():
                        op["security"] = [{"bearer": []}]
            return schema

        api.openapi = openapi  # type: ignore[method-assign]

    def _separate_endpoint(self) -> Callable[..., Any]:
        """The POST /separate handler, with one typed form field per separation parameter."""
        params = [
            inspect.Parameter("file", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[UploadFile],  # noqa: UP045
                              default=File(None, description="The audio file")),
            inspect.Parameter("model", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],  # noqa: UP045
                              default=Form(None, description="One model file name", max_length=255)),
            inspect.Parameter("models", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],  # noqa: UP045
                              default=Form(None, description="JSON list of model file names (an ensemble)")),
            inspect.Parameter("preset", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],  # noqa: UP045
                              default=Form(None, description="Ensemble preset id (GET /presets)", max_length=100)),
            inspect.Parameter("chain", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],  # noqa: UP045
                              default=Form(None, description="A chain preset id or a JSON chain (docs/chains.md)",
                                           max_length=100_000)),
            inspect.Parameter("custom_output_names", inspect.Parameter.KEYWORD_ONLY,
                              annotation=Optional[str],  # noqa: UP045
                              default=Form(None, description='JSON object stem -> output name, e.g. {"Vocals": "v"}')),
            inspect.Parameter("gcs_uri", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],  # noqa: UP045
                              default=Form(None, description="Not supported here: upload the file instead",
                                           include_in_schema=False)),
        ]
        for f in self.fields:
            # Literal only for strings: form values arrive as text, and Literal[16] refuses "16"
            tp: Any = Literal[f.choices] if f.choices and f.type is str else f.type  # type: ignore[valid-type]
            extra = {"enum": list(f.choices)} if f.choices and f.type is not str else None
            params.append(inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[tp],  # noqa: UP045
                default=Form(None, description=f.help, ge=f.ge, le=f.le, gt=f.gt, pattern=f.pattern,
                             json_schema_extra=extra)))

        def separate(**form: Any) -> SubmitResponse:
            return self.submit(form)

        separate.__signature__ = inspect.Signature(params, return_annotation=SubmitResponse)  # type: ignore[attr-defined]
        separate.__doc__ = "Upload an audio file and queue its separation; poll GET /status/{task_id}."
        return separate

    # -- routes ---------------------------------------------------------------------------------
    def submit(self, form: dict[str, Any]) -> SubmitResponse:
        """Validate a submission, store its upload and queue it (the POST /separate handler)."""
        if form.get("gcs_uri"):
            raise HTTPException(400, "gcs_uri is not supported by vsep serve: upload the audio as the field 'file'")
        upload: UploadFile | None = form.pop("file", None)
        if upload is None or not getattr(upload, "filename", None):
            raise HTTPException(400, "upload the audio file as the multipart field 'file'")
        chain_text = form.pop("chain", None)
        models, preset = _selection(form.pop("model"), form.pop("models"), form.pop("preset"))
        chain = None
        try:
            if chain_text:
                if models or preset:
                    raise HTTPException(400, "give a chain or a model selection (model, models, preset), not both")
                check_chain = getattr(self.backend, "check_chain", None)
                if check_chain is None:
                    raise HTTPException(400, "this server's backend does not run chains")
                chain, used = check_chain(chain_text)
            else:
                used = self.backend.check_selection(models, preset)
        except VsepError as exc:
            raise HTTPException(400, str(exc)) from exc
        custom = _parse_json("custom_output_names", form.pop("custom_output_names"), dict)
        if custom is not None and not all(isinstance(v, str) and is_plain_name(v) for v in custom.values()):
            raise HTTPException(400, "custom_output_names values must be plain file names (no folders, no leading dot)")
        form.pop("gcs_uri", None)
        separator: dict[str, Any] = {"output_format": "flac"}
        for f in self.fields:
            value = form.get(f.name)
            if value is None:
                continue
            if f.choices and value not in f.choices:
                raise HTTPException(400, f"{f.name} must be one of {', '.join(map(str, f.choices))}, not {value!r}")
            if f.json:
                value = _parse_json(f.name, value, list)
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                    raise HTTPException(400, f"{f.name} must be a JSON list of numbers")
            if f.group:
                separator.setdefault(f.group, {})[f.key or f.name] = value
            else:
                separator[f.key or f.name] = value
        try:
            self.backend.check_options(separator)
        except VsepError as exc:
            raise HTTPException(400, str(exc)) from exc
        input_name = original = safe_filename(upload.filename)
        task_id = uuid.uuid4().hex
        full = HTTPException(503, f"the queue is full ({self.settings.max_queue} jobs waiting); try again later")
        if self.pool.queued() >= self.settings.max_queue:
            raise full
        target = self.storage.input_path(task_id, input_name)
        target.parent.mkdir(parents=True)
        try:
            with open(target, "wb") as out:
                shutil.copyfileobj(upload.file, out, 1 << 20)
        except OSError as exc:
            self.storage.remove(task_id)
            raise HTTPException(507, f"could not store the upload: {exc.strerror}") from exc
        with self._submit_lock:
            if self.pool.queued() >= self.settings.max_queue:
                self.storage.remove(task_id)
                raise full
            job = Job(task_id=task_id, status=SUBMITTED, original_filename=original, input_name=input_name,
                      models_used=used, total_models=max(1, len(used)), preset=preset,
                      options={"separator": separator, "custom_output_names": custom,
                               **({"chain": chain} if chain else {})})
            self.store.add(job)
        self.pool.submit(task_id)
        return SubmitResponse(task_id=task_id, status=SUBMITTED, message="Job queued; poll GET /status/{task_id}",
                              models_used=job.models_used, total_models=job.total_models, original_filename=original)

    def status(self, task_id: str) -> Any:
        """The job's status document; 404 with the reference's ``not_found`` document when unknown."""
        job = self.store.get(task_id)
        if job is None:
            return JSONResponse(status_code=404, content={
                "task_id": task_id, "status": "not_found", "progress": 0,
                "error": "Job not found - it may have expired or never existed"})
        return job.public()

    def cancel(self, task_id: str) -> Any:
        """Cancel a queued job at once, or a running one (its worker process is stopped)."""
        if self.store.get(task_id) is None:
            raise HTTPException(404, f"no job {task_id}")
        if not self.pool.cancel(task_id):
            job = self.store.get(task_id)
            raise HTTPException(409, f"job {task_id} has already finished ({job.status if job else 'removed'})")
        job = self.store.get(task_id)
        if job is None:
            raise HTTPException(404, f"no job {task_id}")
        return job.public()

    def download(self, task_id: str, file_hash: str) -> Any:
        """One result file of that job, by download id or (legacy) by name; nothing else is served."""
        job = self.store.get(task_id)
        if job is None:
            raise HTTPException(404, f"no job {task_id}")
        if job.status == EXPIRED:
            raise HTTPException(410, job.error or "the results of this job were removed")
        name = job.files.get(file_hash) or (file_hash if file_hash in job.files.values() else None)
        if name is None:
            raise HTTPException(404, f"job {task_id} has no file {file_hash!r}; GET /status/{task_id} lists them")
        path = self.storage.output_file(task_id, name)
        if path is None:
            raise HTTPException(404, f"the file {name!r} of job {task_id} is gone")
        ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
        return FileResponse(path, media_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
                            headers={"Content-Disposition":
                                     f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"})

    def models_json(self) -> Any:
        """``list_supported_model_files()`` of this server."""
        return self.backend.models_json()

    def models(self, filter_sort_by: Optional[str] = Query(None, max_length=100)) -> str:  # noqa: UP045
        """The model table, as ``vsep models`` prints it."""
        return self.backend.models_text(filter_sort_by)

    def presets(self) -> Any:
        """The ensemble presets."""
        return self.backend.presets()

    def health(self) -> Health:
        """Liveness, version and queue length; the one route that needs no token."""
        return Health(status="healthy", service="vsep-api", version=server_version(), models_ready=True,
                      workers=len(self.pool.slots), queued=self.pool.queued())

    def root(self) -> dict[str, Any]:
        """What this service is and its routes."""
        return {
            "name": "vsep", "service": "vsep-api", "version": server_version(),
            "running": self.store.count(PROCESSING), "queued": self.pool.queued(),
            "endpoints": {
                "POST /separate": "upload 'file' + parameters; returns task_id",
                "GET /status/{task_id}": "job status, progress and files (download id -> name)",
                "POST /cancel/{task_id}": "cancel a queued or running job",
                "GET /download/{task_id}/{file_hash}": "download a result",
                "GET /models-json": "supported models (JSON)",
                "GET /models": "supported models (table), ?filter_sort_by=",
                "GET /presets": "ensemble presets",
                "GET /health": "health and version (no token needed)",
                "GET /docs": "interactive API documentation",
            },
        }


def create_app(settings: ServerSettings, backend: Backend | None = None) -> FastAPI:
    """The FastAPI application for these settings (the workers start with the app's lifespan)."""
    return App(settings, backend).api


def serve(settings: ServerSettings, host: str = "127.0.0.1", port: int = 8000, backend: Backend | None = None,
          log_level: str = "info") -> None:
    """Run the server with uvicorn until stopped.

    SIGINT and SIGTERM (uvicorn's) and SIGHUP (added here) all shut down gracefully: the running
    job is failed with a reason, the worker processes stop, the upload spool is removed; then the
    signal is raised again, so the `vsep` command exits as the signal asks (`vsep_core.stop`).
    """
    import signal
    import tempfile
    import threading

    import uvicorn

    from vsep_core import stop

    app = App(settings, backend)
    app.claim_data_dir()
    spool = Path(settings.data_dir) / "tmp"  # uploads are spooled here, on the data disk, not in /tmp
    shutil.rmtree(spool, ignore_errors=True)
    spool.mkdir(parents=True)
    tempfile.tempdir = str(spool)
    server = uvicorn.Server(uvicorn.Config(app.api, host=host, port=port, log_level=log_level,
                                           timeout_graceful_shutdown=10))
    hangups: list[int] = []
    hup = getattr(signal, "SIGHUP", None)
    previous = None
    if hup is not None and threading.current_thread() is threading.main_thread() \
            and signal.getsignal(hup) is not signal.SIG_IGN:
        def on_hangup(signum: int, frame: Any) -> None:
            hangups.append(signum)
            server.handle_exit(signum, frame)

        previous = signal.signal(hup, on_hangup)
    try:
        server.run()
    finally:
        if previous is not None:
            signal.signal(hup, previous)  # type: ignore[arg-type]
        app.lock.release()
        shutil.rmtree(spool, ignore_errors=True)
        tempfile.tempdir = None
    if hangups:
        raise stop.Stopped(hangups[0])
