"""The model catalogue: records from every plugin, scores by filename, filter/sort, name resolution.

Core knows no architecture: each plugin hands its records through the ``vsep_models`` hook.
Core adds the per-model median scores (``data/scores.json``) and keeps a small index of the
families of the four first-party plugins (``data/known_models.json``: which package provides
which architecture, and their models' names) so that ``vsep models --all`` can list models
whose plugin is not installed, with the package to install.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import logging
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from vsep_core.api import DownloadFile, ModelRecord
from vsep_core.errors import ModelNotFoundError, PluginMissingError

REFERENCE_TYPES = ("VR", "MDX", "Demucs", "MDXC")
"""The architecture keys of :func:`list_supported_model_files`, in the reference's order."""

SCORE_METRICS = ("SDR", "SIR", "SAR", "ISR")


@functools.cache
def _data(name: str) -> Any:
    return json.loads(resources.files("vsep_core").joinpath("data", name).read_text(encoding="utf-8"))


def model_scores(filename: str) -> tuple[list[str], str | None, dict[str, Any]]:
    """``(stems, target_stem, median scores)`` measured for a model file, empty when unmeasured.

    The scores have the reference's shape: ``{stem: {"SDR", "SIR", "SAR", "ISR"}}`` (plus
    non-stem extras the reference carries, such as ``seconds_per_minute_m3``).
    """
    entry = _data("scores.json").get(filename)
    if not entry:
        return [], None, {}
    scores: dict[str, Any] = {stem: dict(zip(SCORE_METRICS, values, strict=True))
                              for stem, values in entry["median"].items()}
    scores.update(entry.get("extra", {}))
    return list(entry["stems"]), entry["target"], scores


def with_scores(record: ModelRecord) -> ModelRecord:
    """A copy of ``record`` with scores attached; its own stems/target stem win over the measured ones."""
    stems, target, scores = model_scores(record.filename)
    return dataclasses.replace(
        record,
        files=list(record.files),
        stems=list(record.stems) or stems,
        target_stem=record.target_stem or target,
        scores={**scores, **record.scores},
    )


def installed_architectures() -> dict[str, Any]:
    """Installed architectures by name (see :func:`vsep_core.plugins.architectures`)."""
    from vsep_core.plugins import architectures

    return architectures()


def _hook_records() -> list[ModelRecord]:
    from vsep_core.plugins import get_plugin_manager

    merged: dict[str, ModelRecord] = {}
    # pluggy calls the last registered plugin first; reverse so that earlier plugins win on duplicates.
    for batch in reversed(get_plugin_manager().hook.vsep_models()):
        for record in batch or []:
            merged.setdefault(record.filename, record)
    return list(merged.values())


def _type_order(records: Iterable[ModelRecord]) -> list[ModelRecord]:
    """Stable sort by architecture: the reference's types first (VR, MDX, Demucs, MDXC), then others."""
    rank = {t: i for i, t in enumerate(REFERENCE_TYPES)}
    return sorted(records, key=lambda r: rank.get(r.architecture, len(rank)))


def known_models_index(records: Iterable[ModelRecord]) -> dict[str, Any]:
    """The shape of ``data/known_models.json`` built from records (used to regenerate and check it)."""
    index: dict[str, Any] = {"packages": {}, "models": {}}
    for record in _type_order(records):
        if record.package:
            index["packages"].setdefault(record.architecture, record.package)
        index["models"].setdefault(record.architecture, []).append([record.filename, record.friendly_name])
    return index


def _index_records(skip_architectures: Iterable[str], skip_filenames: set[str]) -> list[ModelRecord]:
    index = _data("known_models.json")
    skip = set(skip_architectures)
    out = []
    for arch, rows in index["models"].items():
        if arch in skip:
            continue
        package = index["packages"].get(arch)
        for filename, name in rows:
            if filename not in skip_filenames:
                out.append(ModelRecord(filename=filename, architecture=arch, friendly_name=name, files=[],
                                       vip="VIP" in name, package=package))
    return out


@functools.cache
def _all_records(installed_only: bool) -> tuple[ModelRecord, ...]:
    installed = installed_architectures()
    records = [r for r in _hook_records() if r.architecture in installed or not installed_only]
    if not installed_only:
        records += _index_records(installed, {r.filename for r in records})
    return tuple(with_scores(r) for r in _type_order(records))


def all_records(installed_only: bool = True) -> list[ModelRecord]:
    """Every catalogue record, scores attached, in catalogue order.

    ``installed_only`` False adds the records of families whose plugin is not installed
    (``record.package`` names the package to install; they cannot be downloaded or run).
    The result is cached for the process; :func:`clear_cache` forgets it.
    """
    return list(_all_records(installed_only))


