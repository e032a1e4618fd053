"""The model loader: a model name -> a loaded model, through resolve, fetch, model data, params and
``Architecture.load``, with a small cache so that an ensemble over many files loads each model once.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from vsep_core import allocator, plugins
from vsep_core.api import Architecture, Device, LoadContext, ModelRecord, SeparationModel
from vsep_core.devices import requested_precision, resolve_precision
from vsep_core.errors import ModelLoadError, VsepError
from vsep_core.options import Settings
from vsep_core.params import build_params

log = logging.getLogger("vsep")
_warned_licences: set[str] = set()


@dataclass
class LoadedModel:
    """A model ready to separate, with what the pipeline needs to know about it."""

    record: ModelRecord
    architecture: Architecture
    model: SeparationModel
    model_dir: Path

    @property
    def name(self) -> str:
        """The model name used in output file names: the model file name cut at its first '.'."""
        return Path(self.record.filename).name.split(".")[0]

    @property
    def channels(self) -> int:
        """Channels the model takes: the loaded model's own ``channels``, else its architecture's."""
        return int(getattr(self.model, "channels", None) or self.architecture.channels)


class ModelLoader:
    """Loads models for one set of :class:`Settings` on one device and keeps the last few loaded.

    `cache_size` models stay loaded (least recently used goes first); :meth:`reserve` raises it
    for an ensemble so that each of its models is loaded once however many files follow.
    `loads` counts the models actually built (tests and logs).
    """

    def __init__(self, settings: Settings, device: Device, cache_size: int = 1, show_progress: bool = False):
        self.settings = settings
        self.device = device
        self.cache_size = max(1, cache_size)
        self.show_progress = show_progress
        self.loads = 0
        self._cache: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._model_dirs: dict[str, Path] = {}

    def reserve(self, count: int) -> None:
        """Keep at least `count` models loaded (an ensemble's size)."""
        self.cache_size = max(self.cache_size, count)

    def model_dir_for(self, name: str) -> tuple[Path, str]:
        """(model directory, file name) for a name; a path to a file makes its directory the model directory."""
        given = Path(name).expanduser()
        if given.is_file() and (given.is_absolute() or len(given.parts) > 1):
            self._model_dirs[given.name] = given.parent
            return given.parent, given.name
        return self._model_dirs.get(name, Path(self.settings.model_file_dir or ".")), name

    def fetch(self, name: str) -> tuple[ModelRecord, dict[str, Path], Path]:
        """Resolve `name` and make its files present (downloading what is missing)."""
        from vsep_core import catalog, download

        model_dir, filename = self.model_dir_for(name)
        try:
            model_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VsepError(f"cannot create the model directory {model_dir}: {exc.strerror or exc} (choose another "
                            f"with --model_file_dir or VSEP_MODEL_DIR)") from exc
        record = catalog.resolve_model(filename, model_dir)
        plugins.get_architecture(record.architecture, record)
        missing = [f for f in record.files if not (model_dir / f.name).is_file()]
        if missing and (record.license or record.provenance) and record.filename not in _warned_licences:
            _warned_licences.add(record.filename)
            log.warning("%s: licence %s%s", record.filename, record.license or "unknown",
                        f"; {record.provenance}" if record.provenance else "")
        files = download.ensure_model_files(record, model_dir, offline=self.settings.offline,
                                            show_progress=self.show_progress)
        return record, files, model_dir

    def load(self, name: str) -> LoadedModel:
        """The loaded model called `name` (from the cache when it is there)."""
        key = (name, str(self.model_dir_for(name)[0]))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        loaded = self._build(name)
        self._cache[key] = loaded
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return loaded

    def forget(self) -> None:
        """Drop every cached model."""
        self._cache.clear()

    def _build(self, name: str) -> LoadedModel:
        from vsep_core import modeldata

        started = time.perf_counter()
        record, files, model_dir = self.fetch(name)
        arch = plugins.get_architecture(record.architecture, record)
        model_path, config_path, model_data = modeldata.model_data_for(record, files, model_dir)
        st = self.settings
        params = build_params(arch, st.arch_params.get(arch.flag_prefix))
        wanted = requested_precision(st.precision, st.use_autocast, st.use_native_fp16)
        device_type = (self.device.torch_device or "cpu").split(":")[0]
        if device_type == "cpu":
            allocator.keep_large_blocks()
        ctx = LoadContext(record=record, model_path=model_path, model_dir=model_dir, config_path=config_path,
                          params=params, device=self.device, normalization_threshold=st.normalization_threshold,
                          amplification_threshold=st.amplification_threshold,
                          invert_using_spec=st.invert_using_spec,
                          use_torch_compile=st.use_torch_compile, model_data=model_data, logger=log,
                          precision=resolve_precision(wanted, device_type, log),
                          wanted_stems=(st.output_single_stem,) if st.output_single_stem
                          and not st.extract_instrumental else None)
        try:
            model = arch.load(ctx)
        except VsepError:
            raise
        except Exception as exc:
            from vsep_core.checkpoints import first_line

            raise ModelLoadError(f"cannot load {record.filename}: {first_line(exc, 300)}") from exc
        self.loads += 1
        log.info("loaded %s (%s) in %.2f s", record.filename, arch.name, time.perf_counter() - started)
        return LoadedModel(record, arch, model, model_dir)

