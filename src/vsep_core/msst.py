"""MSST-format helpers: reading the yaml of a Music-Source-Separation-Training checkpoint and running a
network as MSST's inference.py does (core's generic demix). Shared by plugins of MSST-format families.

No torch at import time: the claim rule runs for every ``vsep separate``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vsep_core import helpers
from vsep_core.api import Architecture, LoadContext, Progress, SeparationModel, param
from vsep_core.chunking import DemixPlan, demix, standardize
from vsep_core.errors import ModelDataError

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class MsstParams:
    """Parameters every MSST-format family takes (a plugin's params dataclass adds its ``model_type``)."""

    overlap: int | None = param(None, "windows covering each sample (MSST's num_overlap); default: the yaml's "
                                      "inference.num_overlap", min=1, max=50)
    batch_size: int | None = param(None, "chunks per forward pass (speed and memory only); default: the yaml's "
                                         "inference.batch_size", min=1)


def params_class(name: str, model_type: str, doc: str, module: str) -> type[MsstParams]:
    """A params dataclass `name` (in `module`): :class:`MsstParams` plus ``model_type``, which accepts only
    `model_type` (the default: recognised from the yaml)."""
    cls = dataclasses.make_dataclass(name, [(
        "model_type", "str | None",
        param(None, f"MSST model type of the checkpoint; only '{model_type}' is accepted (default: recognised "
                    "from the yaml's keys)", choices=(model_type,)))], bases=(MsstParams,))
    cls.__doc__, cls.__module__ = doc, module
    return cls


def architecture_hook(name: str, flag_prefix: str, params: type[MsstParams], package: str, model_module: str,
                      claims: Callable[[Path], bool], extensions: tuple[str, ...]) -> Callable[[], list[Architecture]]:
    """The ``vsep_architectures`` hook implementation of an MSST-format family: a checkpoint that `claims`
    accepts (its yaml beside it), loaded by ``<model_module>.load_model`` (imported only when a model loads:
    plugins stay light to import). A plugin module assigns it as ``vsep_architectures``."""
    from vsep_core.hookspecs import hookimpl

    def load(ctx: LoadContext) -> SeparationModel:
        return importlib.import_module(model_module).load_model(ctx)

    @hookimpl
    def vsep_architectures() -> list[Architecture]:
        return [Architecture(name=name, flag_prefix=flag_prefix, params=params, load=load, package=package,
                             extensions=extensions, claims=claims)]

    vsep_architectures.__doc__ = f"{name}: MSST-format checkpoints with their yaml beside them."
    return vsep_architectures


class MsstYamlLoader(yaml.SafeLoader):
    """How MSST's yamls read: a SafeLoader (no Python objects) that turns ``!!python/tuple`` into a list and
    reads exponent floats without a dot (``1e-3``) as floats, as YAML 1.2 and OmegaConf do."""


MsstYamlLoader.add_constructor("tag:yaml.org,2002:python/tuple",
                               lambda loader, node: loader.construct_sequence(node, deep=True))
MsstYamlLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
MsstYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def read_msst_yaml(path: str | Path) -> dict[str, Any]:
    """Parse an MSST yaml with :class:`MsstYamlLoader` into plain dicts/lists; ValueError when it is not a
    mapping."""
    data = helpers.load_yaml(path, MsstYamlLoader, ValueError)
    if not isinstance(data, dict):
        raise ValueError(f"{Path(path).name} does not hold a yaml mapping")
    return data


class ConfigError(ValueError):
    """The yaml is not a usable config of the family; the message names the key."""


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a yaml with core's safe config loader (``!!python/tuple`` allowed, no other Python tags); a
    mapping or ConfigError."""
    try:
        data = helpers.load_yaml(path)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{Path(path).name} is not valid yaml: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{Path(path).name} does not hold a mapping")
    return data


def stated_model_type(config: Mapping[str, Any]) -> str | None:
    """The model type a yaml states (``model_type`` at the top or under ``training``), or None."""
    for section in (config, config.get("training")):
        if isinstance(section, Mapping) and isinstance(section.get("model_type"), str):
            return section["model_type"].strip().lower()
    return None


def config_beside(path: Path) -> Path | None:
    """The yaml beside a checkpoint (same stem), if there is one."""
    return next((path.with_suffix(s) for s in YAML_SUFFIXES if path.with_suffix(s).is_file()), None)


@functools.lru_cache(maxsize=128)
def _claims_cached(describes: Callable[[Mapping[str, Any]], bool], yaml_path: str, mtime: float) -> bool:
    try:
        return describes(load_yaml(yaml_path))
    except (OSError, ValueError):  # ConfigError, or ModelDataError for a yaml that does not parse
        return False


def yaml_beside_claims(path: Path, describes: Callable[[Mapping[str, Any]], bool]) -> bool:
    """True for a checkpoint whose yaml beside it `describes` accepts (cached by the yaml's mtime)."""
    yaml_path = config_beside(Path(path))
    return yaml_path is not None and _claims_cached(describes, str(yaml_path), yaml_path.stat().st_mtime)


@dataclass(frozen=True)
class InferenceSettings:
    """How MSST's inference.py runs the model: chunking, normalisation, sample rate, channels."""

    sample_rate: int
    channels: int
    chunk_size: int
    num_overlap: int
    batch_size: int
    normalize: bool
    instruments: tuple[str, ...] = ()


def section(config: Mapping[str, Any], name: str, required: bool = True) -> Mapping[str, Any]:
    """``config[name]`` as a mapping; ConfigError when it is missing (or ``{}`` when not `required`)."""
    value = config.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"the yaml has no '{name}' section")
    return value


def positive_int(values: Mapping[str, Any], where: str, key: str, default: int | None = None) -> int:
    """``values[key]`` as a positive int (else `default`); ConfigError naming ``where.key``."""
    value = values.get(key, default)
    if value is None:
        raise ConfigError(f"the yaml has no '{where}.{key}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value <= 0:
        raise ConfigError(f"'{where}.{key}' must be a positive whole number, not {value!r}")
    return int(value)


def inference_settings(config: Mapping[str, Any], default_chunk: int | None = None,
                       instruments: bool = False) -> InferenceSettings:
    """MSST's settings: ``inference.chunk_size`` else ``audio.chunk_size`` (else `default_chunk`),
    ``inference.num_overlap``, ``inference.batch_size``, ``inference.normalize``, ``audio.sample_rate``
    (44100 when absent), ``audio.num_channels`` (2 when absent); with `instruments`, also
    ``training.instruments`` (or ``training.target_instrument`` alone when it is set, as MSST's
    prefer_target_instrument)."""
    audio = section(config, "audio")
    inference = section(config, "inference")
    training = section(config, "training", required=False) if instruments else {}
    if inference.get("chunk_size") is not None:
        chunk = positive_int(inference, "inference", "chunk_size")
    else:
        chunk = positive_int(audio, "audio", "chunk_size", default_chunk)
    channels = positive_int(audio, "audio", "num_channels", 2)
    if channels not in (1, 2):
        raise ConfigError(f"'audio.num_channels' must be 1 or 2, not {channels}")
    target = training.get("target_instrument")
    names = [str(target)] if target else [str(i) for i in (training.get("instruments") or [])]
    return InferenceSettings(
        sample_rate=positive_int(audio, "audio", "sample_rate", 44100), channels=channels, chunk_size=chunk,
        num_overlap=positive_int(inference, "inference", "num_overlap"),
        batch_size=positive_int(inference, "inference", "batch_size", 1),
        normalize=inference.get("normalize") is True, instruments=tuple(names))


def check_model_type(config: Mapping[str, Any], explicit: str | None, model_type: str, package: str) -> None:
    """ConfigError when an explicit type, or the type the yaml states, is not `model_type` (the network
    settings themselves are checked key by key when the network is built)."""
    if explicit is not None and explicit.strip().lower() != model_type:
        raise ConfigError(f"model type {explicit!r} was given, but {package} runs only '{model_type}'")
    stated = stated_model_type(config)
    if stated is not None and stated != model_type:
        raise ConfigError(f"the yaml says model_type {stated!r}; {package} runs only '{model_type}'")


def load_checkpoint(ctx: LoadContext, model_type: str, package: str,
                    build: Callable[[Mapping[str, Any]], tuple[Any, InferenceSettings, list[str]]], *,
                    drop_prefixes: tuple[str, ...] = (), ignore: tuple[str, ...] = (),
                    model_class: type[MsstModel] | None = None) -> MsstModel:
    """Load an MSST checkpoint with its yaml: check the model type (`model_type`, named by `package` in
    errors), let `build(config)` make the network (random weights), its settings and output names, read the
    checkpoint safely into it (:mod:`vsep_core.checkpoints`, dropping `drop_prefixes`, ignoring `ignore`)
    and wrap it in `model_class` (:class:`MsstModel`) with the call's ``overlap`` and ``batch_size``.
    A ConfigError becomes ModelDataError naming the yaml."""
    from vsep_core.checkpoints import load_strict, read_state_dict

    config_path = required_config(ctx)
    with config_errors_as_model_data(config_path.name):
        config = load_yaml(config_path)
        check_model_type(config, getattr(ctx.params, "model_type", None), model_type, package)
        net, settings, stems = build(config)
    load_strict(net, read_state_dict(ctx.model_path, drop_prefixes), ctx.model_path.name, ignore)
    model = (model_class or MsstModel)(net, settings, stems, ctx.device.torch_device,
                                       getattr(ctx.params, "overlap", None), getattr(ctx.params, "batch_size", None))
    model.precision = ctx.precision
    return model


def required_config(ctx: LoadContext) -> Path:
    """The yaml of the checkpoint being loaded; ModelDataError when there is none."""
    if ctx.config_path is None:
        raise ModelDataError(f"{ctx.model_path.name} needs its MSST yaml beside it as {ctx.model_path.stem}.yaml")
    return ctx.config_path


@contextlib.contextmanager
def config_errors_as_model_data(name: str) -> Iterator[None]:
    """Turn a ConfigError raised in the block into ModelDataError prefixed with `name` (the yaml's)."""
    try:
        yield
    except ConfigError as exc:
        raise ModelDataError(f"{name}: {exc}") from exc


class MsstModel:
    """A loaded network run as MSST's demix (generic mode): float32 [channels, samples] at ``sample_rate``
    -> {stem: same shape}. The network returns [batch, stems, channels, samples], or [batch, channels,
    samples] when it has one output."""

    def __init__(self, net: Any, settings: InferenceSettings, stems: list[str], device: str = "cpu",
                 overlap: int | None = None, batch_size: int | None = None) -> None:
        self.net = net.to(device).eval()
        self.settings = settings
        self.device = device
        self.sample_rate = settings.sample_rate
        self.channels = settings.channels  # audio.num_channels: 1 for a mono model (MSST keeps a mono file mono)
        self.stems = stems
        self.plan = DemixPlan.generic(settings.chunk_size, overlap or settings.num_overlap)
        self.batch_size = batch_size or settings.batch_size
        self.precision = "fp32"  # LoadContext.precision (set by load_checkpoint): bf16/fp16 run under autocast

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        from vsep_core.helpers import precision_autocast

        with torch.inference_mode(), precision_autocast(torch.device(self.device).type, self.precision):
            out = self.net(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        return out.float().cpu().numpy()

    def separate(self, audio: np.ndarray, progress: Progress | None = None) -> dict[str, np.ndarray]:
        """Separate as MSST's demix (generic mode); every stem exactly as long as `audio`."""
        mix = helpers.mono_or_stereo(audio, f"{type(self).__name__}s", channels=(1,) if self.channels == 1 else (1, 2))
        if self.settings.normalize:
            mix, mean, std = standardize(mix)
        out = demix(mix, self._run, self.plan, self.batch_size, progress)
        if self.settings.normalize:
            out = out * np.float32(std) + np.float32(mean)
        if out.ndim == mix.ndim:
            out = out[None]
        return {stem: np.ascontiguousarray(out[i]) for i, stem in enumerate(self.stems)}
