"""`vsep download MODEL...`: fetch models (and check their parameters) without separating anything."""

from __future__ import annotations

from pathlib import Path

import typer

from vsep_core.cli.app import app, console


def download_models(models: list[str], model_dir: Path, *, offline: bool = False,
                    show_progress: bool = True) -> list[tuple[str, dict[str, Path]]]:
    """Resolve, download and check the parameters of each model; ``[(filename, {file: path})]``."""
    from vsep_core import catalog, download, modeldata

    done = []
    for name in models:
        record = catalog.resolve_model(name, model_dir)
        files = download.ensure_model_files(record, model_dir, offline=offline, show_progress=show_progress)
        modeldata.model_data_for(record, files, model_dir)  # fails now, not at separation time, if unknown
        done.append((record.filename, files))
        console.print(f"[bold]{record.filename}[/bold] ({record.architecture}, {record.friendly_name}): "
                      f"{len(files)} file(s) ready in {model_dir}")
        if record.vip:
            console.print("  VIP model, made for UVR's subscribers; consider supporting Anjok07: "
                          "https://patreon.com/uvr")
    return done


@app.command("download")
def download_command(
    models: list[str] = typer.Argument(..., metavar="MODEL...", help="Model filenames (see `vsep models`)."),
    model_file_dir: Path | None = typer.Option(None, "--model_file_dir", help="Model directory (default: "
                                               "VSEP_MODEL_DIR, AUDIO_SEPARATOR_MODEL_DIR or the user cache)."),
    offline: bool = typer.Option(False, "--offline", help="Never touch the network; fail if a file is missing."),
) -> None:
    """Download models (resumable, verified, in parallel) into the model directory."""
    from vsep_core import config

    download_models(models, Path(model_file_dir) if model_file_dir else config.default_model_dir(), offline=offline)
