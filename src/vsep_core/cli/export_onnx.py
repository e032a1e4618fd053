"""`vsep export-onnx MODEL`: write a model's network as an ONNX file (see vsep_core.onnx_export)."""

from __future__ import annotations

from pathlib import Path

import typer

from vsep_core.cli.app import app, console


@app.command("export-onnx")
def export_onnx_command(
    model: str = typer.Argument(..., metavar="MODEL", help="A model file (e.g. 2_HP-UVR.pth) or a catalogued name."),
    output: Path | None = typer.Option(None, "--output", "-o", help="ONNX file to write (default: MODEL with .onnx)."),
    model_file_dir: Path | None = typer.Option(None, "--model_file_dir", help="Model directory for catalogued "
                                               "names (default: VSEP_MODEL_DIR or the user cache)."),
    offline: bool = typer.Option(False, "--offline", help="Never touch the network; fail if a file is missing."),
) -> None:
    """Export a model's network to ONNX (VR .pth models), to run it on ONNX Runtime."""
    from vsep_core import config
    from vsep_core.onnx_export import export_model

    model_dir = Path(model_file_dir) if model_file_dir else config.default_model_dir()
    written = export_model(model, output, model_dir, offline=offline)
    console.print(f"wrote [bold]{written}[/bold] ({written.stat().st_size / 1e6:.1f} MB); separate with "
                  f"`vsep separate INPUT -m {written.name} --model_file_dir {written.parent}`")
