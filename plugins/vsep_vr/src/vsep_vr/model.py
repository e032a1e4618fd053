"""Loading a VR model (.pth on torch, .onnx on ONNX Runtime) and separating with it.

The signal path is UVR's VR separator: multi-band magnitude spectrogram -> windowed mask
inference -> aggression / post-process -> masked spectra -> multi-band reconstruction.
What differs on purpose: every stem is exactly as long as the input (UVR's output stops at
the centre of its last STFT frame, up to one hop short; vsep keeps UVR's samples and pads
the few missing ones with silence), and the network variant comes from the weights' shapes
(UVR guesses it from the file size).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vsep_core.api import LoadContext, Progress
from vsep_core.errors import ModelDataError, ModelLoadError, UsageError
from vsep_core.helpers import mono_or_stereo, precision_autocast, stem_pair
from vsep_core.resample import fix_length
from vsep_vr import bands as bandlib
from vsep_vr.inference import NON_ACCOM_STEMS, Runner, adjust_aggression, count_batches, merge_artifacts, predict_mask
from vsep_vr.plugin import VRParams

log = logging.getLogger("vsep")

ONNX_META_PREFIX = "vsep_vr."
"""Metadata keys of an exported VR ONNX file: vsep_vr.offset, vsep_vr.generation, vsep_vr.bins,
vsep_vr.config (the network variant, JSON), vsep_vr.model_data (the hash parameters, JSON)."""

secondary_stem = stem_pair  # the reference's pairing, shared by every family (vsep_core.helpers)


class VRModel:
    """A loaded VR model: `separate(audio)` -> {primary, secondary} at `sample_rate`."""

    def __init__(self, runner: Runner, offset: int, v51: bool, band_params: bandlib.BandParams, primary: str,
                 settings: VRParams, description: str = ""):
        self.runner = runner
        self.offset = offset
        self.v51 = v51
        self.band_params = band_params
        self.settings = settings
        self.sample_rate = int(band_params.sr)
        # the reference loads the input at the top band's rate with that band's res_type (librosa.load)
        self.input_resampler = band_params.top.res_type
        self.stems = [primary, secondary_stem(primary)]
        self.description = description

    def __repr__(self) -> str:
        return f"VRModel({self.description or self.band_params.name}, stems={self.stems})"

    def masks(self, audio: np.ndarray, progress: Progress | None = None) -> tuple[np.ndarray, bandlib.BandSpectrogram]:
        """Stereo [2, n] -> (post-processed primary mask, the input's band spectrogram)."""
        bp, s = self.band_params, self.settings
        waves = bandlib.band_waves(audio, bp)
        frames = bandlib.frames_of(waves, bp)
        spec = bandlib.analyse(waves, bp, self.v51, frames, high_end=s.high_end_process)
        mag = np.abs(spec.spec)
        total = count_batches(frames, s.window_size, self.offset, s.batch_size, s.enable_tta)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        mask = predict_mask(mag, self.runner, s.window_size, self.offset, s.batch_size,
                            s.enable_tta, tick)
        invert = self.stems[0] in NON_ACCOM_STEMS
        adjust_aggression(mask, float(int(s.aggression) / 100), bp.bands[0].crop_stop, invert, bp.aggr_correction)
        if s.enable_post_process:
            merge_artifacts(mask, threshold=s.post_process_threshold)
        return mask, spec

    def separate(self, audio: np.ndarray, progress: Progress | None = None) -> dict[str, np.ndarray]:
        """float32 [channels, samples] at `sample_rate` (mono or stereo) -> {stem: float32
        [channels, samples]}, primary stem first, each exactly as long as the input."""
        x = mono_or_stereo(audio, "VR models")
        channels, n = x.shape
        if n == 0:
            return {stem: np.zeros((channels, 0), np.float32) for stem in self.stems}
        shortest = shortest_input(self.band_params)
        if n < shortest:  # shorter than one hop of some band (the reference fails there): pad with silence
            x = np.pad(x, ((0, 0), (0, shortest - n)))
        stereo = np.repeat(x, 2, axis=0) if channels == 1 else x
        mask, spec = self.masks(stereo, progress)
        X = spec.spec
        mag, phase = np.abs(X), np.angle(X)
        unit = np.exp(1.0j * phase)
        outs = {}
        for stem, m in ((self.stems[0], mask), (self.stems[1], 1 - mask)):
            y = np.nan_to_num(m * mag * unit, nan=0.0, posinf=0.0, neginf=0.0)
            high = None
            if self.settings.high_end_process and spec.high_end is not None and spec.high_end.shape[1]:
                high = bandlib.mirror_high_end(y, spec.high_end, self.band_params)
            wave = bandlib.synthesise(y, self.band_params, self.v51, high)
            wave = fix_length(wave, n).astype(np.float32)
            outs[stem] = wave.mean(axis=0, keepdims=True) if channels == 1 else wave
        return outs


# ---------------------------------------------------------------------------------------------
# loading


def _torch_runner(net: Any, device: str, precision: str = "fp32") -> Runner:
    import torch

    from vsep_vr.nets import fuse_conv_bn

    # channels_last lets oneDNN/cuDNN pick NHWC convolution kernels: about 25% less time for
    # the same network on CPU (measured on 2_HP-UVR, 512-frame windows), parity > 80 dB.
    net = fuse_conv_bn(net.eval()).to(device, memory_format=torch.channels_last)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), precision_autocast(torch.device(device).type, precision):
            x = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
            return net.predict_centre(x).float().contiguous().cpu().numpy()

    return run


