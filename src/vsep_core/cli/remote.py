"""``vsep remote``: separate on a remote server (``vsep serve`` or audio-separator's API).

Mirrors ``audio-separator-remote``: ``separate FILE...``, ``status ID``, ``models``,
``download ID NAME...``, plus ``cancel ID``. The server is ``--api_url`` or ``VSEP_API_URL``;
the token is ``--token`` or ``VSEP_API_TOKEN``. Unlike the reference, a failure exits 1.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click
import typer

from vsep_core.cli.app import app, console, err_console
from vsep_core.errors import UsageError, VsepError

remote_app = typer.Typer(
    name="remote", no_args_is_help=True, add_completion=False,
    help="Separate on a remote vsep server (vsep serve) or an audio-separator API.",
)
app.add_typer(remote_app, name="remote")

log = logging.getLogger("vsep.remote")

class _State:
    api_url: str | None = None
    token: str | None = None


def _fail(message: str, code: int = 1) -> VsepError:
    """The error to raise: `vsep` prints it in one line and exits with `code` (2: a usage error)."""
    return UsageError(message) if code == 2 else VsepError(message)


def _error(message: str) -> None:
    from rich.markup import escape

    err_console.print(f"[red]Error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def _client() -> Any:
    from vsep_core.remote.api_client import AudioSeparatorAPIClient

    if not _State.api_url:
        raise _fail("no server given: pass --api_url http://HOST:8000 or set VSEP_API_URL")
    return AudioSeparatorAPIClient(_State.api_url, log, token=_State.token)


def _setup_logging(debug: bool, log_level: str) -> None:
    level = logging.DEBUG if debug else getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise _fail(f"unknown log level {log_level!r}: use debug, info, warning or error", 2)
    if not log.handlers:
        from rich.logging import RichHandler

        log.addHandler(RichHandler(console=err_console, show_path=False, show_time=False))
    log.setLevel(level)
    log.propagate = False
    logging.getLogger("httpx").setLevel(logging.DEBUG if debug else logging.WARNING)


@remote_app.callback(invoke_without_command=True)
def remote_main(
    ctx: typer.Context,
    api_url: str = typer.Option(None, "--api_url", "--api-url", envvar=["VSEP_API_URL", "AUDIO_SEPARATOR_API_URL"],
                                show_default=False, help="Server URL, e.g. http://gpu-box:8000 [env VSEP_API_URL]."),
    token: str = typer.Option(None, "--token", envvar="VSEP_API_TOKEN", show_default=False,
                              help="Bearer token of the server [env VSEP_API_TOKEN]."),
    version: bool = typer.Option(False, "-v", "--version", help="Print the client and server versions."),
    debug: bool = typer.Option(False, "-d", "--debug", help="Debug logging."),
    log_level: str = typer.Option("info", "--log_level", "--log-level", help="Log level."),
) -> None:
    """Talk to a remote separation server."""
    _setup_logging(debug, log_level)
    _State.api_url = api_url.rstrip("/") if api_url else None
    _State.token = token or None
    if version:
        from vsep_core.remote.api_client import RemoteAPIError, _client_version

        typer.echo(f"Client version: {_client_version()}")
        if _State.api_url:
            with _client() as client:
                try:
                    typer.echo(f"Server version: {client.get_server_version()}")
                except RemoteAPIError as exc:
                    typer.echo(f"Server version: unknown ({exc})")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        console.print(ctx.get_help())
        raise typer.Exit(1)


def _parse_param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise _fail(f"--param wants NAME=VALUE (e.g. mdxc_overlap=4), got {text!r}", 2)
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


def _separate(audio_files: tuple[str, ...], model: str | None, models: tuple[str, ...], preset: str | None,
              timeout: float, poll_interval: float, output_dir: str, custom_output_names: str | None,
              param: tuple[str, ...], options: dict[str, Any]) -> None:
    """Separate FILES on the server, wait, and download the results (to --output_dir, default here)."""
    chosen = [n for n, v in (("--preset", preset), ("--models", models), ("--model", model)) if v]
    if len(chosen) > 1:
        raise _fail(f"give only one of --preset, --model and --models (got {' and '.join(chosen)})", 2)
    names = [m for item in models for m in item.split(",") if m] or None
    custom = None
    if custom_output_names:
        try:
            custom = json.loads(custom_output_names)
        except json.JSONDecodeError as exc:
            raise _fail(f"--custom_output_names must be JSON like '{{\"Vocals\": \"v\"}}' ({exc.msg})", 2) from exc
    params = dict(options)
    params.update(dict(_parse_param(p) for p in param))
    from vsep_core.remote.api_client import RemoteAPIError

    failures: list[str] = []
    single = len(audio_files) == 1

    def failed(message: str) -> None:  # each failure printed once: as it happens, or as the one final line
        failures.append(message)
        if not single:
            _error(message)

    with _client() as client:
        for path in map(Path, audio_files):
            if not path.is_file():
                failed(f"{path}: no such file")
                continue
            log.info("Processing '%s'...", path)
            try:
                result = client.separate_audio_and_wait(
                    str(path), model=model, models=names, preset=preset, timeout=timeout,
                    poll_interval=poll_interval, download=True, output_dir=Path(output_dir),
                    custom_output_names=custom, **params)
            except RemoteAPIError as exc:
                if exc.status_code in (None, 401, 403):  # no server, or not allowed: every other file fails alike
                    raise
                failed(f"{path}: {exc}")
                continue
            if result["status"] != "completed":
                failed(f"{path}: {result.get('error')}")
                continue
            for file in result.get("downloaded_files", []):
                typer.echo(file)
            if len(result.get("downloaded_files", [])) != len(result["files"]):
                failed(f"{path}: only {len(result.get('downloaded_files', []))} of {len(result['files'])} "
                       "result files could be downloaded")
    if failures:
        raise VsepError(failures[0] if single else
                        f"{len(failures)} of {len(audio_files)} file(s) failed (each listed above)")


def build_remote_separate_command() -> click.Command:
    """``remote separate``: its own flags, the server-side options of the table and the local plugins' flags.

    Only flags given on the command line are sent, so the server's defaults apply to the rest;
    a parameter of a plugin installed only on the server goes with ``--param NAME=VALUE``.
    """
    from vsep_core.cli.flags import arch_options, arch_params_given, core_options, settings_values
    from vsep_core.options import public_fields

    o = click.Option
    local_only = tuple(f.name for f in public_fields() if not f.metadata.get("server"))
    own = [
        click.Argument(["audio_files"], nargs=-1, required=True),
        o(["-m", "--model", "--model_filename"], default=None, help="One model."),
        o(["--models"], multiple=True, help="Several models, ensembled (repeat, or comma-separate)."),
        o(["-p", "--preset", "--ensemble_preset"], default=None,
          help="Ensemble preset (vsep remote models --presets lists them)."),
        o(["--timeout"], type=float, default=600, show_default=True, help="Seconds to wait for each job."),
        o(["--poll_interval"], type=float, default=10, show_default=True, help="Seconds between status checks."),
        o(["--output_dir"], default=".", show_default=True, help="Where to download the results."),
        o(["--custom_output_names"], default=None, help='JSON stem -> name, e.g. \'{"Vocals": "v"}\'.'),
        o(["--param"], multiple=True, help="Any other server parameter as NAME=VALUE (repeat), e.g. a plugin's "
                                           "mdxc_overlap=4."),
    ]
    table = core_options(skip=local_only + ("output_dir",))

    def run(**kw: Any) -> None:
        ctx = click.get_current_context()
        options = {k: v for k, v in settings_values(kw).items()
                   if k != "output_dir" and ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
        for group, values in arch_params_given(ctx).items():
            prefix = group[: -len("_params")]
            options.update({f"{prefix}_{k}": v for k, v in values.items()})
        _separate(kw["audio_files"], kw["model"], kw["models"], kw["preset"], kw["timeout"], kw["poll_interval"],
                  kw["output_dir"], kw["custom_output_names"], kw["param"], options)

    return click.Command("separate", callback=run, params=own + table + arch_options(),
                         help=_separate.__doc__, context_settings={"help_option_names": ["-h", "--help"]})


@remote_app.command("status")
def status_command(task_id: str = typer.Argument(..., help="The job's task id.")) -> None:
    """Show a job's status, progress, models and result files (or its error)."""
    with _client() as client:
        status = client.get_job_status(task_id)
    if status.get("status") == "not_found":
        raise _fail(f"no job {task_id} on this server")
    typer.echo(f"Status: {status.get('status')}  Progress: {status.get('progress', 0)}%")
    if status.get("original_filename"):
        typer.echo(f"Original file: {status['original_filename']}")
    if status.get("models_used"):
        index, total = status.get("current_model_index", 0), status.get("total_models", 1)
        typer.echo(f"Models: {', '.join(status['models_used'])} (model {index + 1}/{total})")
    if status.get("error"):
        typer.echo(f"Error: {status['error']}")
    files = status.get("files") or {}
    for name in files.values() if isinstance(files, dict) else files:
        typer.echo(f"  {name}")
    if status.get("status") == "error":
        raise VsepError(f"job {task_id} failed: {status.get('error')}")


