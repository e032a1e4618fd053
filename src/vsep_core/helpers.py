"""Small helpers that plugins share (public API: plugins import them instead of keeping copies).

Only what really is the same for every family lives here; what must differ for parity with a
reference (chunk schedules, a family's own STFT) stays in its plugin.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vsep_core.api import HashTable, ModelRecord
from vsep_core.errors import UsageError

SCORE_METRICS = ("SDR", "SIR", "SAR", "ISR")


def scores_from_table(entry: Mapping[str, Any]) -> tuple[list[str], str | None, dict[str, Any]]:
    """``(stems, target stem, scores)`` from one entry of a scores table.

    The table's shape (audio-separator's medians, reduced): ``{"stems": [...], "target": stem,
    "median": {stem: [SDR, SIR, SAR, ISR]}, "extra": {...}}``; scores come back in the
    reference's shape ``{stem: {"SDR", "SIR", "SAR", "ISR"}}`` plus the extras.
    """
    scores: dict[str, Any] = {stem: dict(zip(SCORE_METRICS, values, strict=True))
                              for stem, values in entry.get("median", {}).items()}
    scores.update(entry.get("extra", {}))
    return list(entry.get("stems", [])), entry.get("target"), scores


def attach_scores(records: Iterable[ModelRecord], table: Mapping[str, Mapping[str, Any]]) -> list[ModelRecord]:
    """Records with stems, target stem and scores from `table` (keyed by file name); a record's own win."""
    out = []
    for record in records:
        entry = table.get(record.filename)
        if not entry:
            out.append(record)
            continue
        stems, target, scores = scores_from_table(entry)
        out.append(dataclasses.replace(record, stems=list(record.stems) or stems,
                                       target_stem=record.target_stem or target, scores={**scores, **record.scores}))
    return out


def read_package_json(package: str, name: str) -> Any:
    """``data/<name>`` of the installed Python package `package`, parsed as JSON."""
    return json.loads(resources.files(package).joinpath("data", name).read_text(encoding="utf-8"))


@functools.cache
def package_json(package: str, name: str) -> Any:
    """:func:`read_package_json`, read once (do not modify what it returns)."""
    return read_package_json(package, name)


@dataclasses.dataclass(frozen=True)
class UvrCatalogue:
    """A family's UVR-format catalogue, packaged in `package`'s ``data/``: ``models.json`` (``{"models":
    [[friendly name, file], ...]}``), ``scores.json`` (see :func:`attach_scores`) and ``hash_params.json``
    (model-file hash -> parameters, cached by the reference in the model directory as `hash_file` and
    searched by ascending `priority`); an optional ``costs.json`` (see :mod:`vsep_core.cost`)."""

    package: str
    architecture: str
    distribution: str
    hash_file: str
    priority: int

    def model_records(self) -> list[ModelRecord]:
        """One record a model (one file each from UVR's download sources, VIP when the name says so)."""
        from vsep_core.cost import attach_costs, packaged_costs
        from vsep_core.sources import uvr_model_file

        return attach_costs(attach_scores([
            ModelRecord(filename=filename, architecture=self.architecture, friendly_name=name,
                        files=[uvr_model_file(filename, vip="VIP" in name)], vip="VIP" in name,
                        package=self.distribution)
            for name, filename in package_json(self.package, "models.json")["models"]
        ], read_package_json(self.package, "scores.json")), packaged_costs(self.package))

    def hash_tables(self) -> list[HashTable]:
        """The hash -> parameters table, merged by core with `hash_file` in the model directory."""
        return [HashTable(self.architecture, self.hash_file, package_json(self.package, "hash_params.json"),
                          priority=self.priority)]

    def hooks(self) -> tuple[Callable[[], list[ModelRecord]], Callable[[], list[HashTable]]]:
        """``(vsep_models, vsep_hash_tables)`` hook implementations serving this catalogue (a plugin module
        assigns them under those names)."""
        from vsep_core.hookspecs import hookimpl

        @hookimpl
        def vsep_models() -> list[ModelRecord]:
            return self.model_records()

        @hookimpl
        def vsep_hash_tables() -> list[HashTable]:
            return self.hash_tables()

        return vsep_models, vsep_hash_tables


