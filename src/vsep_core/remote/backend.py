"""What the server separates with: the catalogue side (server process) and the job runner (worker process).

:class:`VsepBackend` answers the server's questions (which form fields exist, is this model
known, the model list, the presets) from the plugin manager and the catalogue;
:func:`run_separation` runs one job in a worker process through :class:`vsep_core.Separator`.
Neither imports FastAPI, and nothing heavy is imported until a job runs.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vsep_core.params import base_type, field_types

if typing.TYPE_CHECKING:
    from vsep_core.remote.worker import JobRequest

log = logging.getLogger("vsep.remote")



@dataclass(frozen=True)
class FormField:
    """One optional form field of ``POST /separate``.

    ``group`` None means a :class:`vsep_core.Separator` keyword argument called ``key``;
    otherwise the field goes into the ``<group>`` dict argument (``mdxc_params``) under ``key``.
    ``json`` marks a string field that carries JSON (``ensemble_weights``).
    """

    name: str
    type: type
    help: str = ""
    key: str = ""
    group: str | None = None
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    pattern: str | None = None
    choices: tuple[Any, ...] | None = None
    json: bool = False


def common_fields() -> list[FormField]:
    """The form fields of the options table's server-side options (``vsep_core.options``), with their
    choices from the registries at the time of the call (a plugin's ensemble algorithm included)."""
    from vsep_core.options import Settings, choices_of, public_fields

    hints = field_types(Settings)
    out = []
    for f in public_fields():
        meta = f.metadata
        if not meta.get("server"):
            continue
        typ = base_type(hints[f.name])[0]
        choices = choices_of(f)
        if f.name == "ensemble_weights":
            out.append(FormField(f.name, str, "JSON list of one weight per model", key=f.name, json=True))
            continue
        if meta.get("choices_from"):  # case-insensitive names: the Separator checks them against the registry
            choices = None
        out.append(FormField(f.name, typ, meta["help"], key=f.name, ge=meta.get("min"), le=meta.get("max"),
                             gt=meta.get("above"), pattern=meta.get("pattern") if typ is str and not choices else None,
                             choices=tuple(choices) if choices else None))
    return out


def architecture_fields(archs: dict[str, Any]) -> list[FormField]:
    """Form fields ``<prefix>_<field>`` for the scalar parameters of every installed architecture."""
    fields: list[FormField] = []
    for arch in archs.values():
        try:
            hints = field_types(arch.params)
        except Exception:  # a plugin's odd annotations must not break the server
            hints = {}
        for f in dataclasses.fields(arch.params):
            tp = base_type(hints.get(f.name, f.type))[0]
            if tp not in (bool, int, float, str):
                continue
            meta = f.metadata or {}
            fields.append(FormField(
                name=f"{arch.flag_prefix}_{f.name}", type=tp, help=meta.get("help", ""), key=f.name,
                group=f"{arch.flag_prefix}_params", ge=meta.get("min"), le=meta.get("max"),
                choices=tuple(meta["choices"]) if meta.get("choices") else None,
            ))
    return fields


class Backend(Protocol):
    """What the server needs from a separation backend (see :class:`VsepBackend`)."""

    runner: str
    """``"module:function"`` run in each worker process: ``fn(JobRequest, progress) -> [output paths]``."""

    def option_fields(self) -> list[FormField]:
        """Every optional form field of ``POST /separate`` besides the model selection."""
        ...

    def check_selection(self, models: list[str], preset: str | None) -> list[str]:
        """The models the job will run (a preset's models for a preset); raise
        :class:`vsep_core.errors.VsepError` when a model or preset is unknown."""
        ...

    def check_options(self, separator_kwargs: dict[str, Any]) -> None:
        """Raise :class:`vsep_core.errors.VsepError` when an option value would make the job fail."""
        ...

    def models_json(self) -> Any:
        """The ``/models-json`` document."""
        ...

    def models_text(self, filter_sort_by: str | None) -> str:
        """The ``/models`` plain-text table."""
        ...

    def presets(self) -> Any:
        """The ``/presets`` document."""
        ...


class VsepBackend:
    """Answers from the installed plugins and the catalogue; jobs run through :class:`vsep_core.Separator`."""

    runner = "vsep_core.remote.backend:run_separation"

    def __init__(self, model_file_dir: str | Path | None = None):
        from vsep_core import config

        self.model_file_dir = str(model_file_dir) if model_file_dir else str(config.default_model_dir())

    def option_fields(self) -> list[FormField]:
        """Common fields the installed Separator accepts plus every installed architecture's fields."""
        from vsep_core import plugins

        return common_fields() + architecture_fields(plugins.architectures())

    def check_chain(self, text: str) -> tuple[dict[str, Any], list[str]]:
        """(the chain document, its models) of a ``chain`` form field: a chain preset id or a JSON chain
        (never a path: the server reads no file a client names); a bad chain raises here."""
        import json

        from vsep_core.chain import ChainError, chain_presets, parse_chain
        from vsep_core.chain_run import ChainRunner
        from vsep_core.options import Settings

        presets = chain_presets()
        if text.lstrip().startswith("{"):
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ChainError(f"chain is not valid JSON: {exc.msg}") from None
        elif text in presets:
            doc = presets[text]
        else:
            raise ChainError(f"unknown chain preset {text!r} (presets: {', '.join(presets)}); or send a JSON chain")
        chain = parse_chain(doc)
        ChainRunner(Settings.create(model_file_dir=self.model_file_dir)).check(chain)
        return chain.to_dict(), [m for name in chain.needed() for m in chain.steps[name].models]

    def check_selection(self, models: list[str], preset: str | None) -> list[str]:
        """Unknown models or presets raise here, before the upload is stored."""
        if preset is not None:
            from vsep_core import presets

            return list(presets.get_preset(preset).models)
        from vsep_core import catalog

        for name in models:
            catalog.resolve_model(name, self.model_file_dir)
        from vsep_core.config import DEFAULT_MODEL_FILENAME

        return list(models) or [DEFAULT_MODEL_FILENAME]

    def check_options(self, separator_kwargs: dict[str, Any]) -> None:
        """Validate the table's options (choices from the registries) and every plugin's params as the
        Separator will, before the upload is stored."""
        from vsep_core import plugins
        from vsep_core.options import Settings, public_fields
        from vsep_core.params import build_params

        names = {f.name for f in public_fields()}
        Settings.create(**{k: v for k, v in separator_kwargs.items() if k in names})
        for arch in plugins.architectures().values():
            given = separator_kwargs.get(f"{arch.flag_prefix}_params")
            if given:
                build_params(arch, given)

    def models_json(self) -> Any:
        """``vsep_core.catalog.list_supported_model_files()``."""
        from vsep_core import catalog

        return catalog.list_supported_model_files()

    def models_text(self, filter_sort_by: str | None) -> str:
        """The CLI's pretty model table built from ``get_simplified_model_list``."""
        from vsep_core import catalog

        return format_model_table(catalog.get_simplified_model_list(filter_sort_by=filter_sort_by))

    def presets(self) -> Any:
        """``list_ensemble_presets()``: ``{preset_id: {name, description, models, algorithm, ...}}``."""
        from vsep_core import presets

        return presets.list_ensemble_presets()


def format_model_table(models: dict[str, dict[str, Any]]) -> str:
    """The reference CLI's model table: filename, arch, stems (SDR), friendly name, two-space separated."""
    header = ("Model Filename", "Arch", "Output Stems (SDR)", "Friendly Name")
    rows = [(name, str(info.get("Type", "")), ", ".join(info.get("Stems", []) or ["Unknown"]),
             str(info.get("Name", ""))) for name, info in models.items()]
    widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(4)]
    line = "-" * (sum(widths) + 15)
    out = [line, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out) + "\n"