@remote_app.command("models")
def models_command(
    format: str = typer.Option("pretty", "--format", help="pretty or json."),
    filter: str = typer.Option(None, "--filter", show_default=False, help="Filter/sort: name, filename or a stem."),
    presets: bool = typer.Option(False, "--presets", help="List the server's ensemble presets instead."),
) -> None:
    """List the server's models (or presets)."""
    if format not in ("pretty", "json"):
        raise _fail(f"--format must be pretty or json, not {format!r}", 2)
    with _client() as client:
        if presets:
            console.print_json(data=client.list_presets())
        elif format == "json":
            console.print_json(data=client.list_models("json"))
        else:
            typer.echo(client.list_models("pretty", filter)["text"], nl=False)


@remote_app.command("download")
def download_command(
    task_id: str = typer.Argument(..., help="The job's task id."),
    filenames: list[str] = typer.Argument(None, help="Result file names (or download ids); default all.",
                                          show_default=False),
    output_dir: Path = typer.Option(Path("."), "--output_dir", help="Where to write them."),
) -> None:
    """Download result files of a finished job."""
    from vsep_core.remote.files import safe_filename

    with _client() as client:
        status = client.get_job_status(task_id)
        files = status.get("files") or {}
        by_name = {v: k for k, v in files.items()} if isinstance(files, dict) else {}
        wanted = filenames or (list(files.values()) if isinstance(files, dict) else list(files))
        if not wanted:
            raise _fail(f"job {task_id} has no files (status: {status.get('status')})")
        for name in wanted:
            if name in by_name:
                path = client.download_file_by_hash(task_id, by_name[name], name,
                             output_dir / safe_filename(name))
            elif isinstance(files, dict) and name in files:
                path = client.download_file_by_hash(task_id, name, files[name],
                             output_dir / safe_filename(files[name]))
            else:
                path = client.download_file(task_id, name, output_dir / safe_filename(name))
            typer.echo(path)


@remote_app.command("cancel")
def cancel_command(task_id: str = typer.Argument(..., help="The job's task id.")) -> None:
    """Cancel a queued or running job."""
    with _client() as client:
        status = client.cancel_job(task_id)
    typer.echo(f"Status: {status.get('status')}")
