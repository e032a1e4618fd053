"""``AudioSeparatorAPIClient``: the reference's remote client on httpx, for ``vsep serve`` and compatible servers.

Same class, method names, parameters and return shapes as audio-separator's client, plus:
bearer token (``token=`` or ``VSEP_API_TOKEN``), streamed uploads and downloads (no file is
held in memory), retries of idempotent calls, one exception type (:class:`RemoteAPIError`)
carrying the server's one-line ``detail``, and :meth:`cancel_job`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from vsep_core.errors import UsageError, VsepError
from vsep_core.remote.files import safe_filename

RETRY_STATUSES = (502, 503, 504)


class RemoteAPIError(VsepError):
    """A request to the server failed: an HTTP error status (``status_code``) or no answer (None)."""

    def __init__(self, message: str, status_code: int | None = None, detail: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


def _client_version() -> str:
    from vsep_core import __version__

    return __version__


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


class AudioSeparatorAPIClient:
    """Client of a remote separation API (``vsep serve`` or audio-separator's servers).

    :param api_url: base URL, e.g. ``http://gpu-box:8000`` (a trailing slash is ignored).
    :param logger: where progress and problems are logged (default ``logging.getLogger("vsep.remote")``).
    :param token: bearer token; default the environment variable ``VSEP_API_TOKEN``.
    :param retries: how often an idempotent call (status, download, lists) is retried after a
        connection error, a timeout or a 502/503/504; a submission is retried only when the
        connection could not be opened (the server never saw it).
    :param timeout: seconds for one upload (``separate_audio``); other calls use 60 s.
    :param transport: an ``httpx`` transport (tests use ``httpx.MockTransport``).
    """

    def __init__(self, api_url: str, logger: logging.Logger | None = None, *, token: str | None = None,
                 retries: int = 3, timeout: float = 1800.0, transport: httpx.BaseTransport | None = None):
        self.api_url = api_url.rstrip("/")
        self.logger = logger or logging.getLogger("vsep.remote")
        self.retries = retries
        self.timeout = timeout
        token = token if token is not None else os.environ.get("VSEP_API_TOKEN")
        headers = {"User-Agent": f"vsep/{_client_version()}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.session = httpx.Client(
            headers=headers, timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True,
            transport=transport or httpx.HTTPTransport(retries=retries),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.session.close()

    def __enter__(self) -> AudioSeparatorAPIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.api_url}{path}"

    @staticmethod
    def _raise_for_status(response: httpx.Response) -> None:
        if response.is_success:
            return
        try:
            detail = response.json().get("detail")
        except Exception:
            detail = None
        if not isinstance(detail, str):
            detail = response.text[:300] or response.reason_phrase
        raise RemoteAPIError(f"{response.request.method} {response.request.url.path} failed with HTTP "
                             f"{response.status_code}: {detail}", response.status_code, detail)

    def _send(self, method: str, path: str, *, idempotent: bool = True, stream: bool = False,
              **kwargs: Any) -> httpx.Response:
        attempts = self.retries + 1 if idempotent else 1
        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                request = self.session.build_request(method, self._url(path), **kwargs)
                response = self.session.send(request, stream=stream)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if attempt == attempts:
                    raise RemoteAPIError(f"{method} {self._url(path)}: no answer from the server ({exc!r}); "
                                         "check --api_url / VSEP_API_URL and that `vsep serve` runs") from exc
                self.logger.warning("%s %s: %s; retrying in %.1f s", method, path, exc, delay)
            else:
                if response.status_code not in RETRY_STATUSES or attempt == attempts:
                    return response
                response.close()
                self.logger.warning("%s %s: HTTP %d; retrying in %.1f s", method, path, response.status_code, delay)
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        self._raise_for_status(response)
        return response.json()

    # -- the reference's API ----------------------------------------------------------------------
    def separate_audio(self, file_path: str | os.PathLike[str] | None = None, model: str | None = None,
                       models: list[str] | None = None, preset: str | None = None, gcs_uri: str | None = None,
                       *, output_format: str | None = "flac", output_bitrate: str | None = None,
                       normalization_threshold: float | None = None, amplification_threshold: float | None = None,
                       output_single_stem: str | None = None, invert_using_spec: bool | None = None,
                       sample_rate: int | None = None, use_soundfile: bool | None = None,
                       use_autocast: bool | None = None, custom_output_names: dict[str, str] | None = None,
                       **params: Any) -> dict[str, Any]:
        """Upload ``file_path`` and queue its separation; returns ``{"task_id", "status", ...}``.

        Model selection: ``preset``, else ``models`` (an ensemble), else ``model``, else the
        server's default model. Parameters left None are not sent (the server's defaults apply);
        architecture parameters go in ``params`` with their CLI names (``mdx_segment_size=256``,
        ``mdxc_overlap=4``, ``vr_enable_tta=True``, ...).
        """
        if (file_path is None) == (gcs_uri is None):
            raise UsageError("Must provide either file_path or gcs_uri, not both")  # the reference's words
        data: dict[str, str] = {}
        if preset:
            data["preset"] = preset
        elif models:
            data["models"] = json.dumps(list(models))
        elif model:
            data["model"] = model
        fields = dict(output_format=output_format, output_bitrate=output_bitrate,
                      normalization_threshold=normalization_threshold, amplification_threshold=amplification_threshold,
                      output_single_stem=output_single_stem, invert_using_spec=invert_using_spec,
                      sample_rate=sample_rate, use_soundfile=use_soundfile, use_autocast=use_autocast,
                      custom_output_names=custom_output_names or None, gcs_uri=gcs_uri, **params)
        data.update({k: _form_value(v) for k, v in fields.items() if v is not None})
        if file_path is None:
            return self._post_separate(data, {"file": ("", b"")})
        path = Path(file_path)
        if not path.is_file():
            raise FileNotFoundError(f"Audio file not found: {file_path}")
        with open(path, "rb") as handle:
            return self._post_separate(data, {"file": (path.name, handle)})

    def _post_separate(self, data: dict[str, str], files: dict[str, Any]) -> dict[str, Any]:
        response = self._send("POST", "/separate", idempotent=False, data=data, files=files,
                              timeout=httpx.Timeout(self.timeout, connect=10.0))
        self._raise_for_status(response)
        return response.json()

    def separate_audio_and_wait(self, file_path: str | os.PathLike[str] | None = None, model: str | None = None,
                                models: list[str] | None = None, preset: str | None = None, timeout: float = 600,
                                poll_interval: float = 10, download: bool = True,
                                output_dir: str | os.PathLike[str] | None = None, **params: Any) -> dict[str, Any]:
        """Submit, poll ``/status`` until done, then (by default) download every result.

        Returns ``{"task_id", "status": "completed", "files", "downloaded_files"}``, or
        ``{"task_id", "status": "error", "error", "files": []}`` when the job failed (or was
        cancelled), or ``{"task_id", "status": "timeout", "error", "files": []}`` after ``timeout`` s.
        """
        what = f"preset:{preset}" if preset else (models or ([model] if model else ["default model"]))
        self.logger.info("Submitting separation job for '%s' with %s", file_path, what)
        task_id = self.separate_audio(file_path, model, models, preset, **params)["task_id"]
        self.logger.info("Job submitted! Task ID: %s", task_id)
        try:
            return self._wait_for_job(task_id, timeout, poll_interval, download, output_dir)
        except KeyboardInterrupt:  # stopped (Ctrl-C, SIGTERM): the job is of no use any more, stop it there too
            self._cancel_quietly(task_id)
            raise

    def _cancel_quietly(self, task_id: str) -> None:
        try:
            self.session.post(self._url(f"/cancel/{quote(task_id, safe='')}"), timeout=5)
        except Exception:  # noqa: BLE001 - best effort: the server may be gone, or not a vsep server
            pass

    def _wait_for_job(self, task_id: str, timeout: float, poll_interval: float, download: bool,
                      output_dir: str | os.PathLike[str] | None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last_progress = None
        while time.monotonic() < deadline:
            try:
                status = self.get_job_status(task_id)
            except RemoteAPIError as exc:
                if exc.status_code is not None and exc.status_code < 500:
                    raise
                self.logger.warning("Error polling status: %s", exc)
                time.sleep(poll_interval)
                continue
            state = status.get("status")
            if status.get("progress") != last_progress:
                last_progress = status.get("progress")
                info = f"Progress: {last_progress}%"
                if "current_model_index" in status and "total_models" in status:
                    info += f" (Model {status['current_model_index'] + 1}/{status['total_models']})"
                self.logger.info(info)
            if state == "completed":
                files = status.get("files") or {}
                result: dict[str, Any] = {"task_id": task_id, "status": "completed", "files": files}
                if download:
                    result["downloaded_files"] = self._download_all(task_id, files, output_dir)
                return result
            if state in ("error", "cancelled", "expired", "not_found"):
                error = status.get("error") or state
                self.logger.error("Job failed: %s", error)
                return {"task_id": task_id, "status": "error", "error": error, "files": []}
            time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))
        self.logger.error("Job polling timed out after %s seconds", timeout)
        return {"task_id": task_id, "status": "timeout", "error": f"Job polling timed out after {timeout} seconds",
                "files": []}

    def _download_all(self, task_id: str, files: dict[str, str] | list[str],
                      output_dir: str | os.PathLike[str] | None) -> list[str]:
        out = Path(output_dir) if output_dir else Path(".")
        items = files.items() if isinstance(files, dict) else [(None, name) for name in files]
        downloaded = []
        for file_hash, filename in items:
            target = out / safe_filename(filename, default=f"{task_id}-output")
            try:
                if file_hash is None:
                    downloaded.append(self.download_file(task_id, filename, target))
                else:
                    downloaded.append(self.download_file_by_hash(task_id, file_hash, filename, target))
            except (RemoteAPIError, OSError) as exc:
                self.logger.error("Failed to download %s: %s (server version %s)", filename, exc,
                                  self._server_version_for_log())
        return downloaded

    def get_job_status(self, task_id: str) -> dict[str, Any]:
        """``GET /status/{task_id}``; an unknown id gives ``{"status": "not_found", ...}`` (not an exception)."""
        response = self._send("GET", f"/status/{quote(task_id, safe='')}")
        if response.status_code == 404:
            try:
                doc = response.json()
            except ValueError:
                doc = None
            if isinstance(doc, dict) and doc.get("status") == "not_found":
                return doc
        self._raise_for_status(response)
        return response.json()

    def cancel_job(self, task_id: str) -> dict[str, Any]:
        """``POST /cancel/{task_id}`` (vsep servers): cancel a queued or running job; returns its status."""
        return self._json("POST", f"/cancel/{quote(task_id, safe='')}")

    def _stream_to(self, path: str, target: str | os.PathLike[str]) -> str:
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                with self._streamed("GET", path) as response, self._atomic(target) as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
                return str(target)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                if attempt == attempts:
                    raise RemoteAPIError(f"GET {path}: download interrupted ({exc!r})") from exc
                self.logger.warning("GET %s: %s; retrying", path, exc)
                time.sleep(0.5 * attempt)
        raise AssertionError("unreachable")

    @contextmanager
    def _streamed(self, method: str, path: str) -> Iterator[httpx.Response]:
        response = self._send(method, path, stream=True)
        try:
            if not response.is_success:
                response.read()
                self._raise_for_status(response)
            yield response
        finally:
            response.close()

    @staticmethod
    @contextmanager
    def _atomic(target: Path) -> Iterator[Any]:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.part"
        try:
            with open(tmp, "xb") as out:  # "x": never follow or clobber; mode from the umask
                yield out
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def download_file_by_hash(self, task_id: str, file_hash: str, filename: str,
                              output_path: str | os.PathLike[str] | None = None) -> str:
        """Download a result by its id (from ``files`` of the status) to ``output_path`` or ``filename``."""
        target = output_path or safe_filename(filename, default="output")
        return self._stream_to(f"/download/{quote(task_id, safe='')}/{quote(file_hash, safe='')}", target)

    def download_file(self, task_id: str, filename: str, output_path: str | os.PathLike[str] | None = None) -> str:
        """Download a result by its file name (the legacy route) to ``output_path`` or ``filename``."""
        target = output_path or safe_filename(filename, default="output")
        return self._stream_to(f"/download/{quote(task_id, safe='')}/{quote(filename, safe='')}", target)

    def list_models(self, format_type: str = "pretty", filter_by: str | None = None) -> Any:
        """``format_type="json"``: ``GET /models-json``; otherwise ``{"text": <the model table>}``."""
        if format_type == "json":
            return self._json("GET", "/models-json")
        response = self._send("GET", "/models", params={"filter_sort_by": filter_by} if filter_by else None)
        self._raise_for_status(response)
        return {"text": response.text}

    def list_presets(self) -> Any:
        """``GET /presets``."""
        return self._json("GET", "/presets")

    def get_server_version(self) -> str:
        """The server's version from ``/health`` (``"unknown"`` when its answer names none).

        As the reference, a failed health check is logged and raised: :class:`RemoteAPIError`
        when ``/health`` cannot be reached, answers an error status or is not JSON.
        """
        try:
            health = self._json("GET", "/health")
        except ValueError as exc:
            self.logger.error("Health check of %s failed: the answer is not JSON (%s)", self.api_url, exc)
            raise RemoteAPIError(f"{self.api_url}/health did not answer JSON: {exc}") from exc
        except RemoteAPIError as exc:
            self.logger.error("Health check of %s failed: %s", self.api_url, exc)
            raise
        return str(health.get("version", "unknown")) if isinstance(health, dict) else "unknown"

    def _server_version_for_log(self) -> str:
        try:
            return self.get_server_version()
        except RemoteAPIError:
            return "unknown"
