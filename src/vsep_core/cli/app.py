"""The Typer application every CLI module registers its commands on, and shared CLI helpers."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="vsep",
    help="Split music into stems with MDX-Net, VR, Demucs and MDXC/Roformer models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

console = Console()
err_console = Console(stderr=True)
