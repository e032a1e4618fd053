"""`vsep batch`: separate a directory or a list of files with many workers, resumably.

Architecture parameters come two ways, both validated like `vsep separate`'s:

* the generated flags of the plugins installed where the command runs, e.g. ``--mdxc_overlap 4``
  (the same flags as `vsep separate --help` lists);
* ``--param PREFIX_FIELD=VALUE`` (repeatable), e.g. ``--param mdxc_overlap=4``, which also
  works for a plugin installed only on the workers (a Ray cluster); the workers check it.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import click
import typer

from vsep_core.cli.app import app, console, err_console

DEFAULT_MODEL = "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
ENSEMBLE_ALGORITHMS = ("avg_wave", "median_wave", "min_wave", "max_wave", "avg_fft", "median_fft", "min_fft",
                       "max_fft", "uvr_max_spec", "uvr_min_spec", "ensemble_wav")
PLAIN_PROGRESS_SECONDS = 10.0

EPILOG = ("Architecture parameters: the flags `vsep separate --help` lists (e.g. --mdxc_overlap 4), or "
          "--param mdxc_overlap=4. The manifest is OUT/.vsep-batch/manifest.jsonl; rerunning the same command "
          "skips finished files and retries failed ones. See docs/scale-out.md.")


def parse_param(text: str, prefixes: list[str]) -> tuple[str, str, str]:
    """``PREFIX_FIELD=VALUE`` -> (prefix, field, value); installed prefixes are matched longest first."""
    from vsep_core.errors import UsageError

    name, sep, value = text.partition("=")
    name = name.strip().lstrip("-")
    if not sep or not name:
        raise UsageError(f"--param {text!r}: write PREFIX_FIELD=VALUE, e.g. --param mdxc_overlap=4")
    for prefix in sorted(prefixes, key=len, reverse=True):
        if name.startswith(prefix + "_") and len(name) > len(prefix) + 1:
            return prefix, name[len(prefix) + 1:], value
    prefix, _, field = name.partition("_")
    if not field:
        raise UsageError(f"--param {text!r}: the name must be an architecture prefix and a field, e.g. mdxc_overlap")
    return prefix, field, value


def arch_params_from(tokens: list[str], params: list[str]) -> tuple[str, dict[str, dict[str, Any]]]:
    """(the input argument, ``{"<prefix>_params": {...}}``) from the leftover command-line tokens and --param."""
    from vsep_core import plugins
    from vsep_core.cli.separate import arch_options

    command = click.Command("batch", params=[click.Argument(["input_path"]), *arch_options()])
    with command.make_context("vsep batch", list(tokens), resilient_parsing=False) as ctx:
        values = dict(ctx.params)
        given = {name: value for name, value in values.items()
                 if "__" in name and ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT}
    out: dict[str, dict[str, Any]] = {}
    for name, value in given.items():
        prefix, field = name.split("__", 1)
        out.setdefault(f"{prefix}_params", {})[field] = value
    prefixes = [a.flag_prefix for a in plugins.architectures().values()]
    for text in params:
        prefix, field, value = parse_param(text, prefixes)
        out.setdefault(f"{prefix}_params", {})[field] = value
    return values["input_path"], out


class _Progress:
    """One Rich bar over the files (a log line every few seconds when stderr is not a terminal)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None
        self.task: Any = None
        self.last_plain = 0.0

    @staticmethod
    def detail(stats: Any) -> str:
        return (f"done {stats.done} · failed {stats.failed} · running {stats.running} · skipped {stats.skipped} · "
                f"{stats.throughput:.1f} audio-s/s")

    def __call__(self, event: Any) -> None:
        stats = event.stats
        finished = stats.done + stats.failed + stats.skipped
        if event.kind in ("retry", "failed", "worker_lost") and event.error:
            verb = {"retry": "will retry", "failed": "failed", "worker_lost": "worker lost"}[event.kind]
            message = f"{event.key}: {verb}: {event.error}"
            if self.bar is not None:
                self.bar.console.print(message, markup=False, highlight=False)
            else:
                logging.getLogger("vsep").warning(message)
        if not self.enabled:
            return
        if event.kind == "plan" and err_console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[bold]files"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[detail]}"), TimeRemainingColumn(), console=err_console)
            self.bar.start()
            self.task = self.bar.add_task("files", total=stats.total, completed=finished, detail=self.detail(stats))
        if self.bar is not None:
            self.bar.update(self.task, completed=finished, detail=self.detail(stats))
        elif event.kind in ("plan", "tick", "done", "failed") and \
                (time.monotonic() - self.last_plain > PLAIN_PROGRESS_SECONDS or event.kind == "plan"):
            self.last_plain = time.monotonic()
            logging.getLogger("vsep").info("batch: %d/%d files · %s", finished, stats.total, self.detail(stats))

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def print_summary(report: Any) -> None:
    """The summary table, then the failed inputs with their errors."""
    from rich.table import Table

    s = report.stats
    hours = s.elapsed / 3600
    table = Table(title="vsep batch", show_header=True)
    table.add_column("files")
    table.add_column("count", justify="right")
    for label, value in (("total", s.total), ("separated now", s.done), ("already done (skipped)", s.skipped),
                         ("failed", s.failed), ("retried attempts", s.retries), ("workers lost", s.workers_lost)):
        table.add_row(label, str(value))
    table.add_row("workers", str(report.workers))
    table.add_row("audio separated", f"{s.audio_seconds:.1f} s")
    table.add_row("wall time", f"{s.elapsed:.1f} s")
    table.add_row("throughput", f"{s.throughput:.2f} audio-s/s")
    if s.done and hours > 0:
        table.add_row("files/hour (this run)", f"{s.done / hours:.0f}")
        table.add_row("files/hour per busy worker", f"{s.files_per_worker_hour:.0f}")
    console.print(table)
    console.print(f"manifest: {report.manifest_path}")
    if report.failures:
        console.print(f"[bold red]{len(report.failures)} file(s) failed:[/]")
        for key, error in report.failures:
            console.print(f"  {key}: {error}", markup=False, highlight=False, soft_wrap=True)


