"""`vsep separate`: its own flags (inputs, models, names, logging), the options table's flags and the
flags generated from every installed plugin's params (:mod:`vsep_core.cli.flags`).

Built with click directly (Typer builds from static signatures; these flags depend on
which plugins are installed) and added to the Typer app's click group by `main()`.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from vsep_core.cli.flags import arch_options, arch_params_given, core_options, settings_values

MULTI_VALUE_OPTIONS = ("--extra_models", "--ensemble_weights", "--models")


def _command_options() -> list[click.Parameter]:
    """What only `separate` has: the inputs, the models, names, logging."""
    from vsep_core.config import DEFAULT_MODEL_FILENAME

    o = click.Option
    return [
        click.Argument(["audio_files"], nargs=-1, type=click.Path()),
        o(["-m", "--model_filename", "--model-filename"], default=DEFAULT_MODEL_FILENAME, show_default=True,
          help="model to separate with"),
        o(["--extra_models", "--extra-models"], multiple=True, help="more models: their stems are ensembled"),
        o(["--custom_output_names", "--custom-output-names"], default=None,
          help='JSON mapping stem -> file name, e.g. {"Vocals": "lead"}'),
        o(["-d", "--debug"], is_flag=True, help="debug logging and tracebacks"),
        o(["--log_level", "--log-level"], type=click.Choice(["debug", "info", "warning", "error"],
                                                             case_sensitive=False),
          default="info", show_default=True, help="log level"),
    ]


def parse_custom_output_names(text: str | None) -> dict[str, str] | None:
    """``--custom_output_names`` JSON -> ``{stem: name}`` (a one-line error when it is not that)."""
    from vsep_core.errors import UsageError

    if not text:
        return None
    try:
        custom = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--custom_output_names is not valid JSON: {exc.msg}") from exc
    if not isinstance(custom, dict) or not all(isinstance(v, str) for v in custom.values()):
        raise UsageError('--custom_output_names must be a JSON object of stem -> name, e.g. {"Vocals": "lead"}')
    return custom


def build_separate_command() -> click.Command:
    """The `separate` click command with the static and the generated flags."""
    return click.Command("separate", callback=_run, params=_command_options() + core_options() + arch_options(),
                         help="Separate audio files (or directories, searched recursively) into stems.",
                         context_settings={"help_option_names": ["-h", "--help"]})


def _run(**kw: Any) -> None:
    from vsep_core.errors import UsageError

    ctx = click.get_current_context()
    level = logging.DEBUG if kw["debug"] else getattr(logging, kw["log_level"].upper())
    if not kw["audio_files"]:
        raise UsageError("no input files given: vsep separate SONG.flac [-m MODEL] (see vsep separate --help)")
    missing = [f for f in kw["audio_files"] if not Path(f).exists()]
    if len(missing) == len(kw["audio_files"]):  # nothing to do; with some inputs there, those are separated
        from vsep_core.errors import InputNotFoundError

        raise InputNotFoundError(f"input not found: {', '.join(missing)}")
    custom = parse_custom_output_names(kw["custom_output_names"])
    from vsep_core.cli.progress import progress_factory
    from vsep_core.separator import Separator

    sep = Separator(log_level=level, **settings_values(kw), **arch_params_given(ctx))
    sep.progress_factory = progress_factory()
    models = [kw["model_filename"], *kw["extra_models"]]
    model_given = ctx.get_parameter_source("model_filename") != click.core.ParameterSource.DEFAULT
    if kw["ensemble_preset"] and not model_given and not kw["extra_models"]:
        sep.load_model()
    else:
        sep.load_model(models if len(models) > 1 else models[0])
    if kw["output_single_stem"] and sep.model_instance is not None and len(sep.model_filenames) <= 1:
        from vsep_core.pipeline import select_stems

        select_stems(list(sep.model_instance.stems), kw["output_single_stem"])  # a miss: one line, before any work
    from vsep_core.errors import SeparationError

    try:
        outputs = sep.separate(list(kw["audio_files"]), custom_output_names=custom)
    except SeparationError as exc:  # some inputs failed: still list what the others wrote
        for path in exc.successful_files:
            click.echo(path)
        raise
    if not outputs:
        hint = f": --single_stem {kw['output_single_stem']!r} matches no stem" if kw["output_single_stem"] else ""
        raise UsageError(f"separation produced no output files{hint}")
    for path in outputs:
        click.echo(path)
    sys.stdout.flush()