def shortest_input(bp: bandlib.BandParams) -> int:
    """The fewest samples (at the top band's rate) that give every band at least one hop: shorter inputs are
    padded with silence to this length, and their stems cut back to the input's length."""
    top = bp.bands[-1].sr
    return max(int(np.ceil(b.hl * top / b.sr)) for b in bp.bands)


def _onnx_runner(path: Path, providers: tuple[str, ...]) -> tuple[Runner, dict[str, str]]:
    from vsep_core.checkpoints import onnx_session, quiet_onnxruntime

    available = set(quiet_onnxruntime().get_available_providers())
    chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
    sess = onnx_session(path, providers=chosen)
    meta = dict(sess.get_modelmeta().custom_metadata_map)
    name = sess.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return sess.run(None, {name: batch})[0]

    return run, meta


def _band_params(model_data: Mapping[str, Any], model_path: Path) -> bandlib.BandParams:
    name = model_data.get("vr_model_param")
    if not name:
        raise ModelDataError(f"no VR band parameters ('vr_model_param') for {model_path.name}: the model's hash "
                             "is in no VR hash table; pass model data or use a catalogued model")
    try:
        return bandlib.load_band_params(str(name))
    except KeyError as exc:
        raise ModelDataError(str(exc.args[0])) from exc


def load_torch_net(model_path: Path, bins: int) -> tuple[Any, Any]:
    """(network with the file's weights, its NetConfig) for a VR .pth state dict."""
    from vsep_vr import nets

    try:
        state = nets.load_state(str(model_path))
        config = nets.detect_config(state)
        net = nets.build_net(config, bins)
        net.load_state_dict(state, strict=True)
    except nets.ConfigError as exc:
        raise ModelLoadError(f"{model_path.name} is not a VR model vsep can load: {exc}") from exc
    except RuntimeError as exc:  # load_state_dict mismatches, unreadable zip
        raise ModelLoadError(f"{model_path.name}: cannot load its weights into the detected VR network: "
                             f"{str(exc).splitlines()[0]}") from exc
    except Exception as exc:  # pickle errors from weights_only, truncated files
        raise ModelLoadError(f"{model_path.name}: not a loadable VR checkpoint ({type(exc).__name__}: {exc})") from exc
    return net, config


def load_model(ctx: LoadContext[VRParams]) -> VRModel:
    """Load a VR model from `ctx.model_path`: a .pth state dict (torch) or an .onnx export
    (ONNX Runtime, see `vsep_vr.onnx_export`). Band parameters and the primary stem come from
    `ctx.model_data` (the hash entry); an exported .onnx carries its own copy."""
    path = Path(ctx.model_path)
    settings = ctx.params if ctx.params is not None else VRParams()
    if not isinstance(settings, VRParams):
        raise UsageError(f"VR load needs VRParams (core validates them), got {type(settings).__name__}")
    model_data: dict[str, Any] = dict(ctx.model_data or {})
    if path.suffix.lower() == ".onnx":
        runner, meta = _onnx_runner(path, tuple(ctx.device.onnx_providers))
        if ONNX_META_PREFIX + "offset" not in meta:
            raise ModelLoadError(f"{path.name} is not a VR ONNX export (no {ONNX_META_PREFIX}* metadata); "
                                 "write one with `vsep export-onnx MODEL.pth`")
        stored = json.loads(meta.get(ONNX_META_PREFIX + "model_data", "{}"))
        model_data = {**stored, **model_data}
        bp = _band_params(model_data, path)
        if int(meta.get(ONNX_META_PREFIX + "bins", bp.bins)) != bp.bins:
            raise ModelDataError(f"{path.name} was exported for {meta[ONNX_META_PREFIX + 'bins']} bins, "
                                 f"band parameters {bp.name} have {bp.bins}")
        offset = int(meta[ONNX_META_PREFIX + "offset"])
        v51 = meta.get(ONNX_META_PREFIX + "generation") == "v51"
        desc = f"{path.name} on ONNX Runtime"
    else:
        bp = _band_params(model_data, path)
        net, config = load_torch_net(path, bp.bins)
        if config.generation == "v51" and "nout" in model_data and (
                int(model_data["nout"]), int(model_data.get("nout_lstm", config.nout_lstm))) != (
                config.nout, config.nout_lstm):
            ctx.logger.warning("%s: weights have nout=%d nout_lstm=%d, model data says %s/%s; using the weights",
                               path.name, config.nout, config.nout_lstm, model_data["nout"],
                               model_data.get("nout_lstm"))
        runner = _torch_runner(net, ctx.device.torch_device, ctx.precision)
        offset, v51 = config.offset, config.generation == "v51"
        desc = f"{path.name} ({config.capacity_name}) on {ctx.device.torch_device}"
    if settings.window_size <= 2 * offset:
        raise UsageError(f"vr window_size {settings.window_size} is too small for this model (more than "
                         f"{2 * offset} frames needed)")
    primary = str(model_data.get("primary_stem") or "Vocals")
    return VRModel(runner, offset, v51, bp, primary, settings, desc)
