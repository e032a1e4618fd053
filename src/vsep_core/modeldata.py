"""Model parameters: by file hash (MDX, VR: UVR's tables) or from a yaml config (MDXC, Demucs).

The hash tables come from plugins through the ``vsep_hash_tables`` hook; each is merged with
the JSON of the same shape found in the model directory (``HashTable.model_dir_filename``,
e.g. ``mdx_model_data.json``), whose entries win. That file is where users add parameters
for a model file vsep does not know, and where the reference caches UVR's tables.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from vsep_core.api import HashTable, ModelRecord
from vsep_core.errors import ModelDataError, ModelFileNotFoundError
from vsep_core.helpers import load_yaml

HASH_WINDOW = 10000 * 1024
"""The hash covers the last 10,240,000 bytes of a model file (all of it when smaller), as UVR."""

YAML_SUFFIXES = (".yaml", ".yml")


def get_model_hash(path: str | Path) -> str:
    """MD5 (hex) of the last 10,240,000 bytes of the file, or of the whole file when smaller."""
    path = Path(path)
    digest = hashlib.md5()
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(size - HASH_WINDOW, 0))
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError as exc:
        raise ModelFileNotFoundError(f"model file {path} not found") from exc
    except OSError as exc:
        raise ModelDataError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def hash_tables(model_dir: str | Path | None = None) -> list[HashTable]:
    """Every plugin's hash table, each merged with its JSON in ``model_dir`` when present.

    Order: ascending ``HashTable.priority`` (the plugins set the reference's lookup order), then hook order.
    """
    from vsep_core.plugins import get_plugin_manager

    tables: list[HashTable] = []
    for batch in get_plugin_manager().hook.vsep_hash_tables():
        tables.extend(batch or [])
    tables.sort(key=lambda t: t.priority)  # stable: equal priorities keep hook order
    if model_dir is None:
        return tables
    merged = []
    for table in tables:
        local = _read_model_dir_table(Path(model_dir) / table.model_dir_filename)
        merged.append(HashTable(table.architecture, table.model_dir_filename, {**table.entries, **local})
                      if local else table)
    return merged


def _read_model_dir_table(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDataError(f"{path} is not a readable JSON hash table ({exc}); fix or delete it") from exc
    if not isinstance(data, dict):
        raise ModelDataError(f"{path} must hold a JSON object of hash -> parameters; fix or delete it")
    return data


def _lookup(model_hash: str, model_dir: str | Path | None) -> tuple[str, dict[str, Any]] | None:
    for table in hash_tables(model_dir):
        if model_hash in table.entries:
            return table.architecture, dict(table.entries[model_hash])
    return None


def lookup_hash(path: str | Path, model_dir: str | Path | None = None) -> tuple[str, dict[str, Any]] | None:
    """``(architecture, parameters)`` of the model file from the hash tables, or None if unknown."""
    return _lookup(get_model_hash(path), model_dir)


def load_model_data_using_hash(path: str | Path, model_dir: str | Path | None = None) -> dict[str, Any]:
    """Parameters of a MDX/VR model file found by its hash (:func:`get_model_hash`).

    ``model_dir`` (default: the file's directory) may hold ``mdx_model_data.json`` /
    ``vr_model_data.json`` entries that extend and override the packaged tables.
    Raises :class:`ModelDataError` naming the file, its hash and how to add parameters.
    """
    path = Path(path)
    where = Path(model_dir) if model_dir is not None else path.parent
    model_hash = get_model_hash(path)
    found = _lookup(model_hash, where)
    if found is not None:
        return found[1]
    names = sorted({t.model_dir_filename for t in hash_tables()}) or ["mdx_model_data.json", "vr_model_data.json"]
    raise ModelDataError(
        f"no parameters known for model file {path.name} (hash {model_hash}: MD5 of its last 10,240,000 bytes); "
        f"if it is a catalogue model the file is damaged: delete {path} so that it is downloaded again; otherwise "
        f"add an entry \"{model_hash}\": {{...}} in UVR's model_data_new.json format to "
        f"{' or '.join(str(where / n) for n in names)}")


def load_model_data_from_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a model's yaml config safely (``!!python/tuple`` becomes a tuple; no code runs)."""
    path = Path(path)
    try:
        data = load_yaml(path)
    except FileNotFoundError as exc:
        raise ModelFileNotFoundError(f"model config {path} not found; download the model again (vsep download)"
                                     ) from exc
    except OSError as exc:
        raise ModelDataError(f"cannot read model config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelDataError(f"model config {path} must be a yaml mapping, not {type(data).__name__}")
    return data


def config_name(record: ModelRecord) -> str | None:
    """The yaml that configures the record: ``record.config``, or the model file itself when it is a yaml."""
    if record.config:
        return record.config
    if record.filename.lower().endswith(YAML_SUFFIXES):
        return record.filename
    return None


def model_data_for(record: ModelRecord, files: dict[str, Path],
                   model_dir: str | Path) -> tuple[Path, Path | None, dict[str, Any]]:
    """``(model_path, config_path, model_data)`` of a record whose files are on disk.

    Yaml-configured records (``record.config`` set, e.g. MDXC; or a model file that is a yaml,
    e.g. a Demucs bag, then ``config_path == model_path``) give the parsed yaml; the others
    give their hash-table parameters. ``files`` maps file names to local paths (as returned by
    :func:`vsep_core.download.ensure_model_files`); names missing there are looked up in ``model_dir``.
    """
    model_dir = Path(model_dir)
    model_path = Path(files.get(record.filename, model_dir / record.filename))
    config = config_name(record)
    if config is not None:
        config_path = Path(files.get(config, model_dir / config))
        return model_path, config_path, load_model_data_from_yaml(config_path)
    if not model_path.is_file():
        raise ModelFileNotFoundError(f"model file {model_path} not found; download it first "
                                     f"(vsep download {record.filename})")
    if not any(t.architecture == record.architecture for t in hash_tables()):
        return model_path, None, {}  # this family is configured neither by yaml nor by hash
    try:
        return model_path, None, load_model_data_using_hash(model_path, model_dir)
    except ModelDataError:
        if _claimed_as_self_describing(record, model_path):
            return model_path, None, {}  # e.g. a vsep-exported VR .onnx that carries its own parameters
        raise


def _claimed_as_self_describing(record: ModelRecord, path: Path) -> bool:
    from vsep_core.plugins import architectures

    arch = architectures().get(record.architecture)
    try:
        return bool(arch and arch.self_describing and arch.self_describing(path))
    except Exception:  # a plugin's check must not turn a clear error into a crash
        return False
