"""The `vsep` command: subcommands, plus the reference's flat form mapped onto them.

    vsep separate song.flac -m MODEL          (subcommand form)
    vsep song.flac -m MODEL                   (reference form -> separate)
    vsep --list_models / --list_presets / --env_info / --download_model_only -m M
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

COMMAND_MODULES = ("info", "models", "download", "presets", "serve", "ui", "remote", "export_onnx")
FLAT_ACTIONS = {"-l": "models", "--list_models": "models", "--list_presets": "presets", "-e": "env",
                "--env_info": "env", "--download_model_only": "download"}
LIST_FLAGS = {"--list_filter", "--list_limit", "--list_format"}


def _version() -> str:
    from vsep_core import __version__

    return __version__


def _split_multi_values(argv: list[str]) -> list[str]:
    """`--extra_models a b` (argparse nargs='+') -> `--extra_models a --extra_models b` for click."""
    from vsep_core.cli.separate import MULTI_VALUE_OPTIONS

    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        out.append(tok)
        i += 1
        if tok in MULTI_VALUE_OPTIONS:
            first = True
            while i < len(argv) and not (argv[i].startswith("-") and not _is_number(argv[i])):
                if not first:
                    out.append(tok)
                out.append(argv[i])
                first = False
                i += 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _take_values(argv: list[str], names: set[str]) -> list[str]:
    """The given options (with their values) out of argv, in order."""
    kept = []
    for i, tok in enumerate(argv):
        name = tok.split("=", 1)[0]
        if name in names:
            kept.append(tok)
            if "=" not in tok and i + 1 < len(argv):
                kept.append(argv[i + 1])
    return kept


def map_flat_form(argv: list[str], commands: set[str]) -> list[str]:
    """Rewrite the reference's flat CLI form into vsep's subcommand form."""
    if not argv or argv[0] in commands or argv[0] in ("-h", "--help"):
        return argv
    for flag, command in FLAT_ACTIONS.items():
        if flag in argv:
            if command == "models":
                return ["models", *_take_values(argv, LIST_FLAGS)]
            if command == "presets":
                return ["presets", *_take_values(argv, {"--list_format"})]
            if command == "env":
                return ["env", *_take_values(argv, {"--model_file_dir"})]
            from vsep_core.config import DEFAULT_MODEL_FILENAME

            models = _take_values(argv, {"-m", "--model_filename"})[1::2] or [DEFAULT_MODEL_FILENAME]
            extras = []
            if "--extra_models" in argv:
                for tok in argv[argv.index("--extra_models") + 1:]:
                    if tok.startswith("-"):
                        break
                    extras.append(tok)
            return ["download", *models, *extras, *_take_values(argv, {"--model_file_dir"}),
                    *(["--offline"] if "--offline" in argv else [])]
    return ["separate", *argv]


def build_cli() -> click.Group:
    """The click group: every Typer command module that is present, plus `separate`."""
    import typer

    from vsep_core.cli.app import app

    for name in COMMAND_MODULES:
        try:
            importlib.import_module(f"vsep_core.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"vsep_core.cli.{name}":
                raise
    group = typer.main.get_command(app)
    from vsep_core.cli.batch import build_batch_command
    from vsep_core.cli.separate import build_separate_command

    group.add_command(build_separate_command())
    group.add_command(build_batch_command())
    from vsep_core.cli.chain import build_cache_command, build_chain_command

    group.add_command(build_chain_command())
    group.add_command(build_cache_command())
    if "remote" in group.commands:
        from vsep_core.cli.remote import build_remote_separate_command

        group.commands["remote"].add_command(build_remote_separate_command())
    return group


def _click_errors(name: str) -> tuple[type, ...]:
    """The click exception class `name`, from click and from the copies that Typer vendors or defines."""
    found = [getattr(click.exceptions, name)]
    for module in ("typer._click.exceptions", "typer.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vsep` console script.

    Without `argv` it reads ``sys.argv`` and ends with ``SystemExit(status)``, as a console
    entry point (and the reference's ``audio_separator.utils.cli.main()``) does; with `argv`
    it returns the status (for tests and embedding).
    """
    status = run(argv)
    if argv is None:
        raise SystemExit(status)
    return status


def run(argv: list[str] | None = None) -> int:
    """Run the `vsep` command line `argv` (default ``sys.argv[1:]``) and return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--version"], ["-v"]):
        print(f"vsep {_version()}")
        return 0
    debug = "--debug" in argv or "-d" in argv
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # ONNX Runtime's telemetry warns where HOME is read-only
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from vsep_core import stop
    from vsep_core.errors import VsepError

    try:
        with stop.handled():  # SIGTERM and SIGHUP stop a command the way Ctrl-C does
            group = build_cli()
            argv = _split_multi_values(map_flat_form(argv, set(group.commands)))
            # make_context/invoke rather than main(): main turns a KeyboardInterrupt into a silent exit 130
            with group.make_context("vsep", argv) as ctx:
                return group.invoke(ctx) or 0
    except _click_errors("Exit") as exc:
        return exc.exit_code
    except _click_errors("Abort") as exc:  # click turns a KeyboardInterrupt (a stop signal) into Abort
        cause = exc.__cause__ if isinstance(exc.__cause__, KeyboardInterrupt) else KeyboardInterrupt()
        print(stop.stop_message(cause), file=sys.stderr)
        return stop.exit_status(cause)
    except _click_errors("ClickException") as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except VsepError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(stop.stop_message(exc), file=sys.stderr)
        return stop.exit_status(exc)
    except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen fault: one line, the traceback with --debug
        if debug:
            import traceback

            traceback.print_exc()
        hint = "" if debug else " (run again with --debug for the traceback, and please report it)"
        print(f"error: unexpected {type(exc).__name__}: {one_line(str(exc))}{hint}", file=sys.stderr)
        return 1


def one_line(message: str) -> str:
    """A message on one line: its lines joined with "; " (an error is printed as exactly one line)."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def _entry() -> None:
    sys.exit(main())
