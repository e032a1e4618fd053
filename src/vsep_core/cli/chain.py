"""`vsep chain run|show|list` (chains of models and stem operations, docs/chains.md) and `vsep cache info|clear`
(the stem cache chains keep their intermediate stems in)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

CACHE_OPTIONS = [
    click.Option(["--no-cache", "--no_cache", "no_cache"], is_flag=True,
                 help="keep intermediate stems in a temporary folder: nothing read from or left in the cache"),
    click.Option(["--cache_dir", "--cache-dir", "cache_dir"], default=None,
                 help="stem cache folder (default: VSEP_CACHE_DIR or the user cache dir)"),
]


def _cache(cache_dir: str | None) -> Any:
    from vsep_core import config
    from vsep_core.stemcache import StemCache

    return StemCache(Path(cache_dir) if cache_dir else config.stem_cache_dir(), config.stem_cache_bytes())


def _run(**kw: Any) -> None:
    from vsep_core.chain import load_chain
    from vsep_core.chain_run import ChainRunner
    from vsep_core.cli.flags import arch_params_given, settings_values
    from vsep_core.cli.progress import progress_factory
    from vsep_core.cli.separate import parse_custom_output_names
    from vsep_core.errors import InputNotFoundError, SeparationError, UsageError, VsepError
    from vsep_core.options import Settings

    ctx = click.get_current_context()
    logging.getLogger("vsep").setLevel(logging.DEBUG if kw["debug"] else logging.INFO)
    if not kw["audio_files"]:
        raise UsageError("no input files given: vsep chain run CHAIN SONG.flac (see vsep chain run --help)")
    missing = [f for f in kw["audio_files"] if not Path(f).exists()]
    if missing:
        raise InputNotFoundError(f"input not found: {', '.join(missing)}")
    chain = load_chain(kw["chain"])
    arch = {k[: -len("_params")]: v for k, v in arch_params_given(ctx).items()}
    settings = Settings.create(**settings_values(kw), arch_params=arch)
    runner = ChainRunner(settings, cache=None if kw["no_cache"] else _cache(kw["cache_dir"]),
                         progress_factory=progress_factory())
    custom = parse_custom_output_names(kw["custom_output_names"])
    from vsep_core import audio as audio_io

    inputs = audio_io.find_audio_files(list(kw["audio_files"]))
    runner.check(chain)  # a bad chain: one line, before any input is read
    written: list[Path] = []
    failures: list[tuple[str, BaseException]] = []
    for path in inputs:
        try:
            written.extend(runner.run(chain, path, settings.output_dir or ".", custom))
        except VsepError as exc:
            if len(inputs) == 1:
                raise
            logging.getLogger("vsep").error("%s: %s", path, exc)
            failures.append((str(path), exc))
    for path in written:
        click.echo(path)
    sys.stdout.flush()
    if failures:
        raise SeparationError.of(failures, [str(p) for p in written], len(inputs))


def show_text(chain: Any, runner: Any | None = None, song: Path | None = None) -> str:
    """The chain as an indented tree (forks show as several children), each step's model or operation and,
    with a song, whether its stems are cached for it."""
    from vsep_core.chain import SONG

    status = runner.status(chain, song) if runner is not None and song is not None else {}
    needed = set(chain.needed())
    lines = [f"chain {chain.name}" + (f": {chain.description}" if chain.description else "")]
    if song is not None:
        lines.append(f"input {song}")

    def mark(name: str) -> str:
        if name not in needed:
            return "  (not needed by any output)"
        if name not in status:
            return ""
        return {True: "  [cached]", False: "  [will run]", None: "  [will run; model not downloaded]"}[status[name]]

    shown: set[str] = set()

    def walk(name: str, depth: int) -> None:
        step = chain.steps[name]
        again = name in shown
        lines.append(f"{'  ' * depth}└─ {name}: {step.describe()}" + (" (see above)" if again else mark(name)))
        if again:
            return
        shown.add(name)
        for child in chain.children(name):
            walk(child, depth + 1)

    lines.append(SONG)
    for name in chain.order():
        if any(r.step == SONG for r in chain.steps[name].inputs) or not chain.steps[name].inputs:
            walk(name, 1)
    lines.append("outputs")
    for out_name, ref in chain.outputs.items():
        lines.append(f"  {out_name} <- {ref}")
    return "\n".join(lines)


def _show(**kw: Any) -> None:
    from vsep_core.chain import load_chain
    from vsep_core.chain_run import ChainRunner
    from vsep_core.options import Settings

    chain = load_chain(kw["chain"])
    runner = None
    if kw["audio_file"]:
        from vsep_core import audio as audio_io
        from vsep_core.cli.flags import settings_values

        audio_io.probe(kw["audio_file"])
        settings = Settings.create(**settings_values(kw))
        runner = ChainRunner(settings, cache=None if kw["no_cache"] else _cache(kw["cache_dir"]))
        runner.check(chain)
    click.echo(show_text(chain, runner, Path(kw["audio_file"]) if kw["audio_file"] else None))


def _list(**kw: Any) -> None:
    from vsep_core.chain import chain_presets, parse_chain

    for pid, doc in chain_presets().items():
        chain = parse_chain(doc)
        click.echo(f"{pid}: {chain.description}")


def build_chain_command() -> click.Group:
    """`vsep chain`: run, show, list."""
    from vsep_core.cli.flags import arch_options, core_options

    help_opts = {"help_option_names": ["-h", "--help"]}
    group = click.Group("chain", help="Chains: models on the song or on earlier steps' stems, combined stems, "
                                      "every step cached (docs/chains.md).", context_settings=help_opts)
    run_params = [
        click.Argument(["chain"]), click.Argument(["audio_files"], nargs=-1, type=click.Path()),
        click.Option(["--custom_output_names", "--custom-output-names"], default=None,
                     help='JSON mapping output -> file name, e.g. {"lead_dry": "lead"}'),
        click.Option(["-d", "--debug"], is_flag=True, help="debug logging and tracebacks"),
        *CACHE_OPTIONS]
    skip = ("ensemble_algorithm", "ensemble_weights", "ensemble_preset", "output_single_stem", "stem_layout")
    group.add_command(click.Command(
        "run", callback=_run, params=run_params + core_options(skip=skip) + arch_options(), context_settings=help_opts,
        help="Run CHAIN (a YAML/JSON file or a chain preset) on each input; steps already in the stem cache for "
             "this input and these settings are not run again. The options apply to every step; a step's params "
             "override them."))
    show_params = [click.Argument(["chain"]), click.Argument(["audio_file"], required=False), *CACHE_OPTIONS]
    group.add_command(click.Command(
        "show", callback=_show, params=show_params + core_options(skip=skip) + arch_options(),
        context_settings=help_opts,
        help="Print CHAIN as a tree of steps; with AUDIO_FILE (and the options you would run it with), which "
             "steps are cached for it."))
    group.add_command(click.Command("list", callback=_list, help="List the chain presets.",
                                    context_settings=help_opts))
    return group


def _info(**kw: Any) -> None:
    cache = _cache(kw["cache_dir"])
    entries = cache.entries()
    total = sum(e.size for e in entries)
    click.echo(f"folder:  {cache.root}")
    click.echo(f"entries: {len(entries)}")
    click.echo(f"size:    {total / 1e9:.3f} GB of {cache.max_bytes / 1e9:.3f} GB (VSEP_CACHE_SIZE_GB)")
    for entry in reversed(entries):  # most recently used first
        what = entry.meta.get("what", "")
        click.echo(f"  {entry.key[:12]}  {entry.size / 1e6:9.1f} MB  {entry.meta.get('input', '')} · "
                   f"{entry.meta.get('chain', '')}.{entry.meta.get('step', '')}: {what}")


def _clear(**kw: Any) -> None:
    cache = _cache(kw["cache_dir"])
    click.echo(f"removed {cache.clear()} entries from {cache.root}")


def build_cache_command() -> click.Group:
    """`vsep cache`: info, clear."""
    help_opts = {"help_option_names": ["-h", "--help"]}
    group = click.Group("cache", help="The stem cache of chains (VSEP_CACHE_DIR, VSEP_CACHE_SIZE_GB).",
                        context_settings=help_opts)
    option = CACHE_OPTIONS[1]
    group.add_command(click.Command("info", callback=_info, params=[option], context_settings=help_opts,
                                    help="Where the cache is, its size and cap, and its entries."))
    group.add_command(click.Command("clear", callback=_clear, params=[option], context_settings=help_opts,
                                    help="Remove every cached stem."))
    return group
