"""Loading an MDXC checkpoint and running it: chunking, overlap-add, pitch shift, stems.

Two inference styles (docs/mdxc.md): ``msst`` runs the model as MSST's ``inference.py`` does (core's
`vsep_core.chunking.demix` with the yaml's chunk size and overlap, ``inference.normalize``, ``zero_dc``,
MSST's stems, no peak normalisation); ``audio_separator`` as audio-separator 0.47.1 does. The default
is ``audio_separator`` for a file of audio-separator's model list, ``msst`` for any other.

In the ``audio_separator`` style, numbers follow the reference implementation (``MDXCSeparator``):

- the mix is peak-normalised to ``normalization_threshold`` (or amplified to
  ``amplification_threshold``) before separation: the model declares ``input_peak_normalization =
  "keep_level"`` and core applies one gain found over the whole input; every stem is peak-normalised
  the same way by core's writer;
- inputs shorter than 10 s (or ``override_model_segment_size``) use ``segment_size`` STFT frames
  per chunk instead of the yaml's ``inference.dim_t``;
- MDX23C: chunk = ``audio.hop_length * (dim_t - 1)``, hop = chunk // overlap, zero padding of
  chunk - hop on both sides, rectangular overlap-add, division by ``overlap``;
- RoFormer: chunk = ``stft_hop_length * (dim_t - 1)``, step = chunk // overlap, starts 0, step, ...
  with the last window aligned to the end, symmetric Hamming weights, division by the summed
  weights; an input shorter than a chunk is one chunk;
- ``overlap``/``batch_size`` default to the yaml's ``inference.num_overlap``/``batch_size`` (else 8/1).

Deliberate differences (docs/mdxc.md): chunks are batched for RoFormers too, RoFormer outputs
always cover the whole chunk (the reference leaves up to one STFT hop at the end of a short
input silent in the target), ``skip_connection`` and Mel ``mlp_expansion_factor`` are honoured,
and target models with more than two instruments name their residual ``secondary_stem(target)``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from vsep_core.api import LoadContext, Progress
from vsep_core.checkpoints import check_tensors, torch_load
from vsep_core.chunking import DemixPlan, demix, standardize
from vsep_core.errors import ModelDataError, ModelLoadError, UsageError
from vsep_core.helpers import channels_first, half_dtype, precision_autocast
from vsep_core.matmul import use_onednn_linears
from vsep_mdxc.config import (
    BS_ROFORMER,
    MDX23C,
    MEL_ROFORMER,
    StemPlan,
    detect_kind,
    load_yaml,
    plan_stems,
    resolve_int,
)
from vsep_mdxc.roformer import (
    RoformerConfig,
    build_roformer,
    half_matmuls,
    normalize_model_section,
    onednn_transformer_linears,
    roformer_config,
    to_bool,
)
from vsep_mdxc.tfc_tdf import TFCTDFConfig, TFCTDFNet
from vsep_mdxc.variants import VariantContext, VariantError, installed_variants, variant_for

SHORT_CLIP_SECONDS = 10.0
MSST = "msst"
AUDIO_SEPARATOR = "audio_separator"
MSST_MODEL_TYPES = ("mdx23c", "bs_roformer", "bs_roformer_experimental", "mel_band_roformer",
                    "mel_band_roformer_experimental")
"""MSST's names of the networks this plugin runs (``--model_type`` of MSST's inference.py)."""
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "state", "weights", "net")


# --------------------------------------------------------------------------------------------
# checkpoint loading


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint: a plain state dict, or one under 'state_dict'/'model'/...

    Loaded with ``torch.load(weights_only=True)``: nothing in the file can run code. A
    ``module.`` (DataParallel) or ``_orig_mod.`` (torch.compile) prefix on every key is removed.
    """
    obj = torch_load(path)
    for _ in range(3):  # a state dict, or one nested under a known key (Lightning, MSST, ...)
        inner = next((obj[k] for k in _STATE_DICT_KEYS if isinstance(obj, Mapping) and isinstance(obj.get(k), Mapping)),
                     None)
        if inner is None or (isinstance(obj, Mapping) and _is_state_dict(obj)):
            break
        obj = inner
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"checkpoint {path.name} holds no state dict (found {type(obj).__name__})")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _is_state_dict(obj: Mapping[str, Any]) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def load_weights_strict(net: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str,
                        assign: bool = False) -> None:
    """Copy `state` into `net`; every tensor must match by name and shape.

    Raises ModelLoadError naming the first tensor (in the network's order, then the file's)
    that is missing, extra or of another shape. Rotary frequencies that a file omits keep
    their computed values (they are a constant of ``dim_head``).
    """
    expected = net.state_dict()
    check_tensors(expected, state, source, optional=lambda name: name.endswith("rotary_embed.freqs"))
    missing = [n for n in expected if n not in state]
    merged = dict(state)
    for name in missing:
        merged[name] = expected[name]
    if assign:  # the network's tensors become the file's: keep the network's dtypes
        merged = {k: v.to(expected[k].dtype) if v.dtype != expected[k].dtype else v for k, v in merged.items()}
    net.load_state_dict(merged, strict=True, assign=assign)


