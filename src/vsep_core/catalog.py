"""The model catalogue: records from every plugin, scores by filename, filter/sort, name resolution.

Core knows no architecture: each plugin hands its records through the ``vsep_models`` hook,
with its stems and scores, and lists its families in catalogue order (``Architecture.catalogue_rank``).
Models of families whose plugin is not installed are not known here: ``vsep plugins`` lists
what is installed and docs/models.md the plugin packages.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vsep_core.api import DownloadFile, ModelRecord
from vsep_core.errors import ModelLoadError, ModelNotFoundError


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
    """Stable sort by the architectures' catalogue rank (the reference's order for its four types)."""
    return sorted(records, key=lambda r: _rank(r.architecture))


def _rank(architecture: str) -> int:
    arch = installed_architectures().get(architecture)
    return arch.catalogue_rank if arch is not None else 1_000


def architecture_names() -> list[str]:
    """Installed architecture names in catalogue order (the keys of :func:`list_supported_model_files`)."""
    return sorted(installed_architectures(), key=_rank)


@functools.cache
def _all_records() -> tuple[ModelRecord, ...]:
    installed = installed_architectures()
    records = [r for r in _hook_records() if r.architecture in installed]
    return tuple(_type_order(records))


def all_records() -> list[ModelRecord]:
    """Every catalogue record of the installed plugins, in catalogue order.

    The result is cached for the process; :func:`clear_cache` forgets it.
    """
    return list(_all_records())


def clear_cache() -> None:
    """Forget cached catalogue data (after installing a plugin in-process, or in tests)."""
    _all_records.cache_clear()


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

    1. A catalogue record whose filename, one of its file names, or its friendly name is ``name``
       (when that checkpoint is on disk with its own yaml beside it, the yaml wins).
    2. A file ``model_dir/name`` that an installed architecture claims: its hash is in that
       architecture's hash table, or the architecture lists the suffix and its ``claims``
       accepts the file (or it has no ``claims`` and is the only one for the suffix).
    3. Else :class:`ModelNotFoundError` with close names ("did you mean ...").
    """
    model_dir = Path(model_dir)
    record = find_record(name, all_records())
    if record is not None:
        return _local_config_wins(record, model_dir)
    path = model_dir / name
    local = _claim_local_file(path)
    if local is not None:
        return local
    if path.is_file():
        raise ModelNotFoundError(_unclaimed_message(path))
    raise ModelNotFoundError(_not_found_message(name, model_dir))


def _beside_config(path: Path) -> Path | None:
    """The yaml lying beside a model file under the model file's own stem, if any."""
    from vsep_core.modeldata import YAML_SUFFIXES

    if path.suffix.lower() in YAML_SUFFIXES:
        return None
    return next((path.with_suffix(s) for s in YAML_SUFFIXES if path.with_suffix(s).is_file()), None)


def _local_config_wins(record: ModelRecord, model_dir: Path) -> ModelRecord:
    """A catalogued checkpoint that is on disk with its own yaml beside it is used as it is.

    The yaml beside it wins over the record's config (a fine-tune, or an oracle file that kept
    the public name), the architecture is whichever installed plugin claims the pair, and a size
    that differs from the record's is a warning, not a re-download.
    """
    path = model_dir / record.filename
    beside = _beside_config(path) if record.config else None
    if beside is None or not path.is_file() or beside.name == record.config:
        return record
    local = _claim_local_file(path)
    if local is None:
        return record
    expected = next((f.size for f in record.files if f.name == record.filename), None)
    if expected is not None and path.stat().st_size != expected:
        logging.getLogger("vsep").warning("%s has %d bytes, the catalogue's %s has %d: using the file on disk "
                                          "with %s", path, path.stat().st_size, record.friendly_name, expected,
                                          beside.name)
    return dataclasses.replace(local, friendly_name=record.friendly_name, license=record.license,
                               provenance=record.provenance)


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
        if len(claimed) > 1:
            names = ", ".join(f"{a.name} ({a.package or 'a plugin'})" for a in claimed)
            raise ModelLoadError(f"{path.name} is claimed by more than one plugin: {names}; uninstall one, or "
                                 f"give the model type with that plugin's model-type option (see its docs)")
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
    names = [r.filename for r in all_records()]
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
    return record.download_files