def channels_first(audio: np.ndarray) -> np.ndarray:
    """`audio` as float32 [channels, samples] (a 1-D array is one channel); UsageError for any other shape
    or no samples."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise UsageError(f"expected audio [channels, samples] with samples > 0, got shape {audio.shape}")
    return audio


def mono_or_stereo(audio: np.ndarray, what: str, error: type[Exception] = UsageError,
                   channels: tuple[int, ...] = (1, 2)) -> np.ndarray:
    """`audio` as float32 [channels, samples] (a 1-D array is one channel). Anything else -- another number
    of dimensions, a channel count not in `channels` -- is `error` (UsageError: the one type every plugin
    raises for bad input) saying "<what> take mono or stereo audio, got N channels"."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise error(f"{what} take audio as [channels, samples], got an array of shape {audio.shape}")
    if audio.shape[0] not in channels:
        kind = "mono" if channels == (1,) else "stereo" if channels == (2,) else "mono or stereo"
        raise error(f"{what} take {kind} audio, got {audio.shape[0]} channels")
    return audio


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad the last axis to exactly `length` samples."""
    n = audio.shape[-1]
    if n == length:
        return audio
    if n > length:
        return audio[..., :length]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, length - n)])


def peak_gain(peak: float, max_peak: float = 0.9, min_peak: float = 0.0) -> float:
    """The reference's ``normalize`` as a factor: down to `max_peak` when louder, up to `min_peak`
    when 0 < peak < `min_peak`, else 1."""
    if peak > max_peak:
        return max_peak / peak
    if min_peak and 0.0 < peak < min_peak:
        return min_peak / peak
    return 1.0


STEM_PAIRS = {"Vocals": "Instrumental", "Instrumental": "Vocals", "lead_only": "backing_only",
              "backing_only": "lead_only", "Primary Stem": "Secondary Stem"}
"""The reference's ``STEM_PAIR_MAPPER`` (its common separator's, shared by every family)."""


def stem_pair(primary: str) -> str:
    """The reference's name for what is left when `primary` is taken out: :data:`STEM_PAIRS`, else a leading
    "No " stripped ("No Echo" -> "Echo"), else "No " prepended ("Reverb" -> "No Reverb")."""
    if primary in STEM_PAIRS:
        return STEM_PAIRS[primary]
    return primary[3:] if primary.startswith("No ") else f"No {primary}"


class ConfigLoader(yaml.SafeLoader):
    """A safe YAML loader plus ``!!python/tuple`` (used by model configs); nothing that can run code."""


ConfigLoader.add_constructor("tag:yaml.org,2002:python/tuple",
                             lambda loader, node: tuple(loader.construct_sequence(node, deep=True)))


def load_yaml(path: str | Path, loader: type | None = None, error: type[Exception] | None = None) -> Any:
    """A model config read with `loader` (default :class:`ConfigLoader`, a SafeLoader: no code runs); when it is
    not valid YAML (or holds Python tags the loader refuses), one line saying to delete it so that it is
    downloaded again, as `error` (default ModelDataError). OSError (a missing file ...) is the caller's."""
    from vsep_core.errors import ModelDataError

    with open(path, encoding="utf-8") as f:
        try:
            return yaml.load(f, Loader=loader or ConfigLoader)  # noqa: S506 - SafeLoader subclasses only
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}" if where is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise (error or ModelDataError)(
                f"{Path(path).name} is not a valid yaml config ({problem}{at}); delete {path} so that it is "
                "downloaded again (or get a good copy from where it came from)") from exc


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a local file, read in blocks (``hashlib.file_digest``), never whole."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def lazy(module: str, name: str) -> Callable[..., Any]:
    """A function that imports `module` on its first call and calls its `name`: a plugin's hook module names
    its loader and cost functions without importing torch (``load=lazy("vsep_x.model", "load_model")``)."""
    import importlib

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{module}.{name}, imported when first called."
    return call


@contextlib.contextmanager
def atomic_path(final: str | Path, allow_empty: bool = False) -> Iterator[Path]:
    """Yield a hidden temporary path beside `final` (owned by this run: :mod:`vsep_core.publish`); rename it
    into place (with the usual file mode) only if the block succeeds and wrote something, so a crash never
    leaves a half file under `final`. Several files published together: :func:`vsep_core.publish.staged`."""
    from vsep_core.publish import staged

    with staged(allow_empty) as files:
        yield files.temp_for(final)


def publish_atomically(data: bytes, dest: str | Path) -> Path:
    """Write `data` to `dest` through :func:`atomic_path`."""
    with atomic_path(dest, allow_empty=True) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def half_dtype(precision: str) -> Any:
    """The torch dtype of a half precision (``bf16`` -> torch.bfloat16, ``fp16`` -> torch.float16), None for fp32."""
    if precision not in ("bf16", "fp16"):
        return None
    import torch

    return torch.bfloat16 if precision == "bf16" else torch.float16


def precision_autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager:
    """torch autocast in `precision`'s half dtype on `device_type` (``LoadContext.precision``), else a no-op.

    The plain way for a plugin to honour ``--precision``: the matrix products and convolutions run in the
    half dtype, reductions and norms in fp32 (torch's autocast lists).
    """
    dtype = half_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device_type, dtype=dtype)
