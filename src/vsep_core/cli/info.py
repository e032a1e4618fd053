"""`vsep env` and `vsep plugins`: what this machine and this installation offer."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from vsep_core.cli.app import app, console


@app.command("env")
def env_command(
    model_file_dir: str = typer.Option(None, "--model_file_dir", help="model directory to report"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Print Python, OS, CPU, RAM, torch/ONNX Runtime versions, devices, codecs and the model directory."""
    from vsep_core import config, envinfo

    info = envinfo.system_info(str(model_file_dir or config.default_model_dir()))
    if as_json:
        console.print_json(json.dumps(info))
        return
    table = Table(title="vsep environment", show_header=False)
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        table.add_row(key, "-" if value is None else str(value))
    console.print(table)


@app.command("plugins")
def plugins_command(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List installed plugins, their versions, the architectures each adds, and those that failed to load."""
    from vsep_core.plugins import plugin_infos

    infos = plugin_infos()
    if as_json:
        console.print_json(json.dumps([i.__dict__ for i in infos]))
        return
    table = Table(title="vsep plugins")
    for col in ("plugin", "package", "version", "architectures", "status"):
        table.add_column(col)
    for i in infos:
        status = f"[red]failed: {i.error}[/red]" if i.error else "ok"
        table.add_row(i.name, i.distribution, i.version, ", ".join(i.architectures) or "-", status)
    console.print(table)
