"""The one table of core options, and the frozen settings object built from it.

Every option that is the same for every model (output, normalisation, precision, device,
ensemble, chunking) is declared once here, as a field of :class:`Settings` made with
:func:`option` (the same field metadata as a plugin's :func:`vsep_core.api.param`). The
`separate`, `batch` and `remote separate` flags (:mod:`vsep_core.cli.flags`), the server's form
fields and :class:`vsep_core.Separator`'s validation are generated from it; the plugins' params
add their own `--<prefix>_<field>` flags the same way. Choices that depend on what is installed
(ensemble algorithms, presets, output formats) come from their registries, never from literals.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vsep_core.errors import UsageError

MISSING = dataclasses.MISSING
MIN_CHUNK_SECONDS = 1.0
"""The shortest ``chunk_duration``: a shorter part is mostly crossfade (0.5 s) and makes thousands of parts."""
MIN_SAMPLE_RATE = 8000
"""The lowest output rate accepted: telephone audio's. Below it no music stem is worth writing (a rate of 1 Hz
was accepted before and wrote files of a few samples)."""


def option(default: Any, help: str, *, cli: str | None = None, min: float | None = None,
           max: float | None = None, above: float | None = None, choices: tuple | None = None,
           choices_from: str | None = None, pattern: str | None = None, server: bool = True,
           cli_default: Any = MISSING, unit: str = "") -> Any:
    """A core option: a :class:`Settings` field whose metadata builds every surface.

    `cli`: the reference CLI's flag name when it differs from the field (``normalization`` for
    ``normalization_threshold``); `above`: an exclusive lower bound; `choices_from`: the name of
    a registry in :data:`CHOICE_SOURCES`; `pattern`: a regular expression the server enforces on
    strings; `server`: whether the server's form has it; `cli_default`: the CLI's default where
    the reference's CLI and library differ (FLAC vs WAV); `unit`: shown after a bound in errors (" s").
    """
    return field(default=default, metadata={
        "help": help, "cli": cli, "min": min, "max": max, "above": above, "choices": choices,
        "choices_from": choices_from, "pattern": pattern, "server": server, "cli_default": cli_default,
        "unit": unit})


def _output_formats() -> tuple[str, ...]:
    from vsep_core.audio import OUTPUT_FORMATS

    return OUTPUT_FORMATS


def _ensemble_algorithms() -> tuple[str, ...]:
    from vsep_core.ensemble import algorithms

    return tuple(algorithms())


def _presets() -> tuple[str, ...]:
    from vsep_core.presets import presets

    return tuple(presets())


CHOICE_SOURCES: dict[str, Callable[[], tuple[str, ...]]] = {
    "output_formats": _output_formats,
    "ensemble_algorithms": _ensemble_algorithms,
    "presets": _presets,
}


@dataclass(frozen=True)
class Settings:
    """Validated core settings of a separation: what batch and the server send to their workers.

    Build with :meth:`create` (validates and normalises every value); serialise with
    :meth:`to_dict` / :meth:`from_dict`. `arch_params` holds the given ``<prefix>_params``
    dicts; each plugin's params are validated against its dataclass by the model loader.
    """

    model_file_dir: str | None = option(None, "model directory; default: VSEP_MODEL_DIR or the user cache",
                                        server=False)
    output_dir: str | None = option(None, "where stems are written (created); default: current directory",
                                    server=False)
    output_format: str = option("WAV", "output format", choices_from="output_formats", cli_default="FLAC",
                                pattern=r"^[A-Za-z0-9]{1,10}$")
    output_bitrate: str | None = option(None, "bitrate of lossy formats, e.g. 320k", pattern=r"^[0-9]{1,7}[kKmM]?$")
    output_bit_depth: int | None = option(None, "WAV/FLAC/AIFF bit depth (32 = float WAV); default: the input's; "
                                          "STEM: 16 or 24 = lossless ALAC", choices=(16, 24, 32))
    stem_layout: str | None = option(None, "STEM: the four stem tracks: default (drums, bass, melody, vocals), "
                                     "vocals-instrumental, or NAME=STEMS[#RRGGBB],... (docs/dj.md)",
                                     pattern=r"^[^\x00]{1,400}$")
    normalization_threshold: float = option(0.9, "max peak of every stem (0-1]", cli="normalization", above=0,
                                            max=1)
    amplification_threshold: float = option(0.0, "min peak: quieter stems are amplified to it (0 = off)",
                                            cli="amplification", min=0, max=1)
    output_single_stem: str | None = option(None, "write only this stem (case-insensitive), e.g. Vocals",
                                            cli="single_stem", pattern=r"^[^/\\\x00]{1,100}$")
    invert_using_spec: bool = option(False, "derive the secondary stem by spectrogram inversion", cli="invert_spect")
    sample_rate: int = option(44100, "output sample rate (8000 Hz or more)", min=MIN_SAMPLE_RATE, max=12_799_999)
    extract_instrumental: bool = option(False, "also write mix minus the first target stem as Instrumental")
    use_tta: bool = option(False, "test-time augmentation: average with channel-swapped and polarity-inverted runs")
    use_soundfile: bool = option(False, "accepted for compatibility (vsep always writes in-process)")
    precision: str = option("fp32", "torch models' arithmetic: fp32; bf16 or fp16 (the big matrix products in half "
                            "precision, the rest fp32); auto = bf16 on CPUs and GPUs with native bf16, fp16 on "
                            "other GPUs, else fp32 (docs/precision.md)", choices=("fp32", "bf16", "fp16", "auto"))
    use_autocast: bool = option(False, "the reference's name for --precision bf16 on CPU (native bf16), fp16 on GPU")
    use_native_fp16: bool = option(False, "the reference's name for --precision fp16 (GPU; fp32 on most CPUs)")
    use_torch_compile: bool = option(False, "run the network through torch.compile where the plugin supports it")
    use_directml: bool = option(False, "use DirectML on Windows when available", server=False)
    chunk_duration: float | None = option(None, "separate inputs longer than this many seconds in crossfaded "
                                          "parts (bounded memory; at least 1 s: each part is crossfaded "
                                          "over 0.5 s)", min=MIN_CHUNK_SECONDS, unit=" s")
    ensemble_algorithm: str | None = option(None, "how stems of several models are combined (default avg_wave)",
                                            choices_from="ensemble_algorithms")
    ensemble_weights: tuple[float, ...] | None = option(None, "one weight per model (avg_wave, avg_fft)")
    ensemble_preset: str | None = option(None, "a named ensemble (see vsep presets)", choices_from="presets",
                                         server=False)
    device: str | None = option(None, "cpu, cuda, cuda:N or mps (default: the best available)", server=False)
    offline: bool = option(False, "never touch the network (also VSEP_OFFLINE=1)", server=False)
    arch_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, metadata={"internal": True})

    @classmethod
    def create(cls, **values: Any) -> Settings:
        """Validated settings from keyword arguments (unknown names are an error naming the closest)."""
        fields = {f.name: f for f in public_fields()}
        arch_params = dict(values.pop("arch_params", None) or {})
        unknown = [k for k in values if k not in fields]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(fields), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"unknown option {unknown[0]!r}{hint}")
        checked = {name: check_value(fields[name], value) for name, value in values.items()}
        check_together(checked)
        return cls(**checked, arch_params={k: dict(v) for k, v in arch_params.items() if v})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples as lists)."""
        out = dataclasses.asdict(self)
        if out["ensemble_weights"] is not None:
            out["ensemble_weights"] = list(out["ensemble_weights"])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        """The inverse of :meth:`to_dict` (validated again)."""
        return cls.create(**dict(data))

    def replace(self, **changes: Any) -> Settings:
        """A copy with some options changed (validated)."""
        return Settings.from_dict({**self.to_dict(), **changes})


