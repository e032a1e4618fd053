"""`Separator`: the library facade, with the reference implementation's names.

    from vsep_core import Separator
    sep = Separator(output_dir="out", output_format="FLAC")
    sep.load_model()  # the default model (vsep_core.config.DEFAULT_MODEL_FILENAME)
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
from vsep_core.api import Device, ModelRecord, SeparationModel
from vsep_core.config import DEFAULT_MODEL_FILENAME
from vsep_core.ensemble import DEFAULT_ALGORITHM, VALID_ENSEMBLE_ALGORITHMS
from vsep_core.ensemble_run import STEM_NAME_MAP  # noqa: F401 - the reference exports it from this module
from vsep_core.errors import SeparationError, UsageError, VsepError
from vsep_core.loader import LoadedModel, ModelLoader
from vsep_core.options import Settings
from vsep_core.params import build_params, params_dict
from vsep_core.separator_compat import ReferenceSeparatorAPI, mark_roformer

log = logging.getLogger("vsep")

DEFAULT_MODEL = DEFAULT_MODEL_FILENAME
REFERENCE_ATTRIBUTES = ("model_file_dir", "output_dir", "output_format", "output_bitrate", "output_bit_depth",
                        "normalization_threshold", "amplification_threshold", "output_single_stem",
                        "invert_using_spec", "sample_rate", "use_soundfile", "use_autocast", "use_directml",
                        "use_torch_compile", "use_native_fp16", "precision", "chunk_duration", "offline", "stem_layout")
"""Settings the facade also exposes as attributes of the same name (the reference's, plus vsep's own)."""
REFERENCE_PARAM_PREFIXES = ("mdx", "vr", "demucs", "mdxc")
"""The reference's four `<prefix>_params` arguments: accepted (and ignored) when their plugin is not
installed, so code written for audio-separator that passes all four keeps working."""
ProgressFactory = Callable[[str], Callable[[int, int], None] | None]


class Separator(ReferenceSeparatorAPI):
    """Separate audio files into stems with any installed architecture.

    The constructor takes the reference's arguments (same names, defaults and validation);
    architecture dicts (`mdx_params`, `mdxc_params`, ... or any installed plugin's
    `<prefix>_params`) are merged over the plugin's typed defaults. The reference's other
    public names (device set-up methods, `torch_device`, `model_friendly_name`, ...) come from
    :class:`~vsep_core.separator_compat.ReferenceSeparatorAPI`.
    """

    VALID_ENSEMBLE_ALGORITHMS = VALID_ENSEMBLE_ALGORITHMS
    """The reference's built-in algorithm ids; plugins may add more (see `vsep_core.ensemble.algorithms`)."""

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
                 extract_instrumental: bool = False, use_tta: bool = False, stem_layout: str | None = None,
                 precision: str = "fp32", **other_params: dict):
        self.logger = log
        self.log_level = log_level
        log.setLevel(log_level)
        if not log.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(log_formatter or logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
            log.addHandler(handler)

        given = {"mdx": mdx_params, "vr": vr_params, "demucs": demucs_params, "mdxc": mdxc_params}
        for key, value in other_params.items():
            if not key.endswith("_params"):
                raise TypeError(f"Separator() got an unexpected keyword argument {key!r}")
            given[key[: -len("_params")]] = value
        from vsep_core import config
        from vsep_core.devices import requested_precision

        requested_precision(precision, use_autocast, use_native_fp16)  # a one-line UsageError for two at once

        self.settings = Settings.create(
            model_file_dir=str(model_file_dir) if model_file_dir else str(config.default_model_dir()),
            output_dir=str(output_dir) if output_dir else str(Path.cwd()), output_format=output_format or "WAV",
            output_bitrate=output_bitrate, output_bit_depth=output_bit_depth,
            normalization_threshold=normalization_threshold, amplification_threshold=amplification_threshold,
            output_single_stem=output_single_stem, invert_using_spec=invert_using_spec, sample_rate=sample_rate,
            extract_instrumental=extract_instrumental, use_tta=use_tta, use_soundfile=use_soundfile,
            use_autocast=use_autocast, use_native_fp16=use_native_fp16, use_torch_compile=use_torch_compile,
            precision=precision, use_directml=use_directml, chunk_duration=chunk_duration,
            ensemble_algorithm=ensemble_algorithm,
            ensemble_weights=ensemble_weights, ensemble_preset=ensemble_preset, device=device, stem_layout=stem_layout,
            offline=bool(offline) or config.offline_from_env(),
            arch_params={k: v for k, v in given.items() if v})
        st = self.settings
        for name in REFERENCE_ATTRIBUTES:  # the reference's attribute names, read by code written for it
            setattr(self, name, getattr(st, name))
        self.device_request = st.device
        self.info_only = info_only
        if self.output_format == audio_io.STEM_FORMAT:
            from vsep_core import stemfile

            stemfile.check_request(self._output_options())

        self._given_params = {k: dict(v) for k, v in st.arch_params.items()}
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

        self.ensemble_algorithm = st.ensemble_algorithm
        self.ensemble_weights = list(st.ensemble_weights) if st.ensemble_weights is not None else None
        self.ensemble_preset = st.ensemble_preset
        self._preset: dict[str, Any] | None = None
        if st.ensemble_preset:
            from vsep_core import presets

            self._preset = presets.get_preset(st.ensemble_preset)
            self.ensemble_algorithm = st.ensemble_algorithm or self._preset.get("algorithm")
            if self.ensemble_weights is None:
                self.ensemble_weights = self._preset.get("weights")
        self.ensemble_algorithm = self.ensemble_algorithm or DEFAULT_ALGORITHM  # the reference's default
        self._ensemble_preset_models = list(self._preset["models"]) if self._preset else None

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
        self._loader: ModelLoader | None = None
        self._loaded: list[LoadedModel] = []
        self._chain: tuple[Any, Any] | None = None
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

    def advise(self, stem: str, budget: str | float | None = None, per: str | float = 210.0,
               quality: str = "balanced", device: str | None = None, calibration: str | None = None,
               verify: bool = False) -> Any:
        """The best model for `stem` within `budget` per song of length `per` on this machine (see
        :func:`vsep_core.advise.advise`; `device` defaults to this Separator's, cpu when automatic).
        With `verify`, the recommended model also runs on 10 s of audio (``advice.verify``)."""
        from vsep_core import advise

        kind = (device or self.device_request or "cpu").split(":")[0]
        result = advise.advise(stem, budget=budget, per=per, device=kind, quality=quality, calibration=calibration,
                               model_dir=self.model_file_dir)
        if verify:
            result.verify = advise.verify_recommendation(result, model_dir=self.model_file_dir,
                                                         calibration=calibration)
        return result

    def get_model_hash(self, model_path: str | os.PathLike) -> str:
        """MD5 of the last 10,240,000 bytes of a model file (whole file if smaller), as UVR."""
        from vsep_core import modeldata

        return modeldata.get_model_hash(Path(model_path))

    def load_model_data_using_hash(self, model_path: str | os.PathLike) -> dict[str, Any]:
        """Parameters of an MDX/VR model file looked up by its hash."""
        from vsep_core import modeldata

        return modeldata.load_model_data_using_hash(Path(model_path), Path(self.model_file_dir))

    def load_model_data_from_yaml(self, yaml_config_filename: str | os.PathLike) -> dict[str, Any]:
        """A model yaml (MDXC/Demucs), looked up in the model directory when not a path.

        Sets ``is_roformer`` as the reference does (:func:`~vsep_core.separator_compat.mark_roformer`).
        """
        from vsep_core import modeldata

        path = Path(yaml_config_filename)
        if not path.exists():
            path = Path(self.model_file_dir) / path
        return mark_roformer(modeldata.load_model_data_from_yaml(path), path)

    def download_model_files(self, model_filename: str) -> tuple[str, str, str, str, str | None]:
        """Download what a model needs; (filename, type, friendly name, path, yaml or None) as the reference."""
        record, files, _ = self._model_loader().fetch(model_filename)
        return (record.filename, record.architecture, record.friendly_name, str(files[record.filename]),
                record.config)

    def download_model_and_data(self, model_filename: str) -> dict[str, Any]:
        """Download a model and load its parameters without building it."""
        from vsep_core import modeldata

        record, files, model_dir = self._model_loader().fetch(model_filename)
        _, _, data = modeldata.model_data_for(record, files, model_dir)
        return data

    def _model_loader(self) -> ModelLoader:
        if self._loader is None:
            if self.device is None:
                self.setup_accelerated_inferencing_device()
            assert self.device is not None
            self._loader = ModelLoader(self.settings, self.device, show_progress=self.progress_factory is not None)
        self._loader.show_progress = self.progress_factory is not None
        return self._loader

    # -- loading and separating ---------------------------------------------------------------------------

    def load_model(self, model_filename: str | list[str] = DEFAULT_MODEL, force_reload: bool = False) -> None:
        """Load one model (download it first if needed), or remember several for an ensemble.

        As the reference, a list of several models loads nothing yet: each is loaded when the
        first input is separated, and stays loaded for the next inputs (each model loads once).
        """
        if self._preset and model_filename == DEFAULT_MODEL:
            model_filename = list(self._preset["models"])
        names = list(model_filename) if isinstance(model_filename, (list, tuple)) else [model_filename]
        if not names:
            raise UsageError("load_model got an empty model list")
        loader = self._model_loader()
        loader.reserve(len(names))
        if force_reload:
            loader.forget()
        self.model_filenames = names
        self._loaded = []
        self.model_instance = None
        if len(names) > 1:
            return
        loaded = loader.load(names[0])
        if self.output_format == audio_io.STEM_FORMAT:
            from vsep_core import stemfile

            stemfile.check_request(self._output_options(), list(loaded.model.stems))  # a 2-stem model: refused here
        self._loaded = [loaded]
        self.model_instance = loaded.model
        self.model_record = loaded.record
        self.model_filename = names[0]
        self.model_name = loaded.name
        self.model_type = loaded.architecture.name
        self._channels = loaded.channels

    def _ensemble_models(self) -> list[LoadedModel]:
        """Every model of the ensemble, loaded (from the loader's cache after the first input)."""
        loader = self._model_loader()
        loaded = []
        for index, name in enumerate(self.model_filenames, start=1):
            try:
                loaded.append(loader.load(name))
            except VsepError as exc:
                exc.args = (f"ensemble model {name} ({index} of {len(self.model_filenames)}): {exc}", *exc.args[1:])
                raise
        return loaded

    def _output_options(self) -> pipeline.OutputOptions:
        st = self.settings
        return pipeline.OutputOptions(
            output_dir=Path(self.output_dir), output_format=self.output_format, output_bitrate=self.output_bitrate,
            output_bit_depth=self.output_bit_depth, normalization_threshold=self.normalization_threshold,
            amplification_threshold=self.amplification_threshold, sample_rate=self.sample_rate,
            output_single_stem=self.output_single_stem, chunk_duration=self.chunk_duration,
            extract_instrumental=st.extract_instrumental, use_tta=st.use_tta, stem_layout=st.stem_layout)

    def separate(self, audio_file_path: str | os.PathLike | list, custom_output_names: dict[str, str] | None = None,
                 chain: Any = None) -> list[str]:
        """Separate a file, a directory (searched recursively) or a list of them; returns the output paths.

        A single file raises its error directly. With several inputs every input is attempted and
        failures are raised together afterwards as `SeparationError` (files of good inputs stay).
        `chain` (a chain file, a chain preset id, a dict or a :class:`vsep_core.chain.Chain`) runs that
        chain instead of the loaded model(s), with these settings, caching its steps (docs/chains.md).
        """
        if chain is not None:
            self._chain = self._chain_runner(chain)
        elif not self._loaded and len(self.model_filenames) < 2:
            raise UsageError("no model loaded: call load_model() before separate()")
        from vsep_core.options import check_custom_output_names

        check_custom_output_names(custom_output_names)
        try:
            return self._separate_inputs(audio_file_path, custom_output_names)
        finally:
            self._chain = None

    def _separate_inputs(self, audio_file_path: str | os.PathLike | list,
                         custom_output_names: dict[str, str] | None) -> list[str]:
        single = isinstance(audio_file_path, (str, os.PathLike)) and not Path(audio_file_path).is_dir()
        inputs = [audio_file_path] if isinstance(audio_file_path, (str, os.PathLike)) else list(audio_file_path)
        paths = audio_io.find_audio_files(inputs)
        if single:
            return [str(p) for p in self._separate_file(paths[0], custom_output_names)]
        outputs: list[str] = []
        failures: list[tuple[str, BaseException]] = []
        for index, path in enumerate(paths):
            try:
                outputs.extend(str(p) for p in self._separate_file(path, custom_output_names))
            except (VsepError, OSError, ValueError, RuntimeError) as exc:
                failures.append((str(path), exc))
                if index + 1 < len(paths):  # the reason is in the one error raised at the end
                    log.info("%s failed; going on with the other %d input(s)", path, len(paths) - index - 1)
        if failures:
            raise SeparationError.of(failures, outputs, len(paths))
        return outputs

    def _chain_runner(self, chain: Any) -> tuple[Any, Any]:
        """(the parsed chain, a runner with this separator's settings and device and the user's stem cache)."""
        from vsep_core import chain as chains
        from vsep_core.chain_run import ChainRunner
        from vsep_core.stemcache import default_cache

        parsed = chain if isinstance(chain, chains.Chain) else chains.load_chain(chain)
        runner = ChainRunner(self.settings.replace(output_dir=str(self.output_dir)), self.device or
                             self.setup_accelerated_inferencing_device(), default_cache(), self.progress_factory)
        runner.check(parsed)
        return parsed, runner

    def _separate_file(self, path: Path, custom_output_names: dict[str, str] | None) -> list[Path]:
        started = time.perf_counter()
        opts = self._output_options()
        chain_run = self._chain
        if chain_run is not None:
            parsed, runner = chain_run
            written = runner.run(parsed, path, self.output_dir, custom_output_names)
        elif len(self.model_filenames) > 1:
            from vsep_core import ensemble_run

            written = ensemble_run.separate_ensemble(
                self._ensemble_models(), path, opts, self.ensemble_algorithm, self.ensemble_weights,
                ensemble_run.output_label(self.ensemble_preset, self.model_filenames), custom_output_names,
                self.progress_factory)
        else:
            loaded = self._loaded[0]
            try:
                pipeline.select_stems(pipeline.output_stems(loaded.model, opts), self.output_single_stem)
            except UsageError as exc:  # as the reference: nothing written, no error, so a loop over models goes on
                log.warning("%s: %s; nothing written", Path(path).name, exc)
                return []
            progress = self.progress_factory(f"{path.name} · {loaded.name}") if self.progress_factory else None
            written = pipeline.separate_file(loaded.model, loaded.name, Path(path), opts, custom_output_names,
                                             progress, loaded.channels)
        log.info("separated %s in %.2f s", Path(path).name, time.perf_counter() - started)
        return written
