"""Typed architecture parameters: merge a user's partial dict over the defaults and validate it.

The same field metadata (see `vsep_core.api.param`) drives the CLI flags, the library's
``<prefix>_params`` dicts and the remote API, so a parameter is declared once, in its plugin.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from vsep_core.api import Architecture
from vsep_core.errors import UsageError

TRUE_WORDS = {"1", "true", "yes", "y", "on"}
FALSE_WORDS = {"0", "false", "no", "n", "off"}


def field_types(params_cls: type) -> dict[str, Any]:
    """Resolved type hints of a params dataclass (handles `from __future__ import annotations`)."""
    return typing.get_type_hints(params_cls)


def base_type(hint: Any) -> tuple[type, bool]:
    """(the concrete type, whether None is allowed) of `int`, `int | None`, `Optional[float]` ..."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return non_none[0], len(non_none) != len(args)
    return hint, False


def parse_bool(value: Any, name: str = "value") -> bool:
    """A real boolean parse: True/False/1/0/yes/no (the reference's `type=bool` made "False" true)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise UsageError(f"{name} must be true or false, not {value!r}")


def coerce(field: dataclasses.Field, hint: Any, value: Any, label: str) -> Any:
    """Convert `value` to the field's type and check its range and choices."""
    typ, optional = base_type(hint)
    if value is None or (isinstance(value, str) and value.lower() == "none" and optional):
        if optional:
            return None
        raise UsageError(f"{label} needs a value")
    try:
        if typ is bool:
            value = parse_bool(value, label)
        elif typ is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            value = int(value)
        elif typ is float:
            value = float(value)
        elif typ is str:
            value = str(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{label} must be {typ.__name__}, not {value!r}") from exc
    meta = field.metadata
    if meta.get("choices") and value not in meta["choices"]:
        raise UsageError(f"{label} must be one of {', '.join(map(str, meta['choices']))}, not {value!r}")
    if typ in (int, float):
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            if hi is None:
                raise UsageError(f"{label} must be at least {lo}{meta.get('unit', '')}, not {value!r}")
            bounds = f"{lo if lo is not None else '-inf'}..{hi}"
            raise UsageError(f"{label} must be in {bounds}, not {value!r}")
    return value


def build_params(arch: Architecture, given: dict[str, Any] | None) -> Any:
    """Defaults of `arch` with `given` merged over them (partial dicts keep the other defaults)."""
    given = dict(given or {})
    hints = field_types(arch.params)
    names = {f.name: f for f in dataclasses.fields(arch.params)}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise UsageError(f"unknown {arch.flag_prefix}_params key(s) {', '.join(unknown)}; "
                         f"known: {', '.join(names)}")
    values = {}
    for name, value in given.items():
        values[name] = coerce(names[name], hints[name], value, f"{arch.flag_prefix}_params[{name!r}]")
    return arch.params(**values)


def params_dict(params: Any) -> dict[str, Any]:
    """A params dataclass instance as a plain dict."""
    return dataclasses.asdict(params)