def check_together(values: Mapping[str, Any]) -> None:
    """Checks of options that depend on each other: the bitrate must suit the output format."""
    bitrate = values.get("output_bitrate")
    if bitrate:
        from vsep_core.audio import check_bitrate

        check_bitrate(values.get("output_format") or Settings.output_format, bitrate)


def check_custom_output_names(custom: Mapping[str, Any] | None, stems: list[str] | None = None,
                              what: str = "the model") -> None:
    """Refuse ``custom_output_names`` that can only be mistakes, in one line: a name that is empty once made
    safe for a file name (it wrote a hidden file called ``.flac``), two stems given the same name (one file
    would overwrite the other). With `stems` (what the model gives), names for stems it does not have get a
    warning, not an error: one mapping is often shared by runs over models with different stems, and the
    reference ignores such names too."""
    if not custom:
        return
    from vsep_core.pipeline import sanitize_filename

    seen: dict[str, str] = {}
    for stem, name in custom.items():
        if not isinstance(name, str) or not sanitize_filename(name):
            raise UsageError(f"custom_output_names: the name for {stem!r} is {name!r}, which leaves no file name; "
                             "give a name such as \"lead\"")
        key = sanitize_filename(name).lower()
        if key in seen:
            raise UsageError(f"custom_output_names: {seen[key]!r} and {stem!r} are both named {name!r}; one file "
                             "would overwrite the other, give them different names")
        seen[key] = stem
    if stems is not None:
        have = {s.lower() for s in stems}
        unknown = [k for k in custom if k.lower() not in have]
        if unknown:
            import logging

            logging.getLogger("vsep").warning("custom_output_names: %s has no stem %s (it gives %s); that name is "
                                              "not used", what, ", ".join(map(repr, unknown)), ", ".join(stems))


