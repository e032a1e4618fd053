"""MDX-Net on ONNX Runtime: the reference's STFT / chunking / overlap-add, with consistent stem levels.

Signal path (docs/mdx.md has the whole story and where vsep departs from the reference):

1. m_n = k * m, the mix peak-normalised to ``normalization_threshold`` (k = thr / peak when the peak
   is above it; amplified to ``amplification_threshold`` when 0 < peak < it; else k = 1). The model
   declares ``input_peak_normalization = "restore_level"``: core finds k once over the whole input,
   hands the model m_n and divides the stems by k (step 3's "/ k"), so the model itself sees m_n.
2. demix(m_n): the padded mix is cut into chunks of ``hop * (segment - 1)`` samples with
   ``overlap``; every chunk goes through torch.stft (n_fft, hop, periodic Hann, centred), is cropped
   to ``dim_f`` bins with the first 3 bins zeroed, runs through the ONNX network (``batch_size``
   chunks per call), back through the inverse STFT, and is overlap-added with a symmetric Hann window.
3. primary = demix(m_n) / k; secondary = m - compensate * primary (or, with ``invert_using_spec``,
   UVR's spectral inversion of the band-limited mix and the primary).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsep_core.api import LoadContext, Progress
from vsep_core.checkpoints import first_line, onnx_session, quiet_onnxruntime, redownload_hint
from vsep_core.errors import ModelDataError, ModelLoadError
from vsep_core.helpers import mono_or_stereo, peak_gain, stem_pair

SAMPLE_RATE = 44100
ZEROED_BINS = 3  # the reference zeroes the first 3 frequency bins before the network
MATCH_MIX_OVERLAP = 0.02  # overlap of the reference's "match mix" re-synthesis (invert_using_spec)
INVERT_N_FFT, INVERT_HOP = 2048, 1024  # STFT of UVR's spectral inversion (spec_utils.invert_stem)

secondary_stem_name = stem_pair  # the reference's pairing, shared by every family (vsep_core.helpers)


def physical_cores() -> int:
    """Physical CPU cores this process may use (logical CPUs when the topology is unknown)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        path = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/core_cpus_list")
        if not path.exists():
            path = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(path.read_text().strip())
        except OSError:
            return max(1, len(allowed))
    return max(1, len(cores))


gain_factor = peak_gain
"""k such that k * mix is the reference's normalised mix (spec_utils.normalize, 0.47.1 semantics)."""


@dataclass(frozen=True)
class MDXSettings:
    """Resolved numbers of one loaded model (hash parameters + user parameters)."""

    n_fft: int
    hop_length: int
    dim_f: int
    dim_t: int
    segment_size: int
    overlap: float
    batch_size: int
    enable_denoise: bool
    compensate: float
    primary_stem: str
    secondary_stem: str

    @property
    def trim(self) -> int:
        """Samples of zero padding in front of the mix (and dropped from the result)."""
        return self.n_fft // 2

    @property
    def chunk_size(self) -> int:
        """Samples per chunk: exactly `segment_size` STFT frames."""
        return self.hop_length * (self.segment_size - 1)


