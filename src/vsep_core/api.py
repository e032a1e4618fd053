"""The objects that plugins hand to core and core hands to plugins.

A plugin module must stay cheap to import (no torch, no onnxruntime at module level):
`vsep --help` imports every plugin. Heavy imports go inside `Architecture.load`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

Progress = Callable[[int, int], None]
"""progress(done, total): called by a model as it works through its chunks."""


def param(default: Any, help: str, *, min: float | None = None, max: float | None = None,
          choices: tuple | None = None) -> Any:
    """A typed architecture parameter: a dataclass field whose metadata builds the CLI flag.

    The CLI turns field `overlap` of architecture prefix `mdxc` into `--mdxc_overlap`,
    with the field's type, default, range and help. `min`/`max` are inclusive.
    """
    return field(default=default, metadata={"help": help, "min": min, "max": max, "choices": choices})


@dataclass(frozen=True)
class DownloadFile:
    """One file a model needs and where it comes from.

    `url` is the first source and `mirrors` the next ones, tried in order; a ``file:`` URL (a
    file packaged with the plugin) is copied without a request. The plugin fills them (see
    :mod:`vsep_core.sources` for UVR's repository layout); a file with no source can only be
    used when it is already in the model directory. `listed_by_name`: the reference's model
    lists give this file by its name, not its URL (files of UVR's repository).
    """

    name: str
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    mirrors: tuple[str, ...] = ()
    listed_by_name: bool = False

    @property
    def sources(self) -> tuple[str, ...]:
        """Every source in the order they are tried."""
        return ((self.url,) if self.url else ()) + tuple(self.mirrors)


@dataclass
class ModelRecord:
    """One catalogue entry. `filename` is what users pass with `-m`.

    `license` is the weights' licence as its authors state it (e.g. "MIT", "CC BY-NC 4.0",
    "unknown"); `provenance` says where they come from when a user should know before using
    them (e.g. "converted from a proprietary app's weights").
    """

    filename: str
    architecture: str
    friendly_name: str
    files: list[DownloadFile]
    stems: list[str] = field(default_factory=list)
    target_stem: str | None = None
    config: str | None = None
    vip: bool = False
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    package: str | None = None
    license: str | None = None
    provenance: str | None = None
    cost: ModelCost | None = None

    @property
    def download_files(self) -> list[str]:
        """File names or URLs in the reference's `download_files` shape."""
        return [f.url if f.url and f.url.startswith(("http://", "https://")) and not f.listed_by_name else f.name
                for f in self.files]


@dataclass(frozen=True)
class ModelCost:
    """What one second of audio costs a model at its default settings (counted, never typed in).

    Per second of audio: `matmul_flops` and `conv_flops` (model FLOPs, as torch's flop counter
    counts them), `other_bytes` (bytes read and written by every other op: norms, activations,
    STFTs, copies), `ops` (operators dispatched) and `passes` (network forward passes, which the
    default overlap/shifts imply). `weight_bytes`: the network's weights; `activation_bytes`: the
    most memory one pass holds at once. Made by :func:`vsep_core.cost.count_cost` from an
    architecture's :class:`CostPass` list; plugins store them with their catalogue records.
    """

    matmul_flops: float
    conv_flops: float
    other_bytes: float
    ops: float
    passes: float
    weight_bytes: int
    activation_bytes: int

    @property
    def flops(self) -> float:
        """Model FLOPs per second of audio."""
        return self.matmul_flops + self.conv_flops


@dataclass(frozen=True)
class CostPass:
    """One kind of network forward pass and how many of them a second of audio takes.

    `build` makes the network (torch ``nn.Module``; weights need not be loaded: core builds it on
    torch's meta device and only counts); `input_shapes`: the float32 inputs of one pass, batch
    included; `passes_per_second`: passes per second of audio at the params asked for (overlap,
    shifts, batch size). A model that is not a torch network (ONNX) gives a torch twin of its graph.
    """

    build: Callable[[], Any]
    input_shapes: tuple[tuple[int, ...], ...]
    passes_per_second: float


@dataclass(frozen=True)
class HashTable:
    """Model-file-hash -> parameters (UVR's model_data_new.json shape).

    `model_dir_filename` is the JSON in the model directory merged over the packaged
    entries (the reference downloads it there; the oracle relies on it). Tables are searched
    by ascending `priority` (a hash found in two tables belongs to the first).
    """

    architecture: str
    model_dir_filename: str
    entries: dict[str, dict[str, Any]]
    priority: int = 100


@dataclass(frozen=True)
class Device:
    """Where models run: a torch device string and the ONNX Runtime providers in order."""

    torch_device: str
    onnx_providers: tuple[str, ...]
    description: str = ""


P = TypeVar("P")
"""The params dataclass of one architecture (see :func:`param`)."""


@dataclass
class LoadContext(Generic[P]):
    """Everything a loader needs. Paths are on disk already; nothing here touches the network.
    `params` is an instance of the architecture's params dataclass, validated by core."""

    record: ModelRecord
    model_path: Path
    model_dir: Path
    config_path: Path | None
    params: P
    device: Device
    normalization_threshold: float = 0.9
    amplification_threshold: float = 0.0
    invert_using_spec: bool = False
    use_torch_compile: bool = False
    precision: str = "fp32"  # fp32, bf16 or fp16, resolved for the device (vsep_core.devices.resolve_precision)
    # the stems the run writes when it writes fewer than all (--single_stem), else None: a model may then skip
    # work only other stems need and return just these (a name matching none of its stems: return all)
    wanted_stems: tuple[str, ...] | None = None
    model_data: dict[str, Any] = field(default_factory=dict)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("vsep"))