def build_with_weights(build: Callable[[], torch.nn.Module], state: Mapping[str, torch.Tensor],
                       source: str) -> torch.nn.Module:
    """`build()` with the checkpoint's tensors, holding the weights once.

    The network is built on the meta device and takes the loaded tensors over (`assign`), so
    peak memory during loading is one copy of the weights, not two (639 MB saved for
    BS-RoFormer ep_317). A network that still has tensors on meta afterwards (a buffer computed
    in ``__init__`` outside a ``torch.device("cpu")`` block) is built again normally.
    """
    with torch.device("meta"):
        net = build()
    load_weights_strict(net, state, source, assign=True)
    tensors = list(net.parameters()) + list(net.buffers())
    if any(t.is_meta for t in tensors):
        net = build()
        load_weights_strict(net, state, source)
    return net


def _count_indexed(state: Mapping[str, Any], prefix: str) -> int | None:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(found) + 1 if found else None


# --------------------------------------------------------------------------------------------
# the loaded model


@dataclass(frozen=True)
class _Settings:
    overlap: int
    batch_size: int
    segment_size: int
    override_segment: bool
    model_dim_t: int
    pitch_shift: int
    hop: int
    normalization_threshold: float
    amplification_threshold: float
    precision: str = "fp32"
    inference: str = AUDIO_SEPARATOR
    chunk_size: int = 0
    standardize: bool = False


def _hamming(length: int) -> np.ndarray:
    """Symmetric Hamming window (scipy.signal.windows.hamming), float32."""
    if length == 1:
        return np.ones(1, dtype=np.float32)
    fac = np.linspace(-np.pi, np.pi, length)
    return (0.54 + 0.46 * np.cos(fac)).astype(np.float32)


def roformer_chunk_starts(length: int, chunk: int, step: int) -> list[int]:
    """Window starts 0, step, 2*step, ... while the window ends before `length`; the last ends at `length`."""
    starts: list[int] = []
    for offset in range(0, length, step):
        if offset + chunk >= length:
            tail = max(length - chunk, 0)
            if not starts or starts[-1] != tail:
                starts.append(tail)
            break
        starts.append(offset)
    return starts