def separator_kwargs(request: JobRequest) -> dict[str, Any]:
    """The :class:`vsep_core.Separator` keyword arguments of a job."""
    kwargs = dict(request.separator_kwargs)
    kwargs["output_dir"] = request.output_dir
    if request.model_file_dir:
        kwargs["model_file_dir"] = request.model_file_dir
    if request.preset:
        kwargs["ensemble_preset"] = request.preset
    if request.device:
        kwargs["device"] = request.device
    return kwargs


_cached: tuple[str, Any] | None = None
"""The worker process's last Separator and the settings it was built with (models stay loaded)."""


def _separator_for(request: JobRequest) -> Any:
    global _cached
    import json

    from vsep_core.separator import Separator

    kwargs = separator_kwargs(request)
    key = json.dumps([{k: v for k, v in kwargs.items() if k != "output_dir"}, request.models, request.preset,
                      request.chain], sort_keys=True, default=str)
    if _cached is not None and _cached[0] == key:
        separator = _cached[1]
        separator.output_dir = request.output_dir
        return separator
    _cached = None
    separator = Separator(**kwargs)
    if request.chain:
        pass  # a chain loads each model when its step runs
    elif request.preset or not request.models:
        separator.load_model()
    else:
        separator.load_model(request.models[0] if len(request.models) == 1 else list(request.models))
    _cached = (key, separator)
    return separator


def run_separation(request: JobRequest, progress: Callable[[int, int | None], None]) -> list[str]:
    """Run one job with :class:`vsep_core.Separator` (in a worker process); return the output paths.

    The Separator (and its loaded model) is kept for the next job with the same settings.
    Progress: 10 % when loaded, then 10-95 % over the chunks of each model in turn.
    """
    separator = _separator_for(request)
    total = max(1, len(separator.model_filenames) or len(request.models))
    calls = 0

    def factory(description: str) -> Callable[[int, int], None]:
        nonlocal calls
        index = min(calls, total - 1)
        calls += 1
        progress(10 + 85 * index // total, index)

        def step(done: int, steps: int) -> None:
            progress(10 + int(85 * (index + done / max(steps, 1)) / total), index)

        return step

    progress(10, 0)
    separator.progress_factory = factory
    try:
        outputs = separator.separate(request.input_path, custom_output_names=request.custom_output_names,
                                     chain=request.chain)
    finally:
        separator.progress_factory = None
    out_dir = Path(request.output_dir)
    return [str(p if Path(p).is_absolute() else out_dir / p) for p in outputs]


def _warm_up() -> None:
    """Import the Separator and the plugins in a new worker process before its first job."""
    from vsep_core import plugins
    from vsep_core.separator import Separator  # noqa: F401

    plugins.architectures()


run_separation.warm_up = _warm_up  # type: ignore[attr-defined]
