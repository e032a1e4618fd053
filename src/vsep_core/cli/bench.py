"""`vsep bench --quick`: calibrate this machine for `vsep advise` (see vsep_core.calibration)."""

from __future__ import annotations

import json
import time

import typer

from vsep_core.cli.app import app, console


@app.command("bench")
def bench_command(
    quick: bool = typer.Option(True, "--quick/--full", help="the short calibration (under 30 s)"),
    device: str = typer.Option("cpu", "--device", help="device to calibrate (cpu, cuda, cuda:N, mps)"),
    clock: str = typer.Option("wall", "--clock", help="wall (an idle machine) or cpu (a machine busy with other "
                                                      "work: CPU seconds / threads)"),
    output: str = typer.Option(None, "--output", help="write the calibration here instead of the user cache dir"),
    as_json: bool = typer.Option(False, "--json", help="print the calibration as JSON"),
) -> None:
    """Measure matmul, convolution and memory-bound throughput per precision, and run each installed family's
    small network, so that `vsep advise` can estimate times on this machine."""
    from vsep_core.calibration import CLOCKS, calibrate, save_calibration
    from vsep_core.errors import UsageError

    if clock not in CLOCKS:
        raise UsageError(f"--clock must be wall or cpu (got {clock!r})")
    started = time.perf_counter()
    cal = calibrate(device, families=True, scale=1.0 if quick else 2.0, clock=clock,
                    log=None if as_json else console.print)
    path = save_calibration(cal, output)
    if as_json:
        typer.echo(json.dumps(cal.to_dict(), indent=2))
        return
    console.print(f"calibration saved to {path} ({time.perf_counter() - started:.0f} s)")
