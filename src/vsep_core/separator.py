"""`Separator`: the library facade, with the reference implementation's names.

    from vsep_core import Separator
    sep = Separator(output_dir="out", output_format="FLAC")
    sep.load_model("model_bs_roformer_ep_317_sdr_12.9755.ckpt")
    files = sep.separate("song.flac")
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vsep_core import audio as audio_io
from vsep_core import envinfo, pipeline, plugins
from vsep_core.api import Device, LoadContext, ModelRecord, SeparationModel
from vsep_core.errors import SeparationError, UsageError, VsepError
from vsep_core.params import build_params, params_dict

log = logging.getLogger("vsep")

DEFAULT_MODEL = "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
REFERENCE_PARAM_PREFIXES = ("mdx", "vr", "demucs", "mdxc")
"""The reference's four `<prefix>_params` arguments: accepted (and ignored) when their plugin is not
installed, so code written for audio-separator that passes all four keeps working."""
ProgressFactory = Callable[[str], Callable[[int, int], None] | None]


class Separator:
    """Separate audio files into stems with any installed architecture.

    The constructor takes the reference's arguments (same names, defaults and validation);
    architecture dicts (`mdx_params`, `mdxc_params`, ... or any installed plugin's
    `<prefix>_params`) are merged over the plugin's typed defaults.
    """

    VALID_ENSEMBLE_ALGORITHMS = ("avg_wave", "median_wave", "min_wave", "max_wave", "avg_fft", "median_fft",
                                 "min_fft", "max_fft", "uvr_max_spec", "uvr_min_spec", "ensemble_wav")

    def __init__(self, log_level: int = logging.INFO, log_formatter: logging.Formatter | None = None,
                 model_file_dir: str | os.PathLike | None = None, output_dir: str | os.PathLike | None = None,
                 output_format: str = "WAV", output_bitrate: str | None = None,
                 normalization_threshold: float = 0.9, amplification_threshold: float = 0.0,
                 output_single_stem: str | None = None, invert_using_spec: bool = False,
                 sample_rate: int = 44100, use_soundfile: bool = False, use_autocast: bool = False,
                 use_directml: bool = False, chunk_duration: float | None = None,
                 mdx_params: dict | None = None, vr_params: dict | None = None, demucs_params: dict | None = None,
                 mdxc_params: dict | None = None, ensemble_algorithm: str | None = None,
                 ensemble_weights: list[float] | None = None, ensemble_preset: str | None = None,
                 info_only: bool = False, *, output_bit_depth: int | None = None, device: str | None = None,
                 offline: bool = False, use_torch_compile: bool = False, use_native_fp16: bool = False,
                 **other_params: dict):
        self.logger = log
        self.log_level = log_level
        log.setLevel(log_level)
        if not log.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(log_formatter or logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
            log.addHandler(handler)

        if not (0 < float(normalization_threshold) <= 1):
            raise UsageError(f"normalization_threshold must be in (0, 1], not {normalization_threshold}")
        if not (0 <= float(amplification_threshold) <= 1):
            raise UsageError(f"amplification_threshold must be in [0, 1], not {amplification_threshold}")
        try:
            rate = int(sample_rate)
        except (TypeError, ValueError):
            raise UsageError(f"sample_rate must be a positive whole number, not {sample_rate!r}") from None
        if rate != float(sample_rate) or not 0 < rate < 12_800_000:
            raise UsageError(f"sample_rate must be a positive whole number below 12800000, not {sample_rate!r}")
        if chunk_duration is not None and not float(chunk_duration) > 0:
            raise UsageError(f"chunk_duration must be greater than 0 seconds, not {chunk_duration}")
        if use_autocast and use_native_fp16:
            raise UsageError("use_autocast and use_native_fp16 exclude each other: choose one")
        if output_bit_depth is not None and output_bit_depth not in (16, 24, 32):
            raise UsageError(f"output_bit_depth must be 16, 24 or 32, not {output_bit_depth}")

        from vsep_core import config

        self.model_file_dir = str(Path(model_file_dir) if model_file_dir else config.default_model_dir())
        self.output_dir = str(Path(output_dir) if output_dir else Path.cwd())
        self.output_format = audio_io.check_output_format(output_format or "WAV")
        self.output_bitrate = output_bitrate
        self.output_bit_depth = output_bit_depth
        self.normalization_threshold = float(normalization_threshold)
        self.amplification_threshold = float(amplification_threshold)
        self.output_single_stem = output_single_stem
        self.invert_using_spec = invert_using_spec
        self.sample_rate = rate
        self.use_soundfile = use_soundfile  # vsep always writes in-process; kept for compatibility
        self.use_autocast = use_autocast
        self.use_directml = use_directml
        self.use_torch_compile = use_torch_compile
        self.use_native_fp16 = use_native_fp16
        self.chunk_duration = float(chunk_duration) if chunk_duration is not None else None
        self.device_request = device
        self.offline = offline or os.environ.get("VSEP_OFFLINE", "") not in ("", "0")
        self.info_only = info_only

        given = {"mdx": mdx_params, "vr": vr_params, "demucs": demucs_params, "mdxc": mdxc_params}
        for key, value in other_params.items():
            if not key.endswith("_params"):
                raise TypeError(f"Separator() got an unexpected keyword argument {key!r}")
            given[key[: -len("_params")]] = value
        self._given_params = {k: dict(v) for k, v in given.items() if v}
        owned = {a.flag_prefix for a in plugins.architectures().values()}
        for prefix in self._given_params:
            if prefix not in owned and prefix not in REFERENCE_PARAM_PREFIXES:
                plugins.architecture_for_prefix(prefix)  # raises, naming the installed prefixes
        self.arch_params: dict[str, dict[str, Any]] = {}
        for arch in plugins.architectures().values():
            given_here = self._given_params.get(arch.flag_prefix)
            self.arch_params[arch.flag_prefix] = params_dict(build_params(arch, given_here))
        for prefix, value in self._given_params.items():
            self.arch_params.setdefault(prefix, dict(value))
        for prefix in REFERENCE_PARAM_PREFIXES:
            setattr(self, f"{prefix}_params", self.arch_params.get(prefix, {}))

        self.ensemble_algorithm = ensemble_algorithm
        self.ensemble_weights = ensemble_weights
        self.ensemble_preset = ensemble_preset
        self._preset: dict[str, Any] | None = None
        if ensemble_preset:
            from vsep_core import presets

            self._preset = presets.get_preset(ensemble_preset)
            self.ensemble_algorithm = ensemble_algorithm or self._preset.get("algorithm")
            self.ensemble_weights = ensemble_weights if ensemble_weights is not None else self._preset.get("weights")
        if self.ensemble_algorithm:
            from vsep_core import ensemble

            ensemble.get_algorithm(self.ensemble_algorithm)  # built-in or a plugin's; else a UsageError

        self.model_instance: SeparationModel | None = None
        self.model_record: ModelRecord | None = None
        self.model_filename: str | None = None
        self.model_filenames: list[str] = []
        self.model_name: str | None = None
        self.model_type: str | None = None
        self.device: Device | None = None
        self.torch_device: str | None = None
        self.onnx_execution_provider: list[str] | None = None
        self.progress_factory: ProgressFactory | None = None
        self._model_dirs: dict[str, Path] = {}
        if not info_only:
            self.setup_accelerated_inferencing_device()

    # -- environment -------------------------------------------------------------------------------------

    def setup_accelerated_inferencing_device(self) -> Device:
        """Pick the device (the device plugin's order, or `device=`) and log it."""
        pm = plugins.get_plugin_manager()
        self.device = pm.hook.vsep_select_device(request=self.device_request, use_directml=self.use_directml)
        self.torch_device = self.device.torch_device
        self.onnx_execution_provider = list(self.device.onnx_providers)
        log.debug("device: %s (%s), ONNX Runtime providers %s", self.device.torch_device, self.device.description,
                  self.onnx_execution_provider)
        return self.device

    def get_system_info(self) -> dict[str, Any]:
        """Python, OS, CPU, RAM, torch/ONNX Runtime, devices, codecs; also logged at debug level."""
        info = envinfo.system_info(self.model_file_dir)
        for key, value in info.items():
            log.debug("%s: %s", key, value)
        return info

    def check_ffmpeg_installed(self) -> str | None:
        """The FFmpeg vsep uses: the one bundled with PyAV (no system binary is needed)."""
        version = envinfo.ffmpeg_version()
        log.info("FFmpeg: %s", version or "not available (PyAV missing): lossy formats other than OGG will fail")
        return version

    def log_onnxruntime_packages(self) -> dict[str, str]:
        """Log and return the installed ONNX Runtime distributions."""
        found = envinfo.onnxruntime_packages()
        for name, version in found.items():
            log.info("%s %s installed", name, version)
        return found

    def get_package_distribution(self, package_name: str):
        """importlib.metadata distribution of a package, or None when it is not installed."""
        import importlib.metadata as md

        try:
            return md.distribution(package_name)
        except md.PackageNotFoundError:
            return None

    # -- catalogue -----------------------------------------------------------------------------------------

    def list_supported_model_files(self) -> dict[str, dict]:
        """Models by type ("VR", "MDX", "Demucs", "MDXC") in the reference's shape."""
        from vsep_core import catalog

        return catalog.list_supported_model_files()

    def get_simplified_model_list(self, filter_sort_by: str | None = None) -> dict[str, dict]:
        """{filename: {Name, Type, Stems, SDR}} filtered/sorted as the reference."""
        from vsep_core import catalog

        return catalog.get_simplified_model_list(filter_sort_by)

    def list_ensemble_presets(self) -> dict[str, dict]:
        """Ensemble presets by id."""
        from vsep_core import presets

        return presets.list_ensemble_presets()

    def get_model_hash(self, model_path: str | os.PathLike) -> str:
        """MD5 of the last 10,240,000 bytes of a model file (whole file if smaller), as UVR."""
        from vsep_core import modeldata

        return modeldata.get_model_hash(Path(model_path))

    def load_model_data_using_hash(self, model_path: str | os.PathLike) -> dict[str, Any]:
        """Parameters of an MDX/VR model file looked up by its hash."""
        from vsep_core import modeldata

        return modeldata.load_model_data_using_hash(Path(model_path), Path(self.model_file_dir))

    def load_model_data_from_yaml(self, yaml_config_filename: str | os.PathLike) -> dict[str, Any]:
        """A model yaml (MDXC/Demucs), looked up in the model directory when not a path."""
        from vsep_core import modeldata

        path = Path(yaml_config_filename)
        if not path.exists():
            path = Path(self.model_file_dir) / path
        return modeldata.load_model_data_from_yaml(path)

    def download_model_files(self, model_filename: str) -> tuple[str, str, str, str, str | None]:
        """Download what a model needs; (filename, type, friendly name, path, yaml or None) as the reference."""
        record, files = self._fetch(model_filename)
        return (record.filename, record.architecture, record.friendly_name, str(files[record.filename]),
                record.config)

    def download_model_and_data(self, model_filename: str) -> dict[str, Any]:
        """Download a model and load its parameters without building it."""
        from vsep_core import modeldata

        record, files = self._fetch(model_filename)
        model_dir = self._model_dirs.get(record.filename, Path(self.model_file_dir))
        _, _, data = modeldata.model_data_for(record, files, model_dir)
        return data

    def _fetch(self, model_filename: str) -> tuple[ModelRecord, dict[str, Path]]:
        from vsep_core import catalog, download

        model_dir = Path(self.model_file_dir)
        given = Path(model_filename).expanduser()
        if given.is_file() and (given.is_absolute() or len(given.parts) > 1):
            # A path to a model file: its own directory is the model directory for this model.
            model_dir, model_filename = given.parent, given.name
            self._model_dirs[model_filename] = model_dir
        model_dir.mkdir(parents=True, exist_ok=True)
        record = catalog.resolve_model(model_filename, model_dir)
        plugins.get_architecture(record.architecture, record)
        files = download.ensure_model_files(record, model_dir, offline=self.offline,
                                            show_progress=self.progress_factory is not None)
        return record, files

    # -- loading and separating ---------------------------------------------------------------------------

    def load_model(self, model_filename: str | list[str] = DEFAULT_MODEL, force_reload: bool = False) -> None:
        """Load one model (download it first if needed), or remember several for an ensemble."""
        if self._preset and model_filename == DEFAULT_MODEL:
            model_filename = list(self._preset["models"])
        if isinstance(model_filename, (list, tuple)):
            names = list(model_filename)
            if not names:
                raise UsageError("load_model got an empty model list")
            if len(names) > 1:
                self.model_filenames = names
                self.model_instance = None
                return
            model_filename = names[0]
        if (not force_reload and self.model_instance is not None and self.model_filename == model_filename):
            return
        if self.device is None:
            self.setup_accelerated_inferencing_device()
        started = time.perf_counter()
        from vsep_core import modeldata

        record, files = self._fetch(model_filename)
        arch = plugins.get_architecture(record.architecture, record)
        model_dir = self._model_dirs.get(record.filename, Path(self.model_file_dir))
        model_path, config_path, model_data = modeldata.model_data_for(record, files, model_dir)
        params = build_params(arch, self._given_params.get(arch.flag_prefix))
        ctx = LoadContext(record=record, model_path=model_path, model_dir=model_dir, config_path=config_path,
                          params=params, device=self.device, normalization_threshold=self.normalization_threshold,
                          amplification_threshold=self.amplification_threshold,
                          invert_using_spec=self.invert_using_spec, use_autocast=self.use_autocast,
                          use_torch_compile=self.use_torch_compile, model_data=model_data, logger=log)
        try:
            model = arch.load(ctx)
        except VsepError:
            raise
        except Exception as exc:
            from vsep_core.errors import ModelLoadError

            raise ModelLoadError(f"cannot load {record.filename}: {exc}") from exc
        self.model_instance = model
        self.model_record = record
        self.model_filename = model_filename
        self.model_filenames = [model_filename]
        self.model_name = pipeline.model_name_of(record.filename)
        self.model_type = arch.name
        self._channels = arch.channels
        log.info("loaded %s (%s) in %.2f s", record.filename, arch.name, time.perf_counter() - started)

    def _output_options(self) -> pipeline.OutputOptions:
        return pipeline.OutputOptions(
            output_dir=Path(self.output_dir), output_format=self.output_format, output_bitrate=self.output_bitrate,
            output_bit_depth=self.output_bit_depth, normalization_threshold=self.normalization_threshold,
            amplification_threshold=self.amplification_threshold, sample_rate=self.sample_rate,
            output_single_stem=self.output_single_stem, chunk_duration=self.chunk_duration)

    def separate(self, audio_file_path: str | os.PathLike | list, custom_output_names: dict[str, str] | None = None,
                 ) -> list[str]:
        """Separate a file, a directory (searched recursively) or a list of them; returns the output paths.

        A single file raises its error directly. With several inputs every input is attempted and
        failures are raised together afterwards as `SeparationError` (files of good inputs stay).
        """
        single = isinstance(audio_file_path, (str, os.PathLike)) and not Path(audio_file_path).is_dir()
        inputs = [audio_file_path] if isinstance(audio_file_path, (str, os.PathLike)) else list(audio_file_path)
        paths = audio_io.find_audio_files(inputs)
        if len(self.model_filenames) > 1:
            # TODO(ensemble): multi-model runs go through ensemble_run.
            from vsep_core import ensemble_run

            run_one = lambda p: ensemble_run.separate_ensemble(self, self.model_filenames, p,  # noqa: E731
                                                               custom_output_names)
        else:
            if self.model_instance is None:
                raise UsageError("no model loaded: call load_model() before separate()")
            run_one = lambda p: self._separate_file(p, custom_output_names)  # noqa: E731
        if single:
            return [str(p) for p in run_one(paths[0])]
        outputs: list[str] = []
        failures: list[tuple[str, BaseException]] = []
        for path in paths:
            try:
                outputs.extend(str(p) for p in run_one(path))
            except (VsepError, OSError, ValueError, RuntimeError) as exc:
                log.error("%s: %s", path, exc)
                failures.append((str(path), exc))
        if failures:
            detail = "; ".join(f"{p}: {e}" for p, e in failures)
            raise SeparationError(f"separation failed for {len(failures)} input(s): {detail}", failures, outputs)
        return outputs

    def _separate_file(self, path: Path, custom_output_names: dict[str, str] | None) -> list[Path]:
        assert self.model_instance is not None and self.model_name is not None
        started = time.perf_counter()
        progress = self.progress_factory(f"{path.name} · {self.model_name}") if self.progress_factory else None
        written = pipeline.separate_file(self.model_instance, self.model_name, Path(path), self._output_options(),
                                         custom_output_names, progress, getattr(self, "_channels", 2))
        log.info("separated %s in %.2f s", path.name, time.perf_counter() - started)
        return written
