"""`vsep models` (the catalogue as a table or JSON) and `vsep models info MODEL` (from vsep_core.modelinfo)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from vsep_core.cli.app import app, console

models_app = typer.Typer(
    help="List the models vsep can use (`vsep models info MODEL` for one model).",
    invoke_without_command=True,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(models_app, name="models")


class ListFormat(str, Enum):
    """Output format of listing commands."""

    pretty = "pretty"
    json = "json"


def print_models(list_filter: str | None = None, list_limit: int | None = None,
                 list_format: ListFormat | str = ListFormat.pretty) -> None:
    """Print the catalogue: a Rich table (friendly name, architecture, filename, stems with SDR, licence) or JSON.

    ``list_filter`` "name"/"filename" sorts; a stem keeps the models that output it, best SDR
    first; another word matches names and filenames.
    """
    from vsep_core import catalog

    records = catalog.select_models(list_filter, list_limit)
    if ListFormat(list_format) is ListFormat.json:
        typer.echo(json.dumps(catalog.list_supported_model_files(records), indent=2, ensure_ascii=False))
        return
    if not records:
        console.print(f"No model matches {list_filter!r}." if list_filter else
                      "No models: no architecture plugin is installed (see `vsep plugins` and docs/models.md).")
        return
    table = Table(title=f"vsep models ({len(records)})", title_justify="left")
    table.add_column("Friendly name", overflow="fold")
    table.add_column("Arch", no_wrap=True)
    table.add_column("Filename (-m)", style="bold cyan", overflow="fold")
    table.add_column("Stems (SDR dB, * = target)", overflow="fold")
    table.add_column("Licence", overflow="fold")
    for record in records:
        stems = ", ".join(catalog.simplified_entry(record)["Stems"])
        licence = record.license or "-"
        if record.provenance:
            licence += f" ({record.provenance})"
        table.add_row(record.friendly_name, record.architecture, record.filename, stems, licence)
    console.print(table)
    dataset = catalog.ranking_dataset(records, list_filter) if list_filter not in (None, "name", "filename") \
        else None
    if dataset:
        console.print(f"Ranked by {list_filter} SDR on {dataset}; models scored only on other data sets follow.")
    console.print("Details: vsep models info FILENAME. Use one: vsep separate -m FILENAME song.flac")


@models_app.callback(invoke_without_command=True)
def models_command(
    ctx: typer.Context,
    list_filter: str | None = typer.Option(
        None, "--list_filter", help="name or filename: sort by it; a stem (vocals, drums, ...): only models that "
        "output it, best SDR first; another word: models whose name or filename contains it."),
    list_limit: int | None = typer.Option(None, "--list_limit", min=0, help="Show at most this many models."),
    list_format: ListFormat = typer.Option(ListFormat.pretty, "--list_format", help="pretty (a table) or json."),
) -> None:
    """List the models of the installed plugins, with their stems, measured SDR and licence."""
    if ctx.invoked_subcommand is None:
        print_models(list_filter, list_limit, list_format)


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@models_app.command("info")
def info_command(
    model: str = typer.Argument(..., help="Model filename (as in `vsep models`), one of its files, or its name."),
    model_file_dir: Path | None = typer.Option(None, "--model_file_dir", help="Model directory (default: "
                                               "VSEP_MODEL_DIR, AUDIO_SEPARATOR_MODEL_DIR or the user cache)."),
    list_format: ListFormat = typer.Option(ListFormat.pretty, "--list_format", help="pretty or json."),
) -> None:
    """Show one model: files and URLs, sizes, whether it is on disk, scores and parameters."""
    from vsep_core import config
    from vsep_core.modelinfo import model_info

    model_dir = Path(model_file_dir) if model_file_dir else config.default_model_dir()
    info = model_info(model, model_dir)
    if ListFormat(list_format) is ListFormat.json:
        typer.echo(json.dumps(info, indent=2, ensure_ascii=False, default=list))
        return
    console.print(f"[bold]{info['friendly_name']}[/bold]")
    console.print(f"  filename      {info['filename']}")
    console.print(f"  architecture  {info['architecture']} (plugin {info['package']})")
    if info["license"] or info["provenance"]:
        console.print(f"  licence       {info['license'] or 'unknown'}"
                      + (f"; {info['provenance']}" if info["provenance"] else ""))
    if info["vip"]:
        console.print("  VIP model     made for UVR's subscribers; consider supporting Anjok07: https://patreon.com/uvr")
    if info["stems"]:
        target = f" (target: {info['target_stem']})" if info["target_stem"] else ""
        console.print(f"  stems         {', '.join(info['stems'])}{target}")
    console.print(f"  model dir     {info['model_dir']}")
    if info["files"]:
        table = Table(title="Files", title_justify="left")
        table.add_column("File", overflow="fold")
        table.add_column("On disk", no_wrap=True)
        table.add_column("Size", no_wrap=True)
        table.add_column("Source (in order)", overflow="fold")
        for f in info["files"]:
            disk = f"yes, {_size(f['bytes_on_disk'])}" if f["on_disk"] else "no"
            source = "\n".join(f["urls"] + (["packaged copy (last resort, or offline)"] if f["packaged"] else []))
            table.add_row(f["name"], disk, _size(f["size"]), source)
        console.print(table)
    metrics = [(stem, v) for stem, v in info["scores"].items() if isinstance(v, dict)]
    if metrics:
        table = Table(title="Scores (dB; MUSDB18-HQ medians unless the stem names another data set)",
                      title_justify="left")
        for column in ("Stem", "SDR", "SIR", "SAR", "ISR"):
            table.add_column(column, justify="left" if column == "Stem" else "right")
        for stem, v in metrics:
            table.add_row(stem, *(f"{v[m]:.2f}" if v.get(m) is not None else "-" for m in ("SDR", "SIR", "SAR", "ISR")))
        console.print(table)
    if info["parameters"] is not None:
        console.print("[bold]Parameters[/bold]" + (f" (from {info['config']})" if info["config"] else " (by hash)"))
        console.print_json(json.dumps(info["parameters"], default=list))
    elif info["parameters_note"]:
        console.print(f"Parameters: {info['parameters_note']}")
