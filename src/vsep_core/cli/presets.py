"""`vsep presets`: the ensemble presets, packaged and from plugins, as a table or JSON."""

from __future__ import annotations

import json
from enum import Enum

import typer
from rich.table import Table

from vsep_core.cli.app import app, console


class ListFormat(str, Enum):
    """Output format of listing commands."""

    pretty = "pretty"
    json = "json"


def print_presets(list_format: ListFormat | str = ListFormat.pretty) -> None:
    """Print every valid preset: a Rich table, or the ``list_ensemble_presets()`` dict as JSON."""
    from vsep_core.presets import presets

    found = presets()
    if ListFormat(list_format) is ListFormat.json:
        typer.echo(json.dumps({pid: p.as_dict() for pid, p in found.items()}, indent=2, ensure_ascii=False))
        return
    table = Table(title="Ensemble presets", show_lines=True)
    table.add_column("Preset ID", style="bold cyan", no_wrap=True)
    table.add_column("Description")
    table.add_column("Models")
    table.add_column("Algorithm", no_wrap=True)
    table.add_column("Weights", no_wrap=True)
    for pid, p in found.items():
        weights = ", ".join(f"{w:g}" for w in p.weights) if p.weights else "equal"
        source = "" if p.source == "vsep_core.ensemble" else f"\n[dim](from {p.source})[/dim]"
        table.add_row(pid, f"{p.name}: {p.description}{source}", "\n".join(p.models), p.algorithm, weights)
    console.print(table)
    console.print("Use one with [bold]vsep separate --ensemble_preset ID FILE[/bold]; "
                  "--ensemble_algorithm, --ensemble_weights and --extra_models override its settings.")


@app.command("presets")
def presets_command(
    list_format: ListFormat = typer.Option(ListFormat.pretty, "--list_format", help="pretty (a table) or json."),
) -> None:
    """List the ensemble presets (models, algorithm, weights) usable with --ensemble_preset."""
    print_presets(list_format)
