"""Running a chain (:mod:`vsep_core.chain`) on one input, with every step's stems in the stem cache.

1. Check, before any model runs: the document (:func:`vsep_core.chain.parse_chain`), each step's
   params (core options and ``<prefix>_<field>`` architecture params, validated as `vsep separate`'s),
   the models (the catalogue), and every stem a step reads against what its step gives (the
   catalogue's stems for models, so nothing is loaded to know them).
2. Key every needed step: a model step's key hashes the model files, the effective params (core
   options that change stems and the architecture's typed params) and its input (the song's sha256,
   or the parent step's key and the stem's name); a combining step's hashes its operation and its
   inputs' keys. Changing a step changes its key and every descendant's, and nothing else's.
3. Run the steps whose key is not in the cache, in order. A model step separates its input file
   (the song, or a stem stored by an earlier step) exactly as `vsep separate` does and stores each
   stem at the chain's sample rate as float32 WAV, without the writer's peak normalisation; a
   combining step streams its inputs from disk block by block. A model is loaded when its step runs
   and let go after its last step, so a chain holds one step's working set at a time.
4. Write the chain's outputs with the usual writer (format, bit depth, peak normalisation).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsep_core import audio as audio_io
from vsep_core import pipeline
from vsep_core import resample as resample_methods
from vsep_core.api import Device
from vsep_core.chain import CHAIN_WIDE_OPTIONS, SONG, Chain, ChainError, StemRef, Step, check_stems, match_stem
from vsep_core.errors import ModelRunError, VsepError
from vsep_core.loader import ModelLoader
from vsep_core.options import Settings, public_fields
from vsep_core.stemcache import Entry, StemCache, StoredStem, make_key, write_stem_file

log = logging.getLogger("vsep")

STEM_OPTIONS = ("normalization_threshold", "amplification_threshold", "invert_using_spec", "sample_rate",
                "extract_instrumental", "use_tta", "use_autocast", "use_native_fp16", "use_torch_compile",
                "chunk_duration")
"""Core options that change a model step's stems (part of its cache key); the others concern output or where
things run (device: CPU and GPU results differ by float rounding only, and share entries)."""
BLOCK = 1 << 18
ProgressFactory = Callable[[str], "Callable[[int, int], None] | None"]


@dataclass
class ChainStats:
    """What a run did: steps run and taken from the cache (in order), models loaded, model separations."""

    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    model_loads: int = 0
    model_runs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def step_settings(base: Settings, step: Step) -> Settings:
    """The chain's settings with the step's params over them (``<prefix>_<field>`` or ``<prefix>_params``
    for an architecture's params); a one-line :class:`ChainError` naming the step when one is wrong."""
    if not step.params:
        return base
    from vsep_core import plugins

    where = f"chain step {step.name!r}"
    fields = {f.name for f in public_fields()}
    prefixes = sorted((a.flag_prefix for a in plugins.architectures().values()), key=len, reverse=True)
    core: dict[str, Any] = {}
    arch: dict[str, dict[str, Any]] = {k: dict(v) for k, v in base.arch_params.items()}
    for name, value in step.params.items():
        if name in CHAIN_WIDE_OPTIONS:
            raise ChainError(f"{where}: {name} is an option of the whole chain (give it to `vsep chain run`)")
        if name in fields:
            core[name] = value
            continue
        if name.endswith("_params") and name[: -len("_params")] in prefixes and isinstance(value, Mapping):
            arch.setdefault(name[: -len("_params")], {}).update(value)
            continue
        prefix = next((p for p in prefixes if name.startswith(p + "_") and len(name) > len(p) + 1), None)
        if prefix is None:
            raise ChainError(f"{where}: unknown param {name!r} (core options such as use_tta, or "
                             f"<prefix>_<field> with prefix {', '.join(sorted(prefixes))})")
        arch.setdefault(prefix, {})[name[len(prefix) + 1:]] = value
    try:
        return base.replace(**core, arch_params=arch)
    except VsepError as exc:
        raise ChainError(f"{where}: {exc}") from None


class ChainRunner:
    """Runs chains with one set of chain-wide settings on one device, keeping stems in `cache`.

    `cache` None keeps them in a temporary folder removed after each run (``--no-cache``). `stats`
    describes the last run.
    """

    def __init__(self, settings: Settings, device: Device | None = None, cache: StemCache | None = None,
                 progress_factory: ProgressFactory | None = None):
        if not settings.model_file_dir:
            from vsep_core import config

            settings = settings.replace(model_file_dir=str(config.default_model_dir()))
        self.settings = settings
        self._device = device
        self.cache = cache
        self.progress_factory = progress_factory
        self.stats = ChainStats()
        # resolves model names to files only: never loads, so it needs no device chosen yet
        self._base_loader = ModelLoader(settings, device or Device("cpu", (), "not chosen"))
        self._loaders: dict[str, ModelLoader] = {}

    @property
    def device(self) -> Device:
        """Where models run: the one given, else the device plugin's choice (made when first needed)."""
        if self._device is None:
            from vsep_core import plugins

            st = self.settings
            self._device = plugins.get_plugin_manager().hook.vsep_select_device(request=st.device,
                                                                               use_directml=st.use_directml)
        return self._device

    # -- checking ----------------------------------------------------------------------------------------

    def check(self, chain: Chain) -> dict[str, Settings]:
        """Everything that can be checked without running a model (see the module doc); returns each needed
        step's settings. Raises a one-line :class:`ChainError` naming the step."""
        from vsep_core import catalog, plugins
        from vsep_core.params import build_params

        settings = {name: step_settings(self.settings, chain.steps[name]) for name in chain.needed()}
        model_stems: dict[str, list[str] | None] = {}
        for name, st in settings.items():
            step = chain.steps[name]
            if not step.runs_models:
                continue
            if step.algorithm is not None:
                from vsep_core.ensemble import get_algorithm

                try:
                    get_algorithm(step.algorithm)
                except VsepError as exc:
                    raise ChainError(f"chain step {name!r}: {exc}") from None
            stems: list[str] | None = []
            for model in step.models:
                model_dir, filename = self._base_loader.model_dir_for(model)
                try:
                    record = catalog.resolve_model(filename, model_dir)
                    arch = plugins.get_architecture(record.architecture, record)
                    build_params(arch, st.arch_params.get(arch.flag_prefix))
                except VsepError as exc:
                    raise ChainError(f"chain step {name!r}: {exc}") from None
                given = list(record.stems)
                if not given:
                    stems = None
                    continue
                if st.extract_instrumental and not any(s.lower() == "instrumental" for s in given):
                    given.append(pipeline.INSTRUMENTAL)
                if step.kind != "model":
                    from vsep_core.ensemble_run import canonical_stem

                    given = [canonical_stem(s, given) for s in given]
                if stems is not None:
                    stems.extend(s for s in given if s.lower() not in {x.lower() for x in stems})
            model_stems[name] = stems
        check_stems(chain, model_stems)
        if self.settings.output_single_stem:
            raise ChainError("a chain writes the outputs it names: leave out --single_stem")
        fmt = audio_io.check_output_format(self.settings.output_format)
        if fmt == audio_io.STEM_FORMAT:
            raise ChainError("a chain writes one file per output: choose another --output_format than STEM")
        return settings

    # -- keys --------------------------------------------------------------------------------------------

    def _loader(self, st: Settings) -> ModelLoader:
        key = json.dumps(st.to_dict(), sort_keys=True, default=str)
        if key not in self._loaders:
            self._loaders[key] = ModelLoader(st, self.device)
        return self._loaders[key]

    def _model_fingerprint(self, model: str, st: Settings, cache: StemCache, fetch: bool) -> dict[str, Any] | None:
        """What decides a model's stems besides its input; None when its files are not here and `fetch` is False."""
        from vsep_core import catalog, plugins
        from vsep_core.params import build_params, params_dict

        loader = self._base_loader  # the model folder and offline mode are the chain's, the same for every step
        if fetch:
            record, files, _ = loader.fetch(model)
        else:
            model_dir, filename = loader.model_dir_for(model)
            record = catalog.resolve_model(filename, model_dir)
            files = {f.name: model_dir / f.name for f in record.files}
            if not all(p.is_file() for p in files.values()):
                return None
        arch = plugins.get_architecture(record.architecture, record)
        return {"model": record.filename, "architecture": arch.name, "plugin": _plugin_version(arch.package),
                "files": {name: cache.file_hash(path) for name, path in sorted(files.items())},
                "params": params_dict(build_params(arch, st.arch_params.get(arch.flag_prefix))),
                "core": {k: getattr(st, k) for k in STEM_OPTIONS}}

    def keys(self, chain: Chain, input_path: Path, settings: Mapping[str, Settings], cache: StemCache,
             fetch: bool = True) -> dict[str, str | None]:
        """The cache key of every needed step (None where a model's files are not here and `fetch` is False)."""
        from vsep_core import __version__

        song = {"song": cache.file_hash(input_path)}
        keys: dict[str, str | None] = {}

        def source(ref: StemRef) -> Any:
            if ref.step == SONG:
                return song
            parent = keys[ref.step]
            return None if parent is None else {"step": parent, "stem": (ref.stem or "").lower()}

        for name, st in settings.items():
            step = chain.steps[name]
            inputs = [source(r) for r in step.inputs]
            if any(i is None for i in inputs):
                keys[name] = None
                continue
            if step.runs_models:
                prints = [self._model_fingerprint(m, st, cache, fetch) for m in step.models]
                if any(p is None for p in prints):
                    keys[name] = None
                    continue
                parts: dict[str, Any] = {"op": step.kind, "models": prints, "input": inputs[0], "vsep": __version__}
                if step.kind != "model":
                    parts.update(algorithm=step.algorithm, weights=step.weights)
            else:
                parts = {"op": step.kind, "inputs": inputs, "weights": step.weights}
            keys[name] = make_key(parts)
        return keys

    def status(self, chain: Chain, input_path: str | Path) -> dict[str, bool | None]:
        """Whether each needed step's stems are in the cache for this input (None: a model is not downloaded)."""
        settings = self.check(chain)
        cache = self.cache or StemCache.temporary()
        try:
            keys = self.keys(chain, Path(input_path), settings, cache, fetch=False)
            return {n: None if k is None else cache.has(k) for n, k in keys.items()}
        finally:
            if self.cache is None:
                cache.remove_all()

    # -- running -----------------------------------------------------------------------------------------

    def run(self, chain: Chain, input_path: str | Path, output_dir: str | Path | None = None,
            custom_output_names: dict[str, str] | None = None) -> list[Path]:
        """Run `chain` on one input and write its outputs to `output_dir` (default: the settings'); returns
        the written paths in the order of the chain's outputs."""
        input_path = Path(input_path)
        settings = self.check(chain)
        st = self.settings
        info = audio_io.probe(input_path)
        if info.frames == 0:
            from vsep_core.errors import AudioReadError

            raise AudioReadError(f"input has no audio samples: {input_path}")
        fmt = audio_io.check_output_format(st.output_format)
        bit_depth = st.output_bit_depth or info.bit_depth
        if fmt in audio_io.LOSSLESS_FORMATS:
            audio_io.output_subtype(fmt, bit_depth)  # fail before the work, not after it
        out_dir = Path(output_dir or st.output_dir or ".")
        from vsep_core.options import check_custom_output_names

        check_custom_output_names(custom_output_names, list(chain.outputs), "the chain")
        out_paths = {name: out_dir / pipeline.stem_output_name(input_path, name, chain.name, fmt, custom_output_names)
                     for name in chain.outputs}
        pipeline.check_output_paths(list(out_paths.values()))
        cache = self.cache or StemCache.temporary()
        self.stats = ChainStats()
        loads_before = self._loads()
        started = time.perf_counter()
        try:
            keys = self.keys(chain, input_path, settings, cache)
            entries: dict[str, Entry] = {}
            remaining = self._uses(chain, settings, keys, cache)
            for name in settings:
                step = chain.steps[name]
                key = keys[name]
                assert key is not None
                found = cache.get(key)
                if found is not None:
                    entries[name] = found
                    self.stats.cached.append(name)
                    log.info("%s: step %s: from the cache", input_path.name, name)
                    continue
                t0 = time.perf_counter()
                inputs = [self._stem(chain, r, entries, input_path, f"chain step {name!r}") for r in step.inputs]
                builder = cache.begin(key)
                try:
                    if step.runs_models:
                        self._run_models(step, settings[name], inputs[0], builder, input_path.name)
                    else:
                        self._combine(step, inputs, builder, st.sample_rate)
                    entries[name] = cache.commit(builder, {"step": name, "chain": chain.name, "what": step.describe(),
                                                           "input": input_path.name})
                except BaseException:
                    cache.abort(builder)
                    raise
                finally:
                    self._release(step, settings[name], remaining)
                self.stats.ran.append(name)
                self.stats.seconds[name] = time.perf_counter() - t0
                log.info("%s: step %s (%s) done in %.2f s", input_path.name, name, step.describe(),
                         self.stats.seconds[name])
            out_length = resample_methods.output_length(info.frames, info.sample_rate, st.sample_rate)
            opts = pipeline.OutputOptions(output_dir=out_dir, output_format=fmt, output_bitrate=st.output_bitrate,
                                          output_bit_depth=st.output_bit_depth,
                                          normalization_threshold=st.normalization_threshold,
                                          amplification_threshold=st.amplification_threshold,
                                          sample_rate=st.sample_rate)
            from vsep_core.publish import staged

            out_dir.mkdir(parents=True, exist_ok=True)
            written = []
            with staged() as files:  # every output, or none: renamed into place together
                for out_name, ref in chain.outputs.items():
                    stem = self._stem(chain, ref, entries, input_path, f"chain output {out_name!r}")
                    pipeline.write_stem(stem, out_paths[out_name], opts, stem_rate(stem, st.sample_rate), out_length,
                                        bit_depth, files)
                    written.append(out_paths[out_name])
            for path in written:
                log.info("wrote %s", path)
            if self.cache is not None:
                cache.evict(keep={k for k in keys.values() if k})
            self.stats.model_loads = self._loads() - loads_before
            log.info("ran chain %s on %s in %.2f s (%d step(s) run, %d from the cache)", chain.name,
                     input_path.name, time.perf_counter() - started, len(self.stats.ran), len(self.stats.cached))
            return written
        finally:
            self.stats.model_loads = self._loads() - loads_before
            for loader in self._loaders.values():
                loader.forget()
            if self.cache is None:
                cache.remove_all()

    def _loads(self) -> int:
        return sum(loader.loads for loader in self._loaders.values())

    def _uses(self, chain: Chain, settings: Mapping[str, Settings], keys: Mapping[str, str | None],
              cache: StemCache) -> dict[tuple[str, str], int]:
        """How many steps still to run use each (settings, model): a model is let go after its last one."""
        uses: dict[tuple[str, str], int] = {}
        for name, st in settings.items():
            step = chain.steps[name]
            key = keys[name]
            if step.runs_models and (key is None or not cache.has(key)):
                for model in step.models:
                    ident = (json.dumps(st.to_dict(), sort_keys=True, default=str), model)
                    uses[ident] = uses.get(ident, 0) + 1
        return uses

    def _release(self, step: Step, st: Settings, remaining: dict[tuple[str, str], int]) -> None:
        if not step.runs_models:
            return
        settings_key = json.dumps(st.to_dict(), sort_keys=True, default=str)
        for model in step.models:
            ident = (settings_key, model)
            remaining[ident] = remaining.get(ident, 1) - 1
        if not any(n > 0 for (s, _), n in remaining.items() if s == settings_key):
            self._loader(st).forget()

    def _stem(self, chain: Chain, ref: StemRef, entries: Mapping[str, Entry], song: Path,
              where: str) -> StoredStem | Path:
        """The stem `ref` names (a rename step is followed to its source); the song is its path."""
        if ref.step == SONG:
            return song
        entry = entries[ref.step]
        return entry.stem(match_stem(ref, list(entry.stems), where))

    def _run_models(self, step: Step, st: Settings, source: StoredStem | Path, builder: Any, song_name: str) -> None:
        """Separate `source` with the step's model(s) and store every stem in `builder`."""
        path = source.path if isinstance(source, StoredStem) else source
        info = audio_io.probe(path)
        out_length = resample_methods.output_length(info.frames, info.sample_rate, st.sample_rate)
        loader = self._loader(st)
        loader.reserve(len(step.models))
        opts = pipeline.OutputOptions(output_dir=builder.folder / "raw", output_format="WAV", output_bit_depth=32,
                                      normalization_threshold=st.normalization_threshold,
                                      amplification_threshold=st.amplification_threshold, sample_rate=st.sample_rate,
                                      chunk_duration=st.chunk_duration, extract_instrumental=st.extract_instrumental,
                                      use_tta=st.use_tta)
        description = f"{song_name} · step {step.name}"
        try:
            if step.kind == "model":
                loaded = loader.load(step.models[0])
                progress = self.progress_factory(f"{description} · {loaded.name}") if self.progress_factory else None
                workdir = builder.folder / "work"
                workdir.mkdir()
                source_mix = pipeline.mix_source(info, loaded.model, loaded.channels)
                stems = pipeline.separate_audio(loaded.model, source_mix, opts, workdir, progress, loaded.channels)
                self.stats.model_runs += 1
                for stem, data in stems.items():
                    blocks = pipeline.resampled_blocks(data, loaded.model.sample_rate, st.sample_rate, out_length, 1.0)
                    write_stem_file(builder.path_for(stem), blocks, st.sample_rate, data.shape[0])
                for data in stems.values():
                    if isinstance(data, pipeline.DiskStem):
                        data.close()
                del stems
                shutil.rmtree(workdir, ignore_errors=True)
                return
            from vsep_core import ensemble_run

            models = [loader.load(m) for m in step.models]
            factory = (lambda text: self.progress_factory(f"{description} · {text}")) if self.progress_factory \
                else None
            weights = list(step.weights) if step.weights else None
            written = ensemble_run.separate_ensemble(models, path, opts, step.algorithm, weights, "chain", None,
                                                     factory, normalize=False)
            self.stats.model_runs += len(models)
            prefix, suffix = f"{pipeline.sanitize_filename(path.stem)}_(", ")_chain.wav"
            for file in written:
                stem = file.name[len(prefix):-len(suffix)] if file.name.startswith(prefix) else file.stem
                Path(file).rename(builder.path_for(stem))
            shutil.rmtree(opts.output_dir, ignore_errors=True)
        except VsepError as exc:
            exc.args = (f"chain step {step.name!r}: {exc}", *exc.args[1:])
            raise
        except Exception as exc:
            raise ModelRunError(f"chain step {step.name!r} failed: {type(exc).__name__}: {exc}") from exc

    def _combine(self, step: Step, inputs: list[StoredStem | Path], builder: Any, rate: int) -> None:
        """Subtract, mix, phase-fix or rename stems, streaming them from disk."""
        waves = [s if isinstance(s, StoredStem) else StoredStem(s) for s in inputs]
        where = f"chain step {step.name!r}"
        for wave in waves:
            if wave.sample_rate != rate or wave.shape[1] != waves[0].shape[1]:
                raise ChainError(f"{where}: its inputs differ in rate or length ({wave.path.name}: {wave.sample_rate} "
                                 f"Hz, {wave.shape[1]} samples); convert the song to {rate} Hz first")
        channels = max(w.shape[0] for w in waves)
        write_stem_file(builder.path_for(step.name), combine_blocks(step, waves, channels), rate, channels)


def combine_blocks(step: Step, waves: list[StoredStem], channels: int) -> Iterator[np.ndarray]:
    """The combining step's result as consecutive float32 blocks [channels, k].

    subtract: a - b; mix: the weighted sum (weights default to 1); rename: the stem itself; phase_fix:
    the magnitude of the first stem's STFT with the phase of the second's (librosa-convention STFT of
    :mod:`vsep_core.ensemble`), inverted to the same length.
    """
    n = waves[0].shape[1]
    if step.kind == "phase_fix":
        from vsep_core.ensemble import spectral_blocks

        matched = [_Channels(w, channels) for w in waves]
        yield from spectral_blocks(matched, _phase_fix)
        return
    weights = step.weights or (1.0,) * len(waves)
    for start in range(0, n, BLOCK):
        parts = [audio_io.match_channels(w[:, start:start + BLOCK], channels) for w in waves]
        if step.kind == "subtract":
            yield parts[0] - parts[1]
        elif step.kind == "mix":
            out = parts[0] * np.float32(weights[0]) if weights[0] != 1.0 else parts[0].copy()
            for w, part in zip(weights[1:], parts[1:], strict=True):
                out += part * np.float32(w) if w != 1.0 else part
            yield out
        else:
            yield parts[0]


class _Channels:
    """A stored stem seen with `channels` channels (mono duplicated), sliced like an array."""

    def __init__(self, stem: StoredStem, channels: int):
        self.stem = stem
        self.shape = (channels, stem.shape[1])

    def __getitem__(self, key: Any) -> np.ndarray:
        return audio_io.match_channels(self.stem[key], self.shape[0])


def _phase_fix(spec: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return np.abs(spec[0]) * np.exp(1j * np.angle(spec[1]))


def stem_rate(stem: StoredStem | Path, default: int) -> int:
    """A stored stem's rate (the song's own rate when an output names the song)."""
    return stem.sample_rate if isinstance(stem, StoredStem) else default


def _plugin_version(package: str) -> str | None:
    import importlib.metadata as md

    try:
        return md.version(package) if package else None
    except md.PackageNotFoundError:
        return None