@app.command(
    "batch",
    help="Separate every audio file of a directory (recursively) or of a list file (one path or URL a line) "
         "into OUT, with a pool of local worker processes or Ray actors; resumable.",
    epilog=EPILOG,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["-h", "--help"]},
)
def batch(
    ctx: typer.Context,
    input_path: str = typer.Argument(..., metavar="INPUT_DIR_OR_LIST",
                                     help="directory, audio file, or text file listing paths/URLs"),
    output_dir: str = typer.Option(..., "--output_dir", "--output-dir", help="where stems and the manifest go "
                                   "(path or fsspec URL)"),
    model_filename: str = typer.Option(DEFAULT_MODEL, "-m", "--model_filename", help="model to separate with"),
    extra_models: list[str] = typer.Option([], "--extra_models", help="more models: their stems are ensembled"),
    output_format: str = typer.Option("FLAC", "--output_format", help="WAV, FLAC, MP3, OGG, OPUS, M4A, AIFF, or STEM "
                                      "(one NI Stems .stem.mp4 per input: docs/dj.md)"),
    stem_layout: str | None = typer.Option(None, "--stem_layout", help="STEM: the four stem tracks (docs/dj.md)"),
    output_bitrate: str | None = typer.Option(None, "--output_bitrate", help="bitrate of lossy formats, e.g. 320k"),
    output_bit_depth: int | None = typer.Option(None, "--output_bit_depth", help="16, 24 or 32; default: the input's"),
    model_file_dir: str | None = typer.Option(None, "--model_file_dir", help="model directory (on every worker)"),
    invert_spect: bool = typer.Option(False, "--invert_spect", help="secondary stem by spectrogram inversion"),
    normalization: float = typer.Option(0.9, "--normalization", help="max peak of every stem (0-1]"),
    amplification: float = typer.Option(0.0, "--amplification", help="min peak (0 = off)"),
    single_stem: str | None = typer.Option(None, "--single_stem", help="write only this stem, e.g. Vocals"),
    sample_rate: int = typer.Option(44100, "--sample_rate", help="output sample rate"),
    use_autocast: bool = typer.Option(False, "--use_autocast", help="mixed precision on GPU"),
    use_native_fp16: bool = typer.Option(False, "--use_native_fp16", help="Roformers in float16 on GPU"),
    use_torch_compile: bool = typer.Option(False, "--use_torch_compile", help="torch.compile transformer blocks"),
    chunk_duration: float | None = typer.Option(None, "--chunk_duration", help="separate long inputs in parts"),
    ensemble_algorithm: str | None = typer.Option(None, "--ensemble_algorithm", help="how several models combine"),
    ensemble_weights: list[float] = typer.Option([], "--ensemble_weights", help="one weight per model"),
    ensemble_preset: str | None = typer.Option(None, "--ensemble_preset", help="a named ensemble (vsep presets)"),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: per worker)"),
    offline: bool = typer.Option(False, "--offline", help="never touch the network (also VSEP_OFFLINE=1)"),
    param: list[str] = typer.Option([], "--param", help="architecture parameter PREFIX_FIELD=VALUE (repeatable)"),
    ray_address: str | None = typer.Option(None, "--ray-address", "--ray_address",
                                           help="run on Ray: auto, ray://host:port, or local (start one here)"),
    workers: int | None = typer.Option(None, "--workers", help="number of workers (default: sized to the machine or "
                                       "cluster; 0 = in this process)"),
    num_gpus_per_worker: float | None = typer.Option(None, "--num-gpus-per-worker", "--num_gpus_per_worker",
                                                     help="GPUs per Ray actor (default 1 if the cluster has GPUs); "
                                                          "locally <1 puts several workers on a GPU"),
    num_cpus_per_worker: float | None = typer.Option(None, "--num-cpus-per-worker", "--num_cpus_per_worker",
                                                     help="CPUs per Ray actor (default 1)"),
    max_retries: int = typer.Option(2, "--max-retries", "--max_retries",
                                    help="more attempts for a failed file, counted across runs"),
    verify: str = typer.Option("checksum", "--verify", help="how a rerun checks finished outputs: checksum, size, "
                               "exists"),
    debug: bool = typer.Option(False, "-d", "--debug", help="debug logging and tracebacks"),
) -> None:
    """Separate many files (see the help text)."""
    from vsep_core.batch import BatchSettings, run_batch
    from vsep_core.errors import SeparationError, UsageError

    if output_bit_depth is not None and output_bit_depth not in (16, 24, 32):
        raise UsageError(f"--output_bit_depth must be 16, 24 or 32, not {output_bit_depth}")
    if ensemble_algorithm is not None and ensemble_algorithm not in ENSEMBLE_ALGORITHMS:
        raise UsageError(f"unknown --ensemble_algorithm {ensemble_algorithm!r}: choose one of "
                         f"{', '.join(ENSEMBLE_ALGORITHMS)}")
    input_path, arch_params = arch_params_from([input_path, *ctx.args], list(param))
    kwargs: dict[str, Any] = dict(
        model_file_dir=model_file_dir, output_format=output_format, output_bitrate=output_bitrate,
        normalization_threshold=normalization, amplification_threshold=amplification,
        output_single_stem=single_stem, invert_using_spec=invert_spect, sample_rate=sample_rate,
        use_autocast=use_autocast, chunk_duration=chunk_duration, ensemble_algorithm=ensemble_algorithm,
        ensemble_weights=list(ensemble_weights) or None, ensemble_preset=ensemble_preset,
        output_bit_depth=output_bit_depth, device=device, offline=offline, use_torch_compile=use_torch_compile,
        use_native_fp16=use_native_fp16, stem_layout=stem_layout, **arch_params)
    if ensemble_preset and model_filename == DEFAULT_MODEL and not extra_models:
        models: tuple[str, ...] = ()
    else:
        models = (model_filename, *extra_models)
    settings = BatchSettings(kwargs, models)
    level = logging.DEBUG if debug else logging.WARNING
    progress = _Progress(enabled=True)
    try:
        report = run_batch(input_path, output_dir, settings, workers=workers, ray_address=ray_address,
                           num_gpus_per_worker=num_gpus_per_worker, num_cpus_per_worker=num_cpus_per_worker,
                           max_retries=max_retries, verify=verify, on_event=progress, log_level=level)
    finally:
        progress.stop()
    print_summary(report)
    sys.stdout.flush()
    if report.failures:
        failures = [(key, RuntimeError(error)) for key, error in report.failures]
        raise SeparationError(f"{len(report.failures)} of {report.stats.total} file(s) failed (listed above); "
                              f"rerun the same command to retry them", failures)
