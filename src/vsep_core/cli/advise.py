"""`vsep advise`: the best model for a stem within a time budget, on this machine (see vsep_core.advise)."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from vsep_core.cli.app import app, console


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _size(n: int | None, on_disk: bool) -> str:
    if n is None:
        return "unknown"
    text = f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"
    return text + (" (on disk)" if on_disk else "")


def _memory(mb: float | None) -> str:
    return "unknown" if mb is None else (f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB")


@app.command("advise")
def advise_command(
    stem: str = typer.Option(..., "--stem", help="the stem you want (vocals, instrumental, drums, bass, ...)"),
    budget: str = typer.Option(None, "--budget", help="time you allow per song (90s, 2m, 1:30); default: none"),
    per: str = typer.Option("3:30", "--per", help="length of a song (3:30, 210s, 4m)"),
    device: str = typer.Option("cpu", "--device", help="device whose calibration is used (cpu, cuda, mps)"),
    quality: str = typer.Option("balanced", "--quality", help="max | balanced | fast"),
    calibration: str = typer.Option(None, "--calibration", help="a calibration file (default: the one vsep bench "
                                                                "--quick saved for --device)"),
    model_file_dir: str = typer.Option(None, "--model_file_dir", help="model directory (default: VSEP_MODEL_DIR "
                                                                       "or the user cache)"),
    limit: int = typer.Option(15, "--limit", help="rows to show"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    verify: bool = typer.Option(False, "--verify", help="run the recommended model on 10 s of audio and print "
                                                        "estimated vs measured time"),
) -> None:
    """Recommend the best model for a stem that separates a song within your time budget on this machine."""
    from vsep_core.advise import advise, verify_recommendation

    result = advise(stem, budget=budget, per=per, device=device, quality=quality, calibration=calibration,
                    model_dir=model_file_dir, limit=limit)
    check = verify_recommendation(result, model_dir=model_file_dir, calibration=calibration) if verify else None
    if as_json:
        data = result.to_dict()
        if check is not None:
            data["verify"] = check
        typer.echo(json.dumps(data, indent=2))
        return
    budget_text = f"within {_time(result.budget_seconds)} " if result.budget_seconds else ""
    table = Table(title=f"Best {stem} models {budget_text}for a {_time(result.song_seconds)} song on {device} "
                        f"({result.quality}; SDR: {result.dataset or 'no scores'})", title_justify="left")
    for column in ("", "Model", "Arch", "SDR", "Est. time", "Peak memory", "Size", "Licence"):
        table.add_column(column, overflow="fold")
    for c in result.candidates:
        mark = "→" if c is result.recommended else ("" if c.fits else "·")
        name = c.friendly_name + (f" (preset: {len(c.models)} models)" if c.kind == "preset" else "")
        table.add_row(mark, name, c.architecture, "–" if c.sdr is None else f"{c.sdr:.2f}", _time(c.seconds),
                      _memory(c.peak_memory_mb), _size(c.size_bytes, c.on_disk), c.license or "unknown",
                      style="bold" if c is result.recommended else ("dim" if not c.fits else None))
    console.print(table)
    rec = result.recommended
    if rec is None:
        console.print("No model with a known time and score outputs this stem: nothing to recommend "
                      "(unknown times: their plugin gives no cost, or the model must be downloaded first).")
    else:
        if result.over_budget:
            console.print(f"Nothing fits {_time(result.budget_seconds)}; the fastest model is recommended.")
        console.print(f"Recommended: [bold]{rec.friendly_name}[/bold], about {_time(rec.seconds)} per song.")
        console.print(f"  {rec.command}")
    console.print(f"[dim]Times exclude downloading and loading; calibration: {result.calibration}[/dim]")
    if check is not None:
        console.print(f"Verify ({check['seconds']:g} s of audio): estimated {check['estimated_s']:.1f} s, measured "
                      f"{check['measured_s']:.1f} s ({check['error_percent']:+.0f}%)")
