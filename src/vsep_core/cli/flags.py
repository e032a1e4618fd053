"""Click flags generated from the options table and the plugins' params (declared once, used by
`separate`, `batch` and `remote separate`).

Each option gets the reference's snake_case flag (``--single_stem``) plus a kebab-case alias
(``--single-stem``); each plugin field ``overlap`` of prefix ``mdxc`` gets ``--mdxc_overlap``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from vsep_core.options import choices_of, cli_name, public_fields
from vsep_core.params import base_type, field_types

ARCH_DEST_SEPARATOR = "__"


def _spellings(name: str) -> list[str]:
    flags = [f"--{name}"]
    if "_" in name:
        flags.append(f"--{name.replace('_', '-')}")
    return flags


def _click_type(typ: type, meta: dict, choices: tuple | None) -> Any:
    if choices:
        return click.Choice([str(c) for c in choices], case_sensitive=False)
    if typ in (int, float) and (meta.get("min") is not None or meta.get("max") is not None):
        rng = click.IntRange if typ is int else click.FloatRange
        return rng(meta.get("min"), meta.get("max"))
    return {int: click.INT, float: click.FLOAT, bool: click.BOOL}.get(typ, click.STRING)


def core_options(skip: tuple[str, ...] = ()) -> list[click.Option]:
    """One flag per option of the table (``skip``: field names a command declares itself)."""
    from vsep_core.options import Settings

    hints = field_types(Settings)
    out = []
    for f in public_fields():
        if f.name in skip:
            continue
        meta = dict(f.metadata)
        default = meta["cli_default"] if meta["cli_default"] is not dataclasses.MISSING else f.default
        flags = _spellings(cli_name(f)) + [f.name]
        typ, _ = base_type(hints[f.name])
        if typ is bool:
            out.append(click.Option(flags, is_flag=True, default=bool(default), help=meta["help"]))
        elif f.name == "ensemble_weights":
            out.append(click.Option(flags, type=click.FLOAT, multiple=True, help=meta["help"]))
        else:
            choices = choices_of(f)
            help_text = meta["help"] + (f": {', '.join(map(str, choices))}" if choices and len(choices) < 20 else "")
            out.append(click.Option(flags, type=_click_type(typ, meta, choices), default=default,
                                    show_default=default is not None, help=help_text))
    return out


def settings_values(params: dict[str, Any]) -> dict[str, Any]:
    """The table's options out of a command's parsed click parameters (Settings keyword arguments)."""
    names = {f.name for f in public_fields()}
    values = {k: v for k, v in params.items() if k in names}
    if "ensemble_weights" in values:
        values["ensemble_weights"] = list(values["ensemble_weights"]) or None
    return values


def arch_options() -> list[click.Option]:
    """One flag per field of every installed architecture's params dataclass."""
    from vsep_core import plugins

    options = []
    for arch in plugins.architectures().values():
        hints = field_types(arch.params)
        for f in dataclasses.fields(arch.params):
            options.append(_arch_option(arch.flag_prefix, f, hints[f.name]))
    return options


def _arch_option(prefix: str, f: dataclasses.Field, hint: Any) -> click.Option:
    flag = f"--{prefix}_{f.name}"
    dest = f"{prefix}{ARCH_DEST_SEPARATOR}{f.name}"
    typ, optional = base_type(hint)
    meta = f.metadata
    help_text = meta.get("help", "")
    if typ is bool and f.default is False:
        return click.Option([flag, dest], is_flag=True, default=False, help=help_text)
    default = f.default if f.default is not dataclasses.MISSING else None
    suffix = " [default: from the model]" if optional and default is None else ""
    return click.Option([flag, dest], type=_click_type(typ, meta, meta.get("choices")), default=default,
                        show_default=default is not None, help=help_text + suffix)


def arch_params_given(ctx: click.Context) -> dict[str, dict[str, Any]]:
    """``{"<prefix>_params": {field: value}}`` for the plugin flags given on the command line."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in ctx.params.items():
        if ARCH_DEST_SEPARATOR in name and ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
            prefix, field_name = name.split(ARCH_DEST_SEPARATOR, 1)
            out.setdefault(f"{prefix}_params", {})[field_name] = value
    return out