def clear_cache() -> None:
    """Forget cached catalogue data (after installing a plugin in-process, or in tests)."""
    _all_records.cache_clear()
    _data.cache_clear()


def is_installed(record: ModelRecord) -> bool:
    """Whether the plugin of the record's architecture is installed."""
    return record.architecture in installed_architectures()


def find_record(name: str, records: Iterable[ModelRecord]) -> ModelRecord | None:
    """The record called ``name``: its filename first, then any of its file names or URLs, then its friendly name."""
    records = list(records)
    for record in records:
        if record.filename == name:
            return record
    for record in records:
        if name in {f.name for f in record.files} or name in record.download_files:
            return record
    lowered = name.strip().lower()
    for record in records:
        if record.friendly_name.lower() == lowered:
            return record
    return None


def resolve_model(name: str, model_dir: str | Path) -> ModelRecord:
    """The record of a model the user named (``-m``), catalogued or a local file a plugin claims.

    1. A catalogue record whose filename, one of its file names, or its friendly name is ``name``.
       Its family's plugin not installed -> :class:`PluginMissingError` naming the package.
    2. A file ``model_dir/name`` that an installed architecture claims: its hash is in that
       architecture's hash table, or the architecture lists the suffix and its ``claims``
       accepts the file (or it has no ``claims`` and is the only one for the suffix).
    3. Else :class:`ModelNotFoundError` with close names ("did you mean ...").
    """
    model_dir = Path(model_dir)
    record = find_record(name, all_records(installed_only=True))
    if record is not None:
        return record
    missing = find_record(name, all_records(installed_only=False))
    if missing is not None:
        package = missing.package or f"vsep-{missing.architecture.lower()}"
        raise PluginMissingError(f"{missing.filename} is a {missing.architecture} model, which needs the plugin "
                                 f"package {package}: pip install {package}")
    path = model_dir / name
    local = _claim_local_file(path)
    if local is not None:
        return local
    if path.is_file():
        raise ModelNotFoundError(_unclaimed_message(path))
    raise ModelNotFoundError(_not_found_message(name, model_dir))


def _claim_local_file(path: Path) -> ModelRecord | None:
    if not path.is_file():
        return None
    archs = installed_architectures()
    suffix = path.suffix.lower()
    candidates = [a for a in archs.values() if suffix in tuple(e.lower() for e in a.extensions)]
    chosen = None
    config = None
    from vsep_core.modeldata import YAML_SUFFIXES, hash_tables, lookup_hash

    hit = lookup_hash(path, path.parent) if suffix not in YAML_SUFFIXES else None
    if hit is not None and hit[0] in archs:
        chosen = archs[hit[0]]
    else:
        claimed = [a for a in candidates if a.claims is not None and _claims(a, path)]
        unconditional = [a for a in candidates if a.claims is None]
        if claimed:
            chosen = claimed[0]
        elif len(unconditional) == 1:
            chosen = unconditional[0]
        hashed = {t.architecture for t in hash_tables()}  # these take parameters by hash, not from a yaml
        if chosen is not None and suffix not in YAML_SUFFIXES and chosen.name not in hashed:
            config = next((path.with_suffix(s).name for s in YAML_SUFFIXES if path.with_suffix(s).is_file()), None)
    if chosen is None:
        return None
    files = [DownloadFile(path.name)] + ([DownloadFile(config)] if config else [])
    return ModelRecord(filename=path.name, architecture=chosen.name, friendly_name=f"Local model: {path.name}",
                       files=files, config=config, package=chosen.package or None)


def _claims(arch: Any, path: Path) -> bool:
    try:
        return bool(arch.claims(path))
    except Exception as exc:  # a plugin's check must not crash name resolution
        logging.getLogger("vsep").debug("%s.claims(%s) failed: %s", arch.name, path, exc)
        return False


def _unclaimed_message(path: Path) -> str:
    from vsep_core.modeldata import get_model_hash, hash_tables

    archs = [a.name for a in installed_architectures().values()
             if path.suffix.lower() in tuple(e.lower() for e in a.extensions)]
    tables = " or ".join(dict.fromkeys(t.model_dir_filename for t in hash_tables()))
    kind = f" (a {path.suffix} file could be: {', '.join(archs)})" if archs else ""
    return (f"{path} is in no catalogue and no installed plugin recognises it{kind}. If it is a model with "
            f"hash parameters, add them under its hash {get_model_hash(path)} to {tables} in {path.parent}; "
            f"if it has a yaml config, put it beside the file as {path.stem}.yaml (see docs/models.md)")