class Spectrogram:
    """The reference MDX STFT: [B, 2, L] waves <-> [B, 4, dim_f, T] (L.re, L.im, R.re, R.im), torch on `device`."""

    def __init__(self, n_fft: int, hop_length: int, dim_f: int, device: torch.device):
        self.n_fft, self.hop_length, self.dim_f, self.device = n_fft, hop_length, dim_f, device
        self.window = torch.hann_window(n_fft, periodic=True, device=device)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """[B, C, L] float32 -> [B, 2C, dim_f, T] float32 with the first ZEROED_BINS bins zeroed."""
        b, c, length = waves.shape
        spec = torch.stft(waves.reshape(b * c, length), n_fft=self.n_fft, hop_length=self.hop_length,
                          window=self.window, center=True, return_complex=True)
        spec = torch.view_as_real(spec[:, : self.dim_f])  # [BC, F, T, 2]
        spec = spec.permute(0, 3, 1, 2).reshape(b, c * 2, self.dim_f, spec.shape[2]).contiguous()
        spec[:, :, :ZEROED_BINS, :] = 0.0
        return spec

    def inverse(self, spec: torch.Tensor) -> torch.Tensor:
        """[B, 2C, dim_f, T] -> [B, C, hop * (T - 1)]: bins above dim_f are zero; same result as torch.istft."""
        b, c2, f, t = spec.shape
        pairs = spec.reshape(b * c2 // 2, 2, f, t)
        if self.n_fft % self.hop_length:
            n_bins = self.n_fft // 2 + 1
            complex_spec = torch.nn.functional.pad(torch.complex(pairs[:, 0], pairs[:, 1]), (0, 0, 0, n_bins - f))
            waves = torch.istft(complex_spec, n_fft=self.n_fft, hop_length=self.hop_length, window=self.window,
                                center=True)
            return waves.reshape(b, c2 // 2, -1)
        # hop divides n_fft: inverse FFT along the last axis and overlap-add as n_fft / hop shifted block sums
        # (torch.istft's strided FFT and fold are several times slower on CPU)
        pairs = pairs.transpose(2, 3)  # [BC, 2, T, F]
        complex_spec = torch.complex(pairs[:, 0], pairs[:, 1]).contiguous()
        frames = torch.fft.irfft(complex_spec, n=self.n_fft, dim=-1) * self.window  # [BC, T, n_fft]
        waves = self._overlap_add(frames) / self._envelope(t)
        half = self.n_fft // 2
        return waves[:, half: half + self.hop_length * (t - 1)].reshape(b, c2 // 2, -1)

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """[N, T, n_fft] frames -> [N, n_fft + hop * (T - 1)] samples."""
        n, t, _ = frames.shape
        r, hop = self.n_fft // self.hop_length, self.hop_length
        blocks = frames.reshape(n, t, r, hop)
        out = frames.new_zeros((n, t + r - 1, hop))
        for i in range(r):
            out[:, i: i + t] += blocks[:, :, i]
        return out.reshape(n, -1)

    def _envelope(self, frames: int) -> torch.Tensor:
        """Sum of squared windows at every output sample, for `frames` frames (cached)."""
        cache = self.__dict__.setdefault("_envelopes", {})
        if frames not in cache:
            squared = (self.window**2).expand(1, frames, self.n_fft)
            cache[frames] = self._overlap_add(squared.contiguous())[0]
        return cache[frames]


class OnnxNetwork:
    """One ONNX Runtime session for the whole life of the model; spectrogram batches in, batches out."""

    def __init__(self, path: Path, providers: Sequence[str], logger: logging.Logger, threads: int | None = None,
                 cuda_device_id: int = 0, model_bytes: bytes | None = None):
        ort = quiet_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or physical_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # ORT's memory pattern plans one block for every intermediate of a call and keeps it for the
        # session's life: without it the real-size Inst_HQ_3 peaks at 1.25 GB instead of 2.04 GB (30 s
        # input) in the same time (22 s). Turning the CPU arena off as well saves 20 MB more but costs
        # 10% of the time (measured side by side; docs/benchmarks.md).
        options.enable_mem_pattern = False
        options.log_severity_level = 0 if logger.isEnabledFor(logging.DEBUG) else 3
        available = set(ort.get_available_providers())
        wanted = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        provider_options = [{"device_id": str(cuda_device_id)} if p == "CUDAExecutionProvider" else {}
                            for p in wanted]
        self.session = onnx_session(path, model_bytes, sess_options=options, providers=wanted,
                                    provider_options=provider_options,
                                    verbose=logger.isEnabledFor(logging.DEBUG))
        self.providers = list(self.session.get_providers())
        missing = [p for p in providers if p not in self.providers]
        logger.info("MDX: ONNX Runtime %s, providers %s, %d intra-op threads", ort.__version__, self.providers,
                    options.intra_op_num_threads)
        if missing:
            logger.warning("MDX: ONNX Runtime did not create %s (running on %s)", missing, self.providers)
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name, self.output_name = inp.name, out.name
        if len(inp.shape) != 4:
            raise ModelLoadError(f"{path.name}: expected a network input [batch, 4, dim_f, dim_t], got {inp.shape}")
        self.input_shape: list[Any] = list(inp.shape)
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
        self.fixed_frames = inp.shape[3] if isinstance(inp.shape[3], int) and inp.shape[3] > 0 else None
        self.fixed_bins = inp.shape[2] if isinstance(inp.shape[2], int) and inp.shape[2] > 0 else None
        self.on_cuda = "CUDAExecutionProvider" in self.providers
        self._binding_failed = False
        self.logger = logger
        self.path, self.requested_providers, self.threads = path, list(providers), threads
        self.cuda_device_id = cuda_device_id

    def with_time_axis(self, frames: int, bins: int) -> OnnxNetwork | None:
        """This network with a dynamic time axis, checked by one run at `frames` frames; None when the graph
        hard-codes its frame count inside (then only its own size runs)."""
        try:
            dynamic = OnnxNetwork(self.path, self.requested_providers, self.logger, self.threads,
                                  self.cuda_device_id, model_bytes=dynamic_time_axis(self.path))
            probe = torch.zeros((dynamic.fixed_batch or 1, 4, bins, frames))
            out = dynamic(probe)
        except Exception as exc:  # ORT's shape errors have their own types; any failure means "not dynamic"
            self.logger.debug("MDX: the network does not run at %d frames: %s", frames, exc)
            return None
        if tuple(out.shape) != tuple(probe.shape):
            self.logger.debug("MDX: the network gives %s for %s", tuple(out.shape), tuple(probe.shape))
            return None
        return dynamic

    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        """Run the network on [B, 4, dim_f, T]; returns a tensor on spec's device."""
        step = self.fixed_batch or spec.shape[0]
        if step == spec.shape[0]:
            return self._run(spec)
        parts = []
        for i in range(0, spec.shape[0], step):
            part = spec[i: i + step]
            n = part.shape[0]
            if n < step:  # a fixed batch dimension: pad the last group with zeros
                part = torch.cat([part, part.new_zeros((step - n, *part.shape[1:]))])
            parts.append(self._run(part)[:n])
        return torch.cat(parts)

    def _run(self, spec: torch.Tensor) -> torch.Tensor:
        if spec.is_cuda and self.on_cuda and not self._binding_failed:
            try:
                return self._run_bound(spec)
            except Exception as exc:  # fall back to host copies, once and loudly
                self._binding_failed = True
                self.logger.warning("MDX: ONNX Runtime I/O binding failed (%s); copying through host memory", exc)
        out = self.session.run([self.output_name], {self.input_name: spec.detach().cpu().numpy()})[0]
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(spec.device)

    def _run_bound(self, spec: torch.Tensor) -> torch.Tensor:
        """ORT reads and writes torch's buffers in place (on CUDA: no host round trip). Output shape = input shape."""
        spec = spec.contiguous()
        out = torch.empty_like(spec)
        kind = "cuda" if spec.is_cuda else "cpu"
        index = (spec.device.index or 0) if spec.is_cuda else 0
        binding = self.session.io_binding()
        binding.bind_input(self.input_name, kind, index, np.float32, list(spec.shape), spec.data_ptr())
        binding.bind_output(self.output_name, kind, index, np.float32, list(out.shape), out.data_ptr())
        if spec.is_cuda:
            torch.cuda.synchronize(spec.device)  # torch's kernels that wrote `spec` are done
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return out


def dynamic_time_axis(path: Path) -> bytes:
    """The ONNX model at `path` with the time axis (last) of its first input and output made symbolic, and
    the inferred intermediate shapes dropped: the reference converts the graph to torch to run other sizes."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends for a damaged file
        raise ModelLoadError(f"{path.name} is not a valid ONNX model ({first_line(exc)}); "
                             f"{redownload_hint(path)}") from exc
    for value in (model.graph.input[0], model.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4:
            dims[3].Clear()
            dims[3].dim_param = "frames"
    del model.graph.value_info[:]
    return model.SerializeToString()


def _require(data: dict[str, Any], key: str, path: Path) -> Any:
    if key not in data or data[key] is None:
        raise ModelDataError(f"{path.name}: the model parameters have no {key!r} (MDX-Net models need compensate, "
                             "mdx_dim_f_set, mdx_dim_t_set, mdx_n_fft_scale_set); is the hash table up to date?")
    return data[key]


class MDXModel:
    """A loaded MDX-Net model: `separate(audio [channels, samples]) -> {secondary, primary}`."""

    sample_rate: int = SAMPLE_RATE

    def __init__(self, network: Callable[[torch.Tensor], torch.Tensor], settings: MDXSettings, *,
                 normalization_threshold: float = 0.9, amplification_threshold: float = 0.0,
                 invert_using_spec: bool = False, device: torch.device | None = None,
                 logger: logging.Logger | None = None, onnx_providers: Sequence[str] = ()):
        self.network = network
        self.settings = settings
        self.normalization_threshold = normalization_threshold
        self.amplification_threshold = amplification_threshold
        self.invert_using_spec = invert_using_spec
        self.device = device or torch.device("cpu")
        self.logger = logger or logging.getLogger("vsep.mdx")
        self.onnx_providers = list(onnx_providers)
        self.stems = [settings.secondary_stem, settings.primary_stem]
        self.input_peak_normalization = "restore_level"  # core scales the input by k and the stems by 1/k
        self.spectrogram = Spectrogram(settings.n_fft, settings.hop_length, settings.dim_f, self.device)

    # -- public ---------------------------------------------------------------------------------------------

    def separate(self, audio: np.ndarray, progress: Progress | None = None) -> dict[str, np.ndarray]:
        """audio float32 [channels, samples] at 44.1 kHz -> {secondary: ..., primary: ...}, each [channels, samples].

        Mono is processed as two identical channels and given back as one (their mean).
        """
        audio = mono_or_stereo(audio, "MDX-Net models")
        channels, n = audio.shape
        mix = np.repeat(audio, 2, axis=0) if channels == 1 else audio
        s = self.settings
        if n == 0:
            return {stem: np.zeros_like(audio) for stem in self.stems}

        schedules = [self._starts(n, s.overlap)]
        if self.invert_using_spec:
            schedules.append(self._starts(n, MATCH_MIX_OVERLAP))
        total = sum(len(x) for x in schedules) * (2 if s.enable_denoise else 1)
        counter = _Counter(progress, total, 2 if s.enable_denoise else 1)

        primary = self._demix(mix, s.overlap, counter, use_network=True)
        if self.invert_using_spec:
            band_limited = self._demix(mix, MATCH_MIX_OVERLAP, counter, use_network=False)
            secondary = self._invert_spec(band_limited, np.float32(s.compensate) * primary)
        else:
            secondary = primary * np.float32(-s.compensate)
            secondary += mix
        if channels == 1:
            primary, secondary = primary.mean(0, keepdims=True), secondary.mean(0, keepdims=True)
        return {s.secondary_stem: secondary.astype(np.float32, copy=False),
                s.primary_stem: primary.astype(np.float32, copy=False)}

    # -- the reference's demix ------------------------------------------------------------------------------

    def _layout(self, n: int, overlap: float) -> tuple[int, int, int]:
        """(padded length, step, start limit) of the reference's chunk schedule for n samples."""
        s = self.settings
        gen_size = s.chunk_size - 2 * s.trim
        pad = gen_size + s.trim - n % gen_size
        step = max(1, int((1 - overlap) * s.chunk_size))
        return s.trim + n + pad, step, s.trim + n

    def _starts(self, n: int, overlap: float) -> list[int]:
        """Chunk starts of the reference, minus those that only touch the padding after the mix."""
        length, step, limit = self._layout(n, overlap)
        return [start for start in range(0, length, step) if start < limit]

    def _demix(self, mix: np.ndarray, overlap: float, counter: _Counter, *, use_network: bool) -> np.ndarray:
        """Overlap-add of the network's output on `mix` over the reference's chunk schedule: [2, n] -> [2, n].

        The reference pads the mix with `trim` zeros in front and up to a whole number of chunks behind, and
        crops the result; here chunks are cut from the mix directly and only the kept region is accumulated
        (same numbers, no padded copies of the song).
        """
        s = self.settings
        n = mix.shape[-1]
        length, _, _ = self._layout(n, overlap)
        starts = self._starts(n, overlap)
        trim, chunk = s.trim, s.chunk_size
        result = np.zeros((2, n), dtype=np.float32)
        divider = np.zeros(n, dtype=np.float32)
        batch = s.batch_size if use_network else max(s.batch_size, 4)
        for i in range(0, len(starts), batch):
            group = starts[i: i + batch]
            waves = np.zeros((len(group), 2, chunk), dtype=np.float32)
            for j, start in enumerate(group):
                a, b = max(start, trim), min(start + chunk, trim + n)  # the part of the chunk that is mix
                waves[j, :, a - start: b - start] = mix[:, a - trim: b - trim]
            out = self._process(torch.from_numpy(waves).to(self.device), use_network)
            for j, start in enumerate(group):
                size = min(start + chunk, length) - start
                a, b = max(start, trim), min(start + size, trim + n)
                part = out[j, :, a - start: b - start]
                if overlap != 0:
                    window = _hanning(size)[a - start: b - start]
                    part *= window  # float32 in place, as the reference does
                    divider[a - trim: b - trim] += window
                else:
                    divider[a - trim: b - trim] += 1
                result[:, a - trim: b - trim] += part
            counter.advance(len(group), use_network)
        divider[divider == 0] = 1  # only where every window is 0 (and so is the result)
        result /= divider
        return result

    def _process(self, waves: torch.Tensor, use_network: bool) -> np.ndarray:
        """[B, 2, chunk] -> [B, 2, chunk]: STFT, (network), iSTFT."""
        with torch.inference_mode():
            spec = self.spectrogram.forward(waves)
            if use_network:
                if self.settings.enable_denoise:
                    both = self.network(torch.cat([-spec, spec]))
                    b = spec.shape[0]
                    spec = both[:b] * -0.5 + both[b:] * 0.5
                else:
                    spec = self.network(spec)
            out = self.spectrogram.inverse(spec.to(self.device, torch.float32))
        return out.cpu().numpy()

    def _invert_spec(self, mix: np.ndarray, stem: np.ndarray) -> np.ndarray:
        """UVR's spectral inversion (spec_utils.invert_stem): max(|X|,|Y|) * e^(i arg X) - Y, per channel."""
        window = torch.hann_window(INVERT_N_FFT, periodic=True, device=self.device)
        n = mix.shape[-1]

        def stft(x: np.ndarray) -> torch.Tensor:
            return torch.stft(torch.from_numpy(np.ascontiguousarray(x)).to(self.device), n_fft=INVERT_N_FFT,
                              hop_length=INVERT_HOP, window=window, center=True, pad_mode="constant",
                              return_complex=True)

        with torch.inference_mode():
            x, y = stft(mix), stft(stem)
            mag = torch.maximum(x.abs(), y.abs())
            out = torch.polar(mag, torch.angle(x)) - y
            wave = torch.istft(out, n_fft=INVERT_N_FFT, hop_length=INVERT_HOP, window=window, center=True, length=n)
        return wave.cpu().numpy()


@functools.lru_cache(maxsize=8)
def _hanning(size: int) -> np.ndarray:
    """np.hanning(size) (symmetric, float64), shared read-only between chunks."""
    window = np.hanning(size)
    window.flags.writeable = False
    return window


class _Counter:
    """Reports progress(done, total) in network runs (denoise counts each chunk twice)."""

    def __init__(self, progress: Progress | None, total: int, network_weight: int):
        self.progress, self.total, self.weight, self.done = progress, total, network_weight, 0

    def advance(self, chunks: int, use_network: bool) -> None:
        self.done += chunks * (self.weight if use_network else 1)
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)


def resolve_settings(ctx: LoadContext, fixed_frames: int | None, fixed_bins: int | None) -> MDXSettings:
    """Hash parameters + user parameters -> the numbers the model runs with (logs every choice it makes)."""
    data, params, log = ctx.model_data or {}, ctx.params, ctx.logger
    path = Path(ctx.model_path)
    compensate = float(_require(data, "compensate", path))
    dim_f = int(_require(data, "mdx_dim_f_set", path))
    dim_t = 2 ** int(_require(data, "mdx_dim_t_set", path))
    n_fft = int(_require(data, "mdx_n_fft_scale_set", path))
    primary = str(data.get("primary_stem") or "Vocals")
    if fixed_bins is not None and fixed_bins != dim_f:
        raise ModelDataError(f"{path.name}: the network takes {fixed_bins} frequency bins but the model parameters "
                             f"say mdx_dim_f_set={dim_f}; the hash table entry does not belong to this file")
    if dim_f > n_fft // 2 + 1:
        raise ModelDataError(f"{path.name}: mdx_dim_f_set={dim_f} exceeds n_fft // 2 + 1 = {n_fft // 2 + 1}")
    segment = int(params.segment_size)
    if fixed_frames is not None and fixed_frames != dim_t:
        log.warning("MDX: the network's time axis is %d frames, the model parameters say dim_t=%d; using %d",
                    fixed_frames, dim_t, fixed_frames)
        dim_t = fixed_frames
    if segment != dim_t:
        if fixed_frames is None:
            log.info("MDX: segment_size %d != the model's dim_t %d: the network's time axis is dynamic, so ONNX "
                     "Runtime runs it at %d frames (the reference converts it to torch for this)",
                     segment, dim_t, segment)
        else:
            log.warning("MDX: segment_size %d ignored: this ONNX network hard-codes dim_t=%d frames inside its "
                        "graph, so vsep runs it at %d (the reference converts it to torch with onnx2torch instead)",
                        segment, dim_t, dim_t)
            segment = dim_t
    hop = int(params.hop_length)
    if hop * (segment - 1) <= 2 * (n_fft // 2):
        raise ModelDataError(f"{path.name}: a chunk of {segment} frames x hop {hop} is too short for n_fft={n_fft}; "
                             f"use a larger --mdx_segment_size (e.g. {dim_t})")
    return MDXSettings(n_fft=n_fft, hop_length=hop, dim_f=dim_f, dim_t=dim_t, segment_size=segment,
                       overlap=float(params.overlap), batch_size=max(1, int(params.batch_size)),
                       enable_denoise=bool(params.enable_denoise), compensate=compensate, primary_stem=primary,
                       secondary_stem=secondary_stem_name(primary))


def _torch_device(ctx: LoadContext, network: OnnxNetwork) -> torch.device:
    """Spectrograms run on CUDA when ORT runs there too (I/O binding keeps them on the GPU); else on CPU."""
    name = (ctx.device.torch_device or "cpu").lower()
    if name.startswith("cuda") and network.on_cuda and torch.cuda.is_available():
        return torch.device(name)
    return torch.device("cpu")


def load_model(ctx: LoadContext) -> MDXModel:
    """Build an MDX-Net model from its .onnx file and hash parameters (one ORT session for its lifetime)."""
    path = Path(ctx.model_path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    # fail on missing hash parameters before paying for a session
    for key in ("compensate", "mdx_dim_f_set", "mdx_dim_t_set", "mdx_n_fft_scale_set"):
        _require(ctx.model_data or {}, key, path)
    torch_device = (ctx.device.torch_device or "cpu").lower()
    cuda_index = int(torch_device.split(":")[1]) if torch_device.startswith("cuda:") else 0
    network = OnnxNetwork(path, ctx.device.onnx_providers or ("CPUExecutionProvider",), ctx.logger,
                          cuda_device_id=cuda_index)
    channels = network.input_shape[1]
    if isinstance(channels, int) and channels > 0 and channels != 4:
        raise ModelLoadError(f"{path.name}: expected 4 spectrogram channels (L/R re/im), got {network.input_shape}")
    segment = int(ctx.params.segment_size)
    if network.fixed_frames is not None and segment != network.fixed_frames:
        bins = network.fixed_bins or int(ctx.model_data["mdx_dim_f_set"])
        dynamic = network.with_time_axis(segment, bins)
        if dynamic is not None:
            ctx.logger.info("MDX: the network's time axis made dynamic to run segment_size %d (the reference "
                            "converts the graph to torch for this)", segment)
            network = dynamic
    settings = resolve_settings(ctx, network.fixed_frames, network.fixed_bins)
    if ctx.precision != "fp32":
        ctx.logger.info("MDX: precision %s has no effect on ONNX Runtime models (they run as exported)", ctx.precision)
    device = _torch_device(ctx, network)
    ctx.logger.debug("MDX: %s on %s (STFT on %s)", settings, network.providers, device)
    return MDXModel(network, settings, normalization_threshold=ctx.normalization_threshold,
                    amplification_threshold=ctx.amplification_threshold, invert_using_spec=ctx.invert_using_spec,
                    device=device, logger=ctx.logger, onnx_providers=network.providers)
