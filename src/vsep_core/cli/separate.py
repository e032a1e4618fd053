"""`vsep separate`: the reference CLI's flags, plus flags generated from every installed plugin's params.

Built with click directly (Typer builds from static signatures; these flags depend on
which plugins are installed) and added to the Typer app's click group by `main()`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from vsep_core.params import base_type, field_types

DEFAULT_MODEL = "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
ENSEMBLE_ALGORITHMS = ("avg_wave", "median_wave", "min_wave", "max_wave", "avg_fft", "median_fft", "min_fft",
                       "max_fft", "uvr_max_spec", "uvr_min_spec", "ensemble_wav")
MULTI_VALUE_OPTIONS = ("--extra_models", "--ensemble_weights", "--models")


def _common_options() -> list[click.Parameter]:
    o = click.Option
    return [
        click.Argument(["audio_files"], nargs=-1, type=click.Path()),
        o(["-m", "--model_filename"], default=DEFAULT_MODEL, show_default=True, help="model to separate with"),
        o(["--extra_models"], multiple=True, help="more models: their stems are ensembled"),
        o(["--output_format"], default="FLAC", show_default=True, help="WAV, FLAC, MP3, OGG, OPUS, M4A or AIFF"),
        o(["--output_bitrate"], default=None, help="bitrate of lossy formats, e.g. 320k"),
        o(["--output_bit_depth"], type=click.Choice(["16", "24", "32"]), default=None,
          help="WAV/FLAC/AIFF bit depth (32 = float WAV); default: the input's"),
        o(["--output_dir"], default=None, help="where stems are written (created); default: current directory"),
        o(["--model_file_dir"], default=None, help="model directory; default: VSEP_MODEL_DIR or the user cache"),
        o(["--invert_spect"], is_flag=True, help="derive the secondary stem by spectrogram inversion"),
        o(["--normalization"], type=float, default=0.9, show_default=True, help="max peak of every stem (0-1]"),
        o(["--amplification"], type=float, default=0.0, show_default=True,
          help="min peak: quieter stems are amplified to it (0 = off)"),
        o(["--single_stem"], default=None, help="write only this stem (case-insensitive), e.g. Vocals"),
        o(["--sample_rate"], type=int, default=44100, show_default=True, help="output sample rate"),
        o(["--use_soundfile"], is_flag=True, help="accepted for compatibility (vsep always writes in-process)"),
        o(["--use_autocast"], is_flag=True, help="torch autocast: fp16 on GPU, bf16 on CPUs with native bf16"),
        o(["--use_native_fp16"], is_flag=True, help="run Roformers in float16 on GPU"),
        o(["--use_torch_compile"], is_flag=True, help="MDXC: run the network through torch.compile (opt-in)"),
        o(["--use_directml"], is_flag=True, help="use DirectML on Windows when available"),
        o(["--chunk_duration"], type=float, default=None,
          help="separate inputs longer than this many seconds in crossfaded parts (bounded memory)"),
        o(["--ensemble_algorithm"], default=None,
          help=f"how stems of several models are combined: {', '.join(ENSEMBLE_ALGORITHMS)} or a plugin's "
               "(default avg_wave)"),
        o(["--ensemble_weights"], type=float, multiple=True, help="one weight per model (avg_wave, avg_fft)"),
        o(["--ensemble_preset"], default=None, help="a named ensemble (see vsep presets)"),
        o(["--custom_output_names"], default=None, help='JSON mapping stem -> file name, e.g. {"Vocals": "lead"}'),
        o(["--device"], default=None, help="cpu, cuda, cuda:N or mps (default: the best available)"),
        o(["--offline"], is_flag=True, help="never touch the network (also VSEP_OFFLINE=1)"),
        o(["-d", "--debug"], is_flag=True, help="debug logging and tracebacks"),
        o(["--log_level"], type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
          default="info", show_default=True, help="log level"),
    ]


def arch_options() -> list[click.Option]:
    """One flag per field of every installed architecture's params dataclass."""
    from vsep_core import plugins

    options = []
    for arch in plugins.architectures().values():
        hints = field_types(arch.params)
        for f in dataclasses.fields(arch.params):
            options.append(_option_for(arch.flag_prefix, f, hints[f.name]))
    return options


