"""``vsep serve``: run the remote separation API (needs the ``server`` extra)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import typer

from vsep_core.cli.app import app, err_console
from vsep_core.errors import UsageError, VsepError


def _fail(message: str, code: int = 1) -> VsepError:
    """The error to raise: `vsep` prints it in one line and exits with `code` (2: a usage error)."""
    return UsageError(message) if code == 2 else VsepError(message)


def _default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("vsep")) / "server"


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 for every interface "
                             "(then a token is required unless --insecure)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(None, "--workers", min=1, show_default=False,
                                help="Jobs run at once, each in its own worker process [default: one per "
                                     "NVIDIA GPU, else 1]. With one worker per GPU, each is pinned to its GPU."),
    token: str = typer.Option(None, "--token", envvar="VSEP_API_TOKEN", show_default=False,
                              help="Require 'Authorization: Bearer TOKEN' on every route but /health "
                                   "(prefer the VSEP_API_TOKEN variable: a flag shows in the process list)."),
    insecure: bool = typer.Option(False, "--insecure",
                                  help="Allow listening on a non-loopback address without a token."),
    max_upload_mb: float = typer.Option(500.0, "--max-upload-mb", min=0.001, help="Largest accepted upload (MiB)."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="VSEP_SERVER_DATA_DIR", show_default=False,
                                  help="Job database, uploads and results [default: the user data dir]/server."),
    model_file_dir: Path = typer.Option(None, "--model_file_dir", "--model-file-dir", show_default=False,
                                        help="Where models are downloaded to and loaded from "
                                             "[default: the separator's default]."),
    device: str = typer.Option(None, "--device", show_default=False,
                               help="cpu, cuda, cuda:N or mps for every job [default: the best available]."),
    retention_hours: float = typer.Option(24.0, "--retention-hours", min=0,
                                          help="Results are deleted this long after their job finished."),
    max_storage_mb: float = typer.Option(20480.0, "--max-storage-mb", min=1,
                                         help="Oldest results are deleted when all results need more (MiB)."),
    max_queue: int = typer.Option(100, "--max-queue", min=1, help="Queued jobs at most; more get HTTP 503."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", show_default=False,
                                          help="Allow browser pages from this origin (repeat for several)."),
    log_level: str = typer.Option("info", "--log_level", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the remote separation API (audio-separator compatible) for `vsep remote` and other clients."""
    missing = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise _fail("vsep serve needs the server extra (FastAPI, uvicorn, python-multipart): "
                    "pip install 'vsep-core[server]'")
    from vsep_core.remote.server import ServerSettings, gpu_count, is_loopback, serve

    token = token or None
    if not is_loopback(host) and not token and not insecure:
        raise _fail(f"refusing to listen on {host} without a token: anyone who can reach it could run jobs. "
                    "Set VSEP_API_TOKEN (or --token), or pass --insecure behind a trusted proxy", 2)
    gpus = gpu_count() if device is None or device.startswith("cuda") else 0
    if workers is None:
        workers = max(1, gpus)
    pin = gpus > 1 and workers == gpus and device in (None, "cuda") and "CUDA_VISIBLE_DEVICES" not in os.environ
    settings = ServerSettings(
        data_dir=(data_dir or _default_data_dir()).expanduser(),
        model_file_dir=model_file_dir.expanduser() if model_file_dir else None,
        device=device, token=token, workers=workers, pin_gpus=pin,
        max_upload_mb=max_upload_mb, retention_hours=retention_hours, max_storage_mb=max_storage_mb,
        max_queue=max_queue, cors_origins=list(cors_origin),
    )
    shown = f"[{host}]" if ":" in host else host
    err_console.print(f"vsep serve: http://{shown}:{port} - {workers} worker(s), data in {settings.data_dir}, "
                      f"{'token required' if token else 'NO token'}", highlight=False, soft_wrap=True)
    serve(settings, host=host, port=port, log_level=log_level.lower())
