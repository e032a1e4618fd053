"""Exporting a model's network to ONNX, to run it on ONNX Runtime (the library side of `vsep export-onnx`).

The architecture's plugin does the export (an ``export_onnx(model_path, out_path, model_data)``
callable on its :class:`~vsep_core.api.Architecture`; VR has one). The new file's hash is added,
with the source model's parameters, to the hash-table JSON of the output directory (e.g.
``vr_model_data.json``), so ``vsep separate -m NEW.onnx --model_file_dir DIR`` finds them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vsep_core import catalog, download, modeldata, plugins
from vsep_core.errors import ModelDataError, UsageError
from vsep_core.helpers import publish_atomically


def register_hash(model_path: Path, architecture: str, params: dict[str, Any]) -> Path | None:
    """Add ``{hash of model_path: params}`` to the architecture's hash JSON beside the file
    (atomically); returns that JSON's path, or None if the architecture has no hash table."""
    names = [t.model_dir_filename for t in modeldata.hash_tables() if t.architecture == architecture]
    if not names:
        return None
    table = model_path.parent / names[0]
    entries = json.loads(table.read_text(encoding="utf-8")) if table.is_file() else {}
    entries[modeldata.get_model_hash(model_path)] = params
    return publish_atomically(json.dumps(entries, indent=2).encode(), table)


def export_model(model: str, output: Path | None, model_dir: Path, offline: bool = False) -> Path:
    """Export `model` (a path to a model file, or a catalogue name in `model_dir`) to ONNX."""
    path = Path(model)
    if path.is_file():
        found = modeldata.lookup_hash(path, path.parent)
        if found is None:
            record = catalog.resolve_model(path.name, path.parent)
            raise ModelDataError(f"no parameters known for {path.name} ({record.architecture}); add its hash "
                                 f"{modeldata.get_model_hash(path)} to the hash JSON in {path.parent}")
        architecture, data = found
    else:
        record = catalog.resolve_model(model, model_dir)
        files = download.ensure_model_files(record, model_dir, offline=offline)
        path, _, data = modeldata.model_data_for(record, files, model_dir)
        architecture = record.architecture
    arch = plugins.get_architecture(architecture)
    exporter = arch.export_onnx
    if exporter is None:
        raise UsageError(f"{architecture} models cannot be exported to ONNX by their plugin")
    out = Path(output) if output else path.with_suffix(".onnx")
    if out.resolve() == path.resolve():
        raise UsageError(f"the output {out} would overwrite the model; pass --output")
    written = Path(exporter(path, out, dict(data)))
    register_hash(written, architecture, dict(data))
    return written