def _option_for(prefix: str, f: dataclasses.Field, hint: Any) -> click.Option:
    flag = f"--{prefix}_{f.name}"
    dest = f"{prefix}__{f.name}"
    typ, optional = base_type(hint)
    meta = f.metadata
    help_text = meta.get("help", "")
    if typ is bool and f.default is False:
        return click.Option([flag, dest], is_flag=True, default=False, help=help_text)
    if meta.get("choices"):
        ctype: Any = click.Choice([str(c) for c in meta["choices"]])
    elif typ is bool:
        ctype = click.BOOL
    elif typ in (int, float) and (meta.get("min") is not None or meta.get("max") is not None):
        rng = click.IntRange if typ is int else click.FloatRange
        ctype = rng(meta.get("min"), meta.get("max"))
    elif typ in (int, float):
        ctype = click.INT if typ is int else click.FLOAT
    else:
        ctype = click.STRING
    default = f.default if f.default is not dataclasses.MISSING else None
    suffix = " [default: from the model]" if optional and default is None else ""
    return click.Option([flag, dest], type=ctype, default=default, show_default=default is not None,
                        help=help_text + suffix)


def build_separate_command() -> click.Command:
    """The `separate` click command with the static and the generated flags."""
    return click.Command("separate", callback=_run, params=_common_options() + arch_options(),
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
    custom = None
    if kw["custom_output_names"]:
        try:
            custom = json.loads(kw["custom_output_names"])
        except json.JSONDecodeError as exc:
            raise UsageError(f"--custom_output_names is not valid JSON: {exc.msg}") from exc
        if not isinstance(custom, dict) or not all(isinstance(v, str) for v in custom.values()):
            raise UsageError('--custom_output_names must be a JSON object of stem -> name, e.g. {"Vocals": "lead"}')
    arch_params: dict[str, dict[str, Any]] = {}
    for name, value in kw.items():
        if "__" in name and ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
            prefix, field = name.split("__", 1)
            arch_params.setdefault(f"{prefix}_params", {})[field] = value
    from vsep_core.cli.progress import progress_factory
    from vsep_core.separator import Separator

    sep = Separator(
        log_level=level, model_file_dir=kw["model_file_dir"], output_dir=kw["output_dir"],
        output_format=kw["output_format"], output_bitrate=kw["output_bitrate"],
        normalization_threshold=kw["normalization"], amplification_threshold=kw["amplification"],
        output_single_stem=kw["single_stem"], invert_using_spec=kw["invert_spect"], sample_rate=kw["sample_rate"],
        use_soundfile=kw["use_soundfile"], use_autocast=kw["use_autocast"], use_directml=kw["use_directml"],
        chunk_duration=kw["chunk_duration"], ensemble_algorithm=kw["ensemble_algorithm"],
        ensemble_weights=list(kw["ensemble_weights"]) or None, ensemble_preset=kw["ensemble_preset"],
        output_bit_depth=int(kw["output_bit_depth"]) if kw["output_bit_depth"] else None, device=kw["device"],
        offline=kw["offline"], use_torch_compile=kw["use_torch_compile"], use_native_fp16=kw["use_native_fp16"],
        **arch_params,
    )
    sep.progress_factory = progress_factory()
    models = [kw["model_filename"], *kw["extra_models"]]
    model_given = ctx.get_parameter_source("model_filename") != click.core.ParameterSource.DEFAULT
    if kw["ensemble_preset"] and not model_given and not kw["extra_models"]:
        sep.load_model()
    else:
        sep.load_model(models if len(models) > 1 else models[0])
    if kw["single_stem"] and sep.model_instance is not None and len(sep.model_filenames) <= 1:
        from vsep_core.pipeline import select_stems

        select_stems(list(sep.model_instance.stems), kw["single_stem"])  # a miss: one line, before any work
    from vsep_core.errors import SeparationError

    try:
        outputs = sep.separate(list(kw["audio_files"]), custom_output_names=custom)
    except SeparationError as exc:  # some inputs failed: still list what the others wrote
        for path in exc.successful_files:
            click.echo(path)
        raise
    if not outputs:
        hint = f": --single_stem {kw['single_stem']!r} matches no stem" if kw["single_stem"] else ""
        raise UsageError(f"separation produced no output files{hint}")
    for path in outputs:
        click.echo(path)
    sys.stdout.flush()
