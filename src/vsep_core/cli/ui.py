"""``vsep ui``: ``vsep serve`` on this machine only, and the web page opened in the browser."""

from __future__ import annotations

import socket
import threading
import time
import webbrowser
from pathlib import Path

import typer

from vsep_core.cli.app import app, err_console
from vsep_core.cli.serve import serve_command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_when_ready(url: str, token: str | None, timeout: float = 120.0) -> threading.Thread:
    """Open ``url`` in the browser as soon as the server's ``/health`` answers (in a daemon thread).

    The token travels in the URL fragment, which the browser never sends over the network;
    the page keeps it for the session and removes it from the address bar.
    """
    import httpx

    def wait_and_open() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            err_console.print(f"vsep ui: the server did not answer at {url}; open it yourself once it runs")
            return
        page = f"{url}/#token={token}" if token else f"{url}/"
        err_console.print(f"vsep ui: the page is at {url}/", highlight=False)
        webbrowser.open(page)

    thread = threading.Thread(target=wait_and_open, name="vsep-ui-browser", daemon=True)
    thread.start()
    return thread


@app.command("ui")
def ui_command(
    port: int = typer.Option(0, "--port", min=0, max=65535, help="TCP port (0, the default: a free one)."),
    token: str = typer.Option(None, "--token", envvar="VSEP_API_TOKEN", show_default=False,
                              help="Require this token; the page is opened with it."),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="VSEP_SERVER_DATA_DIR", show_default=False,
                                  help="Job database, uploads and results (the same default as vsep serve)."),
    model_file_dir: Path = typer.Option(None, "--model_file_dir", "--model-file-dir", show_default=False,
                                        help="Where models are downloaded to and loaded from."),
    device: str = typer.Option(None, "--device", show_default=False, help="cpu, cuda, cuda:N or mps."),
    max_upload_mb: float = typer.Option(500.0, "--max-upload-mb", min=0.001, help="Largest accepted upload (MiB)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Only print the page's address."),
) -> None:
    """Open vsep's web page: drop songs, watch them separate, play the stems, export a mix."""
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    if no_browser:
        err_console.print(f"vsep ui: the page is at {url}/", highlight=False)
    else:
        open_when_ready(url, token or None)
    serve_command(host="127.0.0.1", port=port, workers=None, token=token, insecure=False,
                  max_upload_mb=max_upload_mb, data_dir=data_dir, model_file_dir=model_file_dir, device=device,
                  retention_hours=24.0, max_storage_mb=20480.0, max_queue=100, cors_origin=[], log_level="warning")
