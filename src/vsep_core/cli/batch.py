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

from vsep_core.cli.app import console, err_console

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
    from vsep_core.cli.flags import arch_options

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
        if event.kind in ("retry", "worker_lost") and event.error:  # a final failure is in the one error line
            verb = {"retry": "will retry", "worker_lost": "worker lost"}[event.kind]
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
    """The summary table (the failed inputs and their errors are the one error line: :func:`failure_line`)."""
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


def _batch_options() -> list[click.Parameter]:
    """What only `batch` has: the input, the models, the pool and the resume policy."""
    from vsep_core.config import DEFAULT_MODEL_FILENAME

    o = click.Option
    return [
        click.Argument(["input_path"], metavar="INPUT_DIR_OR_LIST"),
        o(["--output_dir", "--output-dir"], required=True,
          help="where stems and the manifest go (path or fsspec URL)"),
        o(["-m", "--model_filename", "--model-filename"], default=DEFAULT_MODEL_FILENAME, show_default=True,
          help="model to separate with"),
        o(["--extra_models", "--extra-models"], multiple=True, help="more models: their stems are ensembled"),
        o(["--param"], multiple=True, help="architecture parameter PREFIX_FIELD=VALUE (repeatable)"),
        o(["--chain"], default=None, help="run this chain (YAML/JSON file or chain preset, docs/chains.md) on "
                                         "every file instead of -m"),
        o(["--ray-address", "--ray_address"], default=None,
          help="run on Ray: auto, ray://host:port, or local (start one here)"),
        o(["--workers"], type=int, default=None,
          help="number of workers (default: sized to the machine or cluster; 0 = in this process)"),
        o(["--num-gpus-per-worker", "--num_gpus_per_worker"], type=float, default=None,
          help="GPUs per Ray actor (default 1 if the cluster has GPUs); locally <1 puts several workers on a GPU"),
        o(["--num-cpus-per-worker", "--num_cpus_per_worker"], type=float, default=None,
          help="CPUs per Ray actor (default 1)"),
        o(["--max-retries", "--max_retries"], type=int, default=2, show_default=True,
          help="more attempts for a failed file, counted across runs"),
        o(["--verify"], type=click.Choice(["checksum", "size", "exists"]), default="checksum", show_default=True,
          help="how a rerun checks finished outputs"),
        o(["-d", "--debug"], is_flag=True, help="debug logging and tracebacks"),
    ]


def build_batch_command() -> click.Command:
    """The `batch` click command: its own flags, the options table's, and the installed plugins' flags."""
    from vsep_core.cli.flags import core_options

    return click.Command(
        "batch", callback=_run, params=_batch_options() + core_options(skip=("output_dir",)),
        help="Separate every audio file of a directory (recursively) or of a list file (one path or URL a line) "
             "into OUTPUT_DIR, with a pool of local worker processes or Ray actors; resumable.",
        epilog=EPILOG, context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                         "help_option_names": ["-h", "--help"]})


def _run(**kw: Any) -> None:
    from vsep_core.batch import BatchSettings, run_batch
    from vsep_core.cli.flags import settings_values
    from vsep_core.errors import SeparationError
    from vsep_core.options import Settings

    ctx = click.get_current_context()
    input_path, arch_params = arch_params_from([kw["input_path"], *ctx.args], list(kw["param"]))
    values = settings_values(kw)
    Settings.create(**values)  # one-line errors here, before any worker starts
    kwargs: dict[str, Any] = {k: v for k, v in values.items() if k != "output_dir"}
    kwargs.update(arch_params)
    model_given = ctx.get_parameter_source("model_filename") != click.core.ParameterSource.DEFAULT
    if kw["ensemble_preset"] and not model_given and not kw["extra_models"]:
        models: tuple[str, ...] = ()
    else:
        models = (kw["model_filename"], *kw["extra_models"])
    chain = None
    if kw["chain"]:
        import json

        from vsep_core.chain import load_chain

        chain = json.dumps(load_chain(kw["chain"]).to_dict())
        models = ()
    settings = BatchSettings(kwargs, models, chain)
    level = logging.DEBUG if kw["debug"] else logging.WARNING
    progress = _Progress(enabled=True)
    try:
        report = run_batch(input_path, kw["output_dir"], settings, workers=kw["workers"],
                           ray_address=kw["ray_address"], num_gpus_per_worker=kw["num_gpus_per_worker"],
                           num_cpus_per_worker=kw["num_cpus_per_worker"], max_retries=kw["max_retries"],
                           verify=kw["verify"], on_event=progress, log_level=level)
    finally:
        progress.stop()
    print_summary(report)
    sys.stdout.flush()
    if report.failures:
        failures = [(key, RuntimeError(error)) for key, error in report.failures]
        raise SeparationError(failure_line(report.failures, report.stats.total, report.manifest_path), failures)


SHOWN_FAILURES = 5


def failure_line(failures: list[tuple[str, str]], total: int, manifest: Any) -> str:
    """The one line a batch with failed files ends with: how many, each (the first few) with its reason."""
    shown = "; ".join(f"{key}: {error}" for key, error in failures[:SHOWN_FAILURES])
    more = (f"; and {len(failures) - SHOWN_FAILURES} more (see {manifest})"
            if len(failures) > SHOWN_FAILURES else "")
    return f"{len(failures)} of {total} file(s) failed: {shown}{more}; rerun the same command to retry them"