def list_supported_model_files(records: Iterable[ModelRecord] | None = None) -> dict[str, dict[str, Any]]:
    """Installed models in the reference's shape: ``{type: {friendly_name: {filename, scores, stems,
    target_stem, download_files}}}``, types "VR", "MDX", "Demucs", "MDXC" first (always present),
    then those of third-party plugins."""
    grouped: dict[str, dict[str, Any]] = {t: {} for t in architecture_names()}
    for record in all_records() if records is None else records:
        grouped.setdefault(record.architecture, {})[record.friendly_name] = reference_entry(record)
    return grouped


REFERENCE_DATASET = "MUSDB18-HQ"
"""The data set of plain ``{stem: {...}}`` scores (audio-separator's medians); other data sets are keyed
``"<stem> (<data set>)"`` by the plugins that carry them (e.g. MSST's Multisong figures)."""
PREFERRED_DATASET = "Multisong"


def stem_scores(record: ModelRecord, stem: str) -> dict[str, float]:
    """``{data set: SDR}`` of one stem of a record, from plain keys and ``"<stem> (<data set>)"`` keys."""
    out: dict[str, float] = {}
    want = stem.lower()
    for key, value in record.scores.items():
        if not isinstance(value, dict) or value.get("SDR") is None:
            continue
        name, _, rest = key.partition(" (")
        if name.lower() != want:
            continue
        out[rest[:-1] if rest.endswith(")") else REFERENCE_DATASET] = float(value["SDR"])
    return out


def _stem_cells(record: ModelRecord) -> tuple[list[str], dict[str, float | None]]:
    cells, sdr = [], {}
    for stem in record.stems:
        label = f"{stem}*" if stem == record.target_stem else stem
        scores = stem_scores(record, stem)
        value = scores.get(REFERENCE_DATASET)
        if value is None and scores:
            dataset, value = next(iter(sorted(scores.items(), key=lambda kv: kv[0] != PREFERRED_DATASET)))
            label = f"{label} ({round(value, 1)} {dataset})"
        elif value is not None:
            label = f"{label} ({round(value, 1)})"
        cells.append(label)
        sdr[stem.lower()] = round(value, 1) if value is not None else None
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
    kept = [r for r in records if stem in {s.lower() for s in r.stems} or stem_scores(r, stem)]
    if not kept:
        return []
    # one data set for the ranking: Multisong where any model has it, else the reference's MUSDB18-HQ
    have = {d for r in kept for d in stem_scores(r, stem)}
    order = [PREFERRED_DATASET] if PREFERRED_DATASET in have else []
    order += [REFERENCE_DATASET] + sorted(have - {PREFERRED_DATASET, REFERENCE_DATASET})

    def rank(record: ModelRecord) -> tuple[int, float]:
        scores = stem_scores(record, stem)
        for i, dataset in enumerate(order):
            if dataset in scores:
                return (i, -scores[dataset])
        return (len(order), 0.0)

    return sorted(kept, key=rank)


def ranking_dataset(records: Iterable[ModelRecord], stem: str) -> str | None:
    """The data set :func:`sort_records` ranks `stem` by (None when no model has a score for it)."""
    have = {d for r in records for d in stem_scores(r, stem)}
    if not have:
        return None
    return PREFERRED_DATASET if PREFERRED_DATASET in have else REFERENCE_DATASET if REFERENCE_DATASET in have \
        else sorted(have)[0]


def get_simplified_model_list(filter_sort_by: str | None = None) -> dict[str, dict[str, Any]]:
    """``{filename: {"Name", "Type", "Stems", "SDR"}}`` of installed models, as the reference.

    Stems read ``"vocals* (11.1)"`` (``*`` marks the target stem, SDR rounded to 0.1 dB);
    ``filter_sort_by`` as :func:`sort_records`.
    """
    return {r.filename: simplified_entry(r) for r in sort_records(all_records(), filter_sort_by)}


def select_models(list_filter: str | None = None, limit: int | None = None) -> list[ModelRecord]:
    """Records for ``vsep models``: :func:`sort_records` by ``list_filter``; a filter that is no
    stem of any model matches friendly names and filenames instead (case-insensitive substring)."""
    records = all_records()
    selected = sort_records(records, list_filter)
    if list_filter and list_filter not in ("name", "filename") and not selected:
        needle = list_filter.lower()
        selected = [r for r in records if needle in r.friendly_name.lower() or needle in r.filename.lower()]
    return selected[:limit] if limit is not None and limit >= 0 else selected