@runtime_checkable
class SeparationModel(Protocol):
    """A loaded model: pure arrays in, stems out; no file I/O, no printing, no global state."""

    sample_rate: int
    stems: list[str]
    # Optional: `input_resampler` (a librosa res_type name of vsep_core.resample, e.g. "kaiser_fast") when the
    # model's reference loads its input with another resampler than soxr HQ; core then resamples with it.

    def separate(self, audio: np.ndarray, progress: Progress | None = None) -> dict[str, np.ndarray]:
        """audio float32 [channels, samples] at `sample_rate` -> {stem: float32 [channels, samples]}.

        Every stem has exactly the input's number of samples; dict order is output order.
        """
        ...


@dataclass
class Architecture(Generic[P]):
    """A family of models a plugin adds.

    name: catalogue type ("MDXC"); flag_prefix: CLI/params prefix ("mdxc" -> --mdxc_overlap,
    `mdxc_params`); params: a dataclass built with `param()`; package: the pip distribution;
    extensions: suffixes of model files it can load that are in no catalogue (a plugin
    confirms with `claims`; two plugins claiming one file is an error); load: LoadContext ->
    SeparationModel; channels: what the model takes when its loaded model does not say (see
    `SeparationModel`); export_onnx (optional): (model path, output path, model data) -> the
    written ONNX file, for `vsep export-onnx`; self_describing (optional): whether a file whose
    hash is in no hash table carries its own parameters (loaded with empty model data instead
    of the "unknown hash" error); catalogue_rank: where the family's models come in listings
    (lower first); cost_passes (optional): LoadContext -> the :class:`CostPass` list one second of
    audio costs at ``ctx.params`` (``ctx.model_path`` may be absent: the catalogue's costs are
    counted from configs; ``ctx.device`` is not used), for `vsep advise`; without it the family's
    models have unknown time; calibration_passes (optional): a small network of the family
    (well under a second per pass) that `vsep bench --quick` runs for real to check the time model.
    """

    name: str
    flag_prefix: str
    params: type[P]
    load: Callable[[LoadContext[P]], SeparationModel]
    package: str = ""
    extensions: tuple[str, ...] = ()
    claims: Callable[[Path], bool] | None = None
    channels: int = 2
    export_onnx: Callable[[Path, Path, dict], Path] | None = None
    self_describing: Callable[[Path], bool] | None = None
    catalogue_rank: int = 100
    cost_passes: Callable[[LoadContext], list[CostPass]] | None = None
    calibration_passes: Callable[[], list[CostPass]] | None = None

    def default_params(self) -> P:
        """An instance of the params dataclass with every default."""
        return self.params()

    def param_fields(self) -> list[dataclasses.Field]:
        """The typed fields of the params dataclass, in declaration order."""
        return list(dataclasses.fields(self.params))