def pitch_resample(audio: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """Resample [channels, samples] from `rate_in` to `rate_out` (float rates) as the reference's pitch shift
    does: libsamplerate SRC_SINC_FASTEST per channel, ceil(n * rate_out / rate_in) samples."""
    from vsep_core.resample import sinc_fastest

    return np.ascontiguousarray(sinc_fastest(audio, rate_in, rate_out))


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Cut or zero-pad the last axis to `length`."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, length - audio.shape[-1])]
    return np.pad(audio, pad)


class MDXCModel:
    """A loaded MDX23C / BS-RoFormer / Mel-Band-RoFormer model (the SeparationModel of vsep-mdxc)."""

    def __init__(self, net: torch.nn.Module, kind: str, config: Mapping[str, Any], plan: StemPlan,
                 settings: _Settings, device: torch.device, channels: int, sample_rate: int,
                 target_index: int = 0, logger: logging.Logger | None = None, n_fft: int = 2048):
        self.net = net
        self.kind = kind
        self.config = config
        self.plan = plan
        self.settings = settings
        self.device = device
        self.channels = channels
        self.sample_rate = sample_rate
        self.target_index = target_index
        self.n_fft = n_fft
        self.stems = list(plan.outputs if settings.inference == MSST else plan.order)
        # audio-separator's style peak-normalises the mix and keeps the stems at that level; core does
        # it once for the whole input (so the parts of a long input never step in level at a seam)
        self.input_peak_normalization = None if settings.inference == MSST else "keep_level"
        self.logger = logger or logging.getLogger("vsep.mdxc")

    # -- public ----------------------------------------------------------------------------

    def separate(self, audio: np.ndarray, progress: Progress | None = None) -> dict[str, np.ndarray]:
        """audio float32 [channels, samples] -> {stem: float32 [channels, samples]} in `self.stems` order."""
        audio = channels_first(audio)
        in_channels, length = audio.shape
        mix = self._to_model_channels(audio)
        s = self.settings
        if s.inference == MSST:
            return self._separate_msst(mix, in_channels, progress)
        short = length / self.sample_rate < SHORT_CLIP_SECONDS
        dim_t = s.segment_size if (s.override_segment or short) else s.model_dim_t
        if short and not s.override_segment:
            self.logger.info("input is %.2f s (< %.0f s): using segment_size %d instead of the model's dim_t %d",
                             length / self.sample_rate, SHORT_CLIP_SECONDS, s.segment_size, s.model_dim_t)

        work = mix
        shifted_rate = float(self.sample_rate)
        if s.pitch_shift:
            shifted_rate = self.sample_rate * 2.0 ** (-s.pitch_shift / 12.0)
            work = pitch_resample(mix, self.sample_rate, shifted_rate)

        with torch.inference_mode(), self._autocast():
            if self.kind == MDX23C:
                outputs = self._demix_mdx23c(work, dim_t, progress)
            else:
                outputs = self._demix_roformer(work, dim_t, progress)

        if s.pitch_shift:
            back_rate = shifted_rate * 2.0 ** (s.pitch_shift / 12.0)  # the reference's target rate, not sample_rate
            outputs = np.stack([pitch_resample(o, shifted_rate, back_rate) for o in outputs])
        outputs = _fit_length(outputs, length)

        stems: dict[str, np.ndarray] = {}
        if self.plan.residual is not None:
            primary = outputs[self.target_index]
            stems[self.plan.primary] = primary
            stems[self.plan.residual] = mix - primary
        else:
            for name, out in zip(self.plan.outputs, outputs, strict=True):
                stems[name] = out
        return {name: self._from_model_channels(np.ascontiguousarray(stems[name], dtype=np.float32), in_channels)
                for name in self.stems}

    def _separate_msst(self, mix: np.ndarray, in_channels: int, progress: Progress | None) -> dict[str, np.ndarray]:
        """MSST's inference: ``inference.normalize``, then ``demix`` (generic mode), nothing else.

        No peak normalisation (MSST has none; core's writer still normalises the written files).
        """
        s = self.settings
        length = mix.shape[-1]
        mean, std = 0.0, 1.0
        work = mix
        if s.standardize:
            work, mean, std = standardize(mix)
        shifted_rate = float(self.sample_rate)
        if s.pitch_shift:
            shifted_rate = self.sample_rate * 2.0 ** (-s.pitch_shift / 12.0)
            work = pitch_resample(work, self.sample_rate, shifted_rate)
        plan = DemixPlan.generic(s.chunk_size, s.overlap)

        def run(batch: np.ndarray) -> np.ndarray:
            return self._run(torch.from_numpy(batch)).cpu().numpy()

        with torch.inference_mode(), self._autocast():
            outputs = demix(work, run, plan, s.batch_size, progress)
        if outputs.ndim == 2:
            outputs = outputs[None]
        if s.pitch_shift:
            outputs = np.stack([pitch_resample(o, shifted_rate, self.sample_rate) for o in outputs])
        outputs = _fit_length(outputs, length)
        if s.standardize:
            outputs = outputs * np.float32(std) + np.float32(mean)
        result: dict[str, np.ndarray] = {}
        for name, out in zip(self.stems, outputs, strict=False):
            result[name] = self._from_model_channels(np.ascontiguousarray(out, dtype=np.float32), in_channels)
        return result

    # -- channels --------------------------------------------------------------------------

    def _to_model_channels(self, audio: np.ndarray) -> np.ndarray:
        """Mono into a stereo model: duplicated. Any channel count into a mono model: kept (run one by one)."""
        c = audio.shape[0]
        if self.channels == 1 or c == self.channels:
            return audio
        if c == 1:
            return np.repeat(audio, self.channels, axis=0)
        raise UsageError(f"this model separates {self.channels}-channel audio; got {c} channels")

    def _from_model_channels(self, wave: np.ndarray, in_channels: int) -> np.ndarray:
        if wave.shape[0] == in_channels:
            return wave
        return wave.mean(axis=0, keepdims=True).astype(np.float32)

    # -- inference -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        """MDX23C in bf16/fp16: torch autocast in that dtype. The RoFormers hold their transformer matrices
        in that dtype instead (`half_matmuls`, set at load) and need no autocast; fp32: nothing."""
        if self.kind != MDX23C:
            yield
        else:
            with precision_autocast(self.device.type, self.settings.precision):
                yield

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        """[B, C, L] chunks -> [B, S, C, L'] float32 outputs (a mono model runs each channel as a batch item)."""
        b, c, length = batch.shape
        x = batch.to(self.device)
        if self.channels == 1 and c != 1:
            x = x.reshape(b * c, 1, length)
        y = self.net(x).float()
        if y.ndim == 3:  # one stem
            y = y.unsqueeze(1)
        if self.channels == 1 and c != 1:
            y = y.reshape(b, c, y.shape[1], y.shape[-1]).transpose(1, 2)
        return y

    @staticmethod
    def _check_chunk(chunk: int, n_fft: int) -> None:
        if chunk <= n_fft // 2:
            raise UsageError(f"segment size too small: chunks of {chunk} samples are shorter than half the "
                             f"model's STFT size ({n_fft}); use a larger segment_size")

    def _demix_mdx23c(self, mix: np.ndarray, dim_t: int, progress: Progress | None) -> np.ndarray:
        s = self.settings
        net: TFCTDFNet = self.net  # type: ignore[assignment]
        if dim_t % net.time_multiple:
            raise UsageError(f"MDX23C segment size {dim_t} must be a multiple of {net.time_multiple}")
        chunk = s.hop * (dim_t - 1)
        self._check_chunk(chunk, net.cfg.n_fft)
        hop = chunk // s.overlap
        if hop <= 0:
            raise UsageError(f"overlap {s.overlap} is larger than the chunk of {chunk} samples")
        channels, n = mix.shape
        pad = hop - ((n - chunk) % hop)
        lead = chunk - hop
        padded = torch.cat([torch.zeros(channels, lead), torch.from_numpy(mix),
                            torch.zeros(channels, pad + lead)], dim=1)
        chunks = padded.unfold(1, chunk, hop).transpose(0, 1)  # [K, C, chunk]
        total = chunks.shape[0]
        acc: torch.Tensor | None = None
        done = 0
        for first in range(0, total, s.batch_size):
            out = self._run(chunks[first:first + s.batch_size]).to(self.device)
            if acc is None:
                acc = torch.zeros(out.shape[1], channels, padded.shape[1], device=self.device)
            for i in range(out.shape[0]):
                start = (first + i) * hop
                acc[..., start:start + chunk] += out[i]
            done += out.shape[0]
            if progress:
                progress(done, total)
        assert acc is not None
        acc /= s.overlap
        return acc[..., lead:lead + n].cpu().numpy()

    def _demix_roformer(self, mix: np.ndarray, dim_t: int, progress: Progress | None) -> np.ndarray:
        s = self.settings
        chunk = s.hop * (dim_t - 1)
        n_fft = self.n_fft
        self._check_chunk(chunk, n_fft)
        step = chunk // s.overlap
        if step <= 0:
            raise UsageError(f"overlap {s.overlap} is larger than the chunk of {chunk} samples")
        channels, n = mix.shape
        starts = roformer_chunk_starts(n, chunk, step)
        window = torch.from_numpy(_hamming(chunk)).to(self.device)
        source = torch.from_numpy(mix)
        result: torch.Tensor | None = None
        counter = torch.zeros(n, device=self.device)
        done = 0
        for first in range(0, len(starts), s.batch_size):
            group = starts[first:first + s.batch_size]
            # every window is `chunk` long, except the single window of an input shorter than a chunk
            batch = torch.stack([source[:, st:st + chunk] for st in group])
            if batch.shape[-1] <= n_fft // 2:  # too short for the STFT's reflect padding: zero-pad
                batch = torch.nn.functional.pad(batch, (0, n_fft // 2 + 1 - batch.shape[-1]))
            out = self._run(batch).to(self.device)
            seg = min(min(chunk, n), out.shape[-1])
            if result is None:
                result = torch.zeros(out.shape[1], channels, n, device=self.device)
            for i, st in enumerate(group):
                result[..., st:st + seg] += out[i, ..., :seg] * window[:seg]
                counter[st:st + seg] += window[:seg]
            done += len(group)
            if progress:
                progress(done, len(starts))
        assert result is not None
        result /= counter.clamp(min=1e-10)
        return result.cpu().numpy()


# --------------------------------------------------------------------------------------------
# load_model


def _yaml_of(ctx: LoadContext) -> dict[str, Any]:
    data = ctx.model_data if isinstance(ctx.model_data, Mapping) else None
    if data and ("model" in data or "audio" in data):
        return dict(data)
    candidates = [ctx.config_path] if ctx.config_path else []
    candidates += [ctx.model_path.with_suffix(".yaml"), ctx.model_path.with_suffix(".yml")]
    for path in candidates:
        if path and Path(path).is_file():
            try:
                return load_yaml(path)
            except (OSError, ValueError, yaml.YAMLError) as exc:
                raise ModelDataError(f"cannot read the model yaml {Path(path).name}: {exc}") from exc
    raise ModelDataError(f"{ctx.model_path.name} needs its yaml config (none given and no "
                         f"{ctx.model_path.stem}.yaml beside it)")


def explicit_model_type(params: Any, config: Mapping[str, Any]) -> str | None:
    """MSST's model type when one is given: ``--mdxc_model_type``, else the yaml's top-level or
    ``training.model_type``; None when neither (the usual case: MSST's yamls carry none)."""
    value = getattr(params, "model_type", None) or config.get("model_type") \
        or (config.get("training") or {}).get("model_type")
    if value is None:
        return None
    value = str(value)
    if value not in MSST_MODEL_TYPES:
        raise UsageError(f"model type {value!r} is not one vsep-mdxc runs; use one of {', '.join(MSST_MODEL_TYPES)}")
    return value


def _kind_of_type(model_type: str) -> str:
    if model_type == "mdx23c":
        return MDX23C
    return MEL_ROFORMER if model_type.startswith("mel_band") else BS_ROFORMER


_EXPERIMENTAL_KEYS = ("num_residual_streams", "use_value_residual_learning")
_EXPERIMENTAL_TENSORS = (".static_alpha", ".to_value_residual_mix.")


def is_experimental(section: Mapping[str, Any], state: Mapping[str, Any], model_type: str | None) -> bool:
    """Whether the network is MSST's ``*_roformer_experimental``: from the explicit type, else from the
    yaml keys only that network has, else from its tensors (hyper-connections, value-residual gates)."""
    streams = section.get("num_residual_streams")
    residual = section.get("use_value_residual_learning")
    uses_keys = (streams is not None and int(streams) != 1) or (residual is not None and to_bool(residual))
    if model_type is not None:
        experimental = model_type.endswith("_experimental")
        if not experimental and uses_keys:
            keys = ", ".join(k for k in _EXPERIMENTAL_KEYS if k in section)
            raise ValueError(f"{keys} belong to MSST's {model_type}_experimental network, not {model_type}")
        return experimental
    return uses_keys or any(t in name for name in state for t in _EXPERIMENTAL_TENSORS)


def _count_streams(state: Mapping[str, torch.Tensor]) -> int | None:
    """Hyper-connection streams of a checkpoint (``static_alpha`` is [streams, streams + 1]), or None."""
    alpha = next((t for name, t in state.items() if name.endswith(".static_alpha")), None)
    return int(alpha.shape[0]) if alpha is not None and alpha.ndim == 2 else None


def default_inference(model_path: Path) -> str:
    """audio_separator for a file of audio-separator's model list (the drop-in promise), else msst."""
    from vsep_mdxc.catalog import reference_checkpoints

    return AUDIO_SEPARATOR if model_path.name in reference_checkpoints() else MSST


def _build_roformer_from(config: Mapping[str, Any], kind: str, state: Mapping[str, torch.Tensor],
                         model_type: str | None) -> tuple[Callable[[], torch.nn.Module], RoformerConfig]:
    """The builder of the RoFormer the yaml describes: built in, or by the installed variant owning a key."""
    variant_kind = "bs" if kind == BS_ROFORMER else "mel"
    model_section = normalize_model_section(config.get("model") or {})
    try:
        variants = installed_variants()
        from vsep_mdxc.roformer import known_keys

        variant = variant_for(set(model_section) - known_keys(), variants)
    except VariantError as exc:
        raise ModelLoadError(str(exc)) from exc
    owned = variant.keys if variant else frozenset()
    rcfg = roformer_config({k: v for k, v in model_section.items() if k not in owned}, variant_kind,
                           num_stems=_count_indexed(state, "mask_estimators."),
                           num_bands=_count_indexed(state, "band_split.to_features."),
                           owned=owned, experimental=is_experimental(model_section, state, model_type),
                           num_residual_streams=_count_streams(state))
    if variant is None:
        return (lambda: build_roformer(rcfg, variant_kind)), rcfg
    vctx = VariantContext(kind=variant_kind, model=model_section,
                          options={k: v for k, v in model_section.items() if k in owned}, config=rcfg, state=state)
    if variant.build_network is not None:
        build_network = variant.build_network
        return (lambda: build_network(vctx)), rcfg
    assert variant.mask_head is not None
    factory = variant.mask_head(vctx)
    return (lambda: build_roformer(rcfg, variant_kind, mask_head=factory)), rcfg


def load_model(ctx: LoadContext) -> MDXCModel:
    """Build the network described by the yaml, load the checkpoint strictly, and wrap it for separation."""
    config = _yaml_of(ctx)
    params = ctx.params
    names = [ctx.model_path.name] + ([Path(ctx.config_path).name] if ctx.config_path else [])
    model_type = explicit_model_type(params, config)
    try:
        kind = _kind_of_type(model_type) if model_type else detect_kind(config, names)
    except ValueError as exc:
        raise ModelLoadError(f"{ctx.model_path.name}: {exc}") from exc
    state = read_checkpoint(ctx.model_path)
    source = ctx.model_path.name
    audio = config.get("audio") or {}
    training = config.get("training") or {}
    inference = config.get("inference") or {}
    model_section = config.get("model") or {}
    try:
        if kind == MDX23C:
            targets = 1 if training.get("target_instrument") else len(training.get("instruments") or [])
            tcfg = TFCTDFConfig.from_yaml(config, max(targets, 1))
            build: Callable[[], torch.nn.Module] = lambda: TFCTDFNet(tcfg)  # noqa: E731
            model_stems, channels = tcfg.num_targets, tcfg.num_channels
            hop, n_fft = tcfg.hop_length, tcfg.n_fft
        else:
            build, rcfg = _build_roformer_from(config, kind, state, model_type)
            model_stems, channels = rcfg.num_stems, (2 if rcfg.stereo else 1)
            hop = int(model_section.get("stft_hop_length") or audio.get("hop_length") or rcfg.stft_hop_length)
            n_fft = rcfg.stft_n_fft
        plan = plan_stems(config, model_stems)
    except (KeyError, TypeError, ValueError) as exc:
        what = "missing key " + str(exc) if isinstance(exc, KeyError) else str(exc)
        raise ModelLoadError(f"{source}: cannot build the {kind} network from the yaml: {what}") from exc
    net = build_with_weights(build, state, source)
    del state

    target_index = 0
    instruments = [str(i) for i in (training.get("instruments") or [])]
    if plan.residual is not None and model_stems > 1 and model_stems == len(instruments) \
            and plan.primary in instruments:
        target_index = instruments.index(plan.primary)

    style = getattr(params, "inference", None) or default_inference(ctx.model_path)
    fallback_overlap = 8 if style == AUDIO_SEPARATOR else 4
    overlap = resolve_int(getattr(params, "overlap", None), inference, "num_overlap", fallback_overlap)
    batch_size = resolve_int(getattr(params, "batch_size", None), inference, "batch_size", 1)
    if overlap <= 0 or batch_size <= 0:
        raise UsageError(f"MDXC overlap and batch size must be at least 1 (got {overlap}, {batch_size})")
    model_dim_t = int(inference.get("dim_t") or audio.get("dim_t") or 256)
    chunk_size = int(getattr(params, "chunk_size", None) or inference.get("chunk_size") or audio.get("chunk_size")
                     or hop * (model_dim_t - 1))
    if style == MSST and overlap > chunk_size:
        raise UsageError(f"MDXC overlap {overlap} is larger than the chunk of {chunk_size} samples")
    settings = _Settings(
        overlap=overlap, batch_size=batch_size, segment_size=int(getattr(params, "segment_size", 256)),
        override_segment=bool(getattr(params, "override_model_segment_size", False)), model_dim_t=model_dim_t,
        pitch_shift=int(getattr(params, "pitch_shift", 0) or 0), hop=hop,
        normalization_threshold=float(ctx.normalization_threshold),
        amplification_threshold=float(ctx.amplification_threshold or 0.0), precision=ctx.precision,
        inference=style, chunk_size=chunk_size, standardize=inference.get("normalize") is True,
    )
    if settings.segment_size < 2:
        raise UsageError("MDXC segment_size must be at least 2 STFT frames")
    if hasattr(net, "apply_zero_dc"):  # MSST zeroes the DC bin where the yaml's zero_dc (default true) says so
        net.apply_zero_dc = style == MSST
    device = torch.device(ctx.device.torch_device or "cpu")
    net.to(device).eval()
    if half_dtype(settings.precision) is not None and kind != MDX23C:
        half_matmuls(net, half_dtype(settings.precision))
    if device.type == "cpu" and not ctx.use_torch_compile:  # float32 products in oneDNN where it beats BLAS here
        onednn = use_onednn_linears(net) if kind == MDX23C else onednn_transformer_linears(net)
        ctx.logger.debug("%d linear layers run in oneDNN", onednn)
    if settings.precision != "fp32":
        ctx.logger.info("%s runs in %s (%s)", source, settings.precision, "autocast" if kind == MDX23C else
                        "transformer matrices and attention in half precision, the rest in fp32")
    if ctx.use_torch_compile:
        # opt-in: a GPU gains most; on a CPU inductor needs a C++ compiler. Every new chunk length
        # (the last, shorter chunk of a song) compiles once more.
        ctx.logger.info("--use_torch_compile: the first chunk of each length compiles the network (can take minutes)")
        net = torch.compile(net)
    sample_rate = int(audio.get("sample_rate") or model_section.get("sample_rate") or 44100)
    ctx.logger.debug("loaded %s (%s, %s inference): stems %s, overlap %d, batch %d", source, kind, style,
                     plan.order, overlap, batch_size)
    return MDXCModel(net, kind, config, plan, settings, device, channels, sample_rate, target_index, ctx.logger,
                     n_fft=n_fft)


__all__ = ["MDXCModel", "load_model", "read_checkpoint", "load_weights_strict", "roformer_chunk_starts",
           "BS_ROFORMER", "MEL_ROFORMER", "MDX23C"]