def _not_found_message(name: str, model_dir: Path) -> str:
    names = [r.filename for r in all_records(installed_only=False)]
    if model_dir.is_dir():
        names += [p.name for p in model_dir.iterdir() if p.is_file() and not p.name.endswith((".part", ".json"))]
    close = difflib.get_close_matches(name, list(dict.fromkeys(names)), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (f"model {name!r} is in no catalogue and no installed plugin claims a file of that name in {model_dir}"
            f"{hint} (`vsep models` lists the models)")


def reference_entry(record: ModelRecord) -> dict[str, Any]:
    """One model in the reference's ``list_supported_model_files()`` shape."""
    return {
        "filename": record.filename,
        "scores": record.scores,
        "stems": record.stems,
        "target_stem": record.target_stem,
        "download_files": reference_download_files(record),
    }


def reference_download_files(record: ModelRecord) -> list[str]:
    """The reference's ``download_files``: URLs for files named by URL, else file names (packaged files too)."""
    return [f.url if f.url and f.url.startswith(("http://", "https://")) else f.name for f in record.files]


def list_supported_model_files(records: Iterable[ModelRecord] | None = None) -> dict[str, dict[str, Any]]:
    """Installed models in the reference's shape: ``{type: {friendly_name: {filename, scores, stems,
    target_stem, download_files}}}``, types "VR", "MDX", "Demucs", "MDXC" first (always present),
    then those of third-party plugins."""
    grouped: dict[str, dict[str, Any]] = {t: {} for t in REFERENCE_TYPES}
    for record in all_records(installed_only=True) if records is None else records:
        grouped.setdefault(record.architecture, {})[record.friendly_name] = reference_entry(record)
    return grouped


def _stem_cells(record: ModelRecord) -> tuple[list[str], dict[str, float | None]]:
    cells, sdr = [], {}
    for stem in record.stems:
        label = f"{stem}*" if stem == record.target_stem else stem
        value = record.scores.get(stem, {}).get("SDR") if isinstance(record.scores.get(stem), dict) else None
        if value is None:
            cells.append(label)
            sdr[stem.lower()] = None
        else:
            cells.append(f"{label} ({round(value, 1)})")
            sdr[stem.lower()] = round(value, 1)
    if not cells:
        return ["Unknown"], {"unknown": None}
    return cells, sdr


def simplified_entry(record: ModelRecord) -> dict[str, Any]:
    """One value of :func:`get_simplified_model_list`: Name, Type, Stems (with SDR), SDR per stem."""
    stems, sdr = _stem_cells(record)
    return {"Name": record.friendly_name, "Type": record.architecture, "Stems": stems, "SDR": sdr}


def sort_records(records: Iterable[ModelRecord], filter_sort_by: str | None) -> list[ModelRecord]:
    """The reference's filter/sort: None keeps order; "name" / "filename" sort; any other value
    keeps the models that output that stem (case-insensitive), best SDR first, unscored last."""
    records = list(records)
    if not filter_sort_by:
        return records
    if filter_sort_by == "name":
        return sorted(records, key=lambda r: r.friendly_name)
    if filter_sort_by == "filename":
        return sorted(records, key=lambda r: r.filename)
    stem = filter_sort_by.lower()
    keyed = [(r, _stem_cells(r)[1]) for r in records]
    kept = [(r, sdr[stem]) for r, sdr in keyed if stem in sdr]
    kept.sort(key=lambda item: (item[1] is not None, item[1] if item[1] is not None else 0.0), reverse=True)
    return [r for r, _ in kept]


def get_simplified_model_list(filter_sort_by: str | None = None) -> dict[str, dict[str, Any]]:
    """``{filename: {"Name", "Type", "Stems", "SDR"}}`` of installed models, as the reference.

    Stems read ``"vocals* (11.1)"`` (``*`` marks the target stem, SDR rounded to 0.1 dB);
    ``filter_sort_by`` as :func:`sort_records`.
    """
    return {r.filename: simplified_entry(r) for r in sort_records(all_records(installed_only=True), filter_sort_by)}


def select_models(list_filter: str | None = None, limit: int | None = None, *,
                  include_uninstalled: bool = False) -> list[ModelRecord]:
    """Records for ``vsep models``: :func:`sort_records` by ``list_filter``; a filter that is no
    stem of any model matches friendly names and filenames instead (case-insensitive substring)."""
    records = all_records(installed_only=not include_uninstalled)
    selected = sort_records(records, list_filter)
    if list_filter and list_filter not in ("name", "filename") and not selected:
        needle = list_filter.lower()
        selected = [r for r in records if needle in r.friendly_name.lower() or needle in r.filename.lower()]
    return selected[:limit] if limit is not None and limit >= 0 else selected
