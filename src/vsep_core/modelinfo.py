"""What vsep knows about a model (`model_info`) and making models ready to use (`prepare_models`).

The library side of `vsep models info` and `vsep download`; the CLI only prints what these return.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from vsep_core import catalog, download, modeldata
from vsep_core.api import ModelRecord
from vsep_core.errors import VsepError


def model_info(name: str, model_dir: Path) -> dict[str, Any]:
    """Everything vsep knows about one model: record, files (on disk, size, URLs), scores, parameters."""
    record = catalog.find_record(name, catalog.all_records())
    if record is None:
        record = catalog.resolve_model(name, model_dir)
    files = []
    for f in record.files:
        path = model_dir / f.name
        urls = download.candidate_urls(record, f) if f.sources else []
        packaged = any(u.startswith("file:") for u in urls)
        files.append({
            "name": f.name,
            "on_disk": path.is_file(),
            "path": str(path),
            "bytes_on_disk": path.stat().st_size if path.is_file() else None,
            "size": f.size,
            "sha256": f.sha256,
            "packaged": packaged,
            "urls": [u for u in urls if not u.startswith("file:")],
        })
    params: dict[str, Any] | None = None
    params_note = ""
    local = {f["name"]: Path(f["path"]) for f in files}
    config = modeldata.config_name(record)
    if record.files:
        try:
            if config is not None and not local[config].is_file():
                sources = next(f for f in record.files if f.name == config).sources
                source = sources[-1] if sources else ""
                if source.startswith("file:"):
                    packaged_path = urllib.request.url2pathname(urllib.parse.urlparse(source).path)
                    params = modeldata.load_model_data_from_yaml(packaged_path)
                else:
                    params_note = f"in {config}, once downloaded"
            elif config is None and not local[record.filename].is_file():
                params_note = "looked up by the model file's hash once it is downloaded"
            else:
                params = modeldata.model_data_for(record, local, model_dir)[2]
        except VsepError as exc:
            params_note = str(exc)
    return {
        "filename": record.filename,
        "friendly_name": record.friendly_name,
        "architecture": record.architecture,
        "package": record.package,
        "license": record.license,
        "provenance": record.provenance,
        "vip": record.vip,
        "stems": record.stems,
        "target_stem": record.target_stem,
        "scores": record.scores,
        "config": config,
        "model_dir": str(model_dir),
        "files": files,
        "parameters": params,
        "parameters_note": params_note,
    }


def prepare_models(models: list[str], model_dir: Path, *, offline: bool = False,
                   show_progress: bool = True) -> list[tuple[ModelRecord, dict[str, Path]]]:
    """Resolve, download and check the parameters of each model (so a missing hash entry or a bad yaml
    fails now, not at separation time); ``[(record, {file name: path})]`` in the order given."""
    done = []
    for name in models:
        record = catalog.resolve_model(name, model_dir)
        files = download.ensure_model_files(record, model_dir, offline=offline, show_progress=show_progress)
        modeldata.model_data_for(record, files, model_dir)
        done.append((record, files))
    return done