def public_fields() -> list[dataclasses.Field]:
    """The options of the table, in declaration order (``arch_params`` excluded)."""
    return [f for f in dataclasses.fields(Settings) if not f.metadata.get("internal")]


def choices_of(f: dataclasses.Field) -> tuple | None:
    """The allowed values of an option: fixed ones, or those of its registry right now."""
    meta = f.metadata
    if meta.get("choices_from"):
        return CHOICE_SOURCES[meta["choices_from"]]()
    return meta.get("choices")


def cli_name(f: dataclasses.Field) -> str:
    """The reference's CLI spelling of an option (``normalization`` for ``normalization_threshold``)."""
    return f.metadata.get("cli") or f.name


def check_value(f: dataclasses.Field, value: Any) -> Any:
    """One option's value converted to its type and checked (a one-line :class:`UsageError` if wrong)."""
    from vsep_core.params import base_type, coerce, field_types

    hint = field_types(Settings)[f.name]
    label = f.name
    if f.name == "ensemble_weights":
        if value is None or (isinstance(value, (list, tuple)) and not value):
            return None
        if isinstance(value, (int, float, str)):
            value = [value]
        try:
            return tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise UsageError(f"{label} must be a list of numbers, not {value!r}") from None
    typ, optional = base_type(hint)
    if value is None and optional:
        return None
    if f.metadata.get("choices_from") == "presets" and isinstance(value, str):
        from vsep_core.presets import get_preset

        get_preset(value)  # PresetError (a ValueError) naming the presets, as the reference raises
        return value
    if f.name == "output_format" and isinstance(value, str):
        from vsep_core.audio import check_output_format

        return check_output_format(value)  # the writer's own check (AIF -> AIFF, the formats it writes)
    if f.metadata.get("choices_from") and isinstance(value, str):
        allowed = choices_of(f) or ()
        matched = next((c for c in allowed if c.lower() == value.lower()), None)
        if matched is None:
            human = label.replace("_", " ")
            raise UsageError(f"unknown {human} {value!r} ({label}): choose one of {', '.join(allowed)}")
        return matched
    value = coerce(f, hint, value, label)
    above = f.metadata.get("above")
    if above is not None and value is not None and not value > above:
        raise UsageError(f"{label} must be greater than {above}, not {value!r}")
    return value
