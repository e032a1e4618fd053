"""`vsep download MODEL...`: fetch models (and check their parameters) without separating anything."""

from __future__ import annotations

from pathlib import Path

import typer

from vsep_core.cli.app import app, console


@app.command("download")
def download_command(
    models: list[str] = typer.Argument(..., metavar="MODEL...", help="Model filenames (see `vsep models`)."),
    model_file_dir: Path | None = typer.Option(None, "--model_file_dir", help="Model directory (default: "
                                               "VSEP_MODEL_DIR, AUDIO_SEPARATOR_MODEL_DIR or the user cache)."),
    offline: bool = typer.Option(False, "--offline", help="Never touch the network; fail if a file is missing."),
) -> None:
    """Download models (resumable, verified, in parallel) into the model directory."""
    from vsep_core import config
    from vsep_core.modelinfo import prepare_models

    model_dir = Path(model_file_dir) if model_file_dir else config.default_model_dir()
    for record, files in prepare_models(models, model_dir, offline=offline):
        console.print(f"[bold]{record.filename}[/bold] ({record.architecture}, {record.friendly_name}): "
                      f"{len(files)} file(s) ready in {model_dir}")
        if record.vip:
            console.print("  VIP model, made for UVR's subscribers; consider supporting Anjok07: "
                          "https://patreon.com/uvr")
