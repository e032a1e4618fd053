"""The reference's `Separator` names that vsep keeps only for code moving from audio-separator.

`vsep_core.Separator` inherits :class:`ReferenceSeparatorAPI`: the device set-up methods under
the reference's names (`setup_torch_device`, `configure_cuda`, `configure_mps`,
`configure_dml`, `preload_onnxruntime_dependencies`), its download helper
(`download_file_if_not_exists`) and attributes (`torch_device` as a `torch.device`,
`model_friendly_name`, `arch_specific_params`). vsep's own code uses `Separator.device` and
`Separator.arch_params`; these are views of them. Nothing here imports torch before it is
asked for (`vsep --help` and `import vsep_core` stay light).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vsep_core.api import Device, ModelRecord
from vsep_core.errors import DeviceError

log = logging.getLogger("vsep")

ROFORMER_MODEL_KEYS = ("freqs_per_bands", "num_bands", "n_mels", "mel_bands")
"""Keys of a yaml's `model` section that make the reference flag it `is_roformer`."""


def mark_roformer(model_data: dict[str, Any], yaml_path: str | os.PathLike) -> dict[str, Any]:
    """Set ``model_data["is_roformer"] = True`` where the reference does, and return `model_data`.

    The reference's rule (0.47.1): the yaml's `model` section has a RoFormer band key
    (:data:`ROFORMER_MODEL_KEYS`) or a `model_type`/`type`/`architecture` naming a RoFormer, or
    the yaml's file name contains "roformer". vsep does not route on this flag (its plugins
    read the yaml themselves); it is kept for callers that read it.
    """
    model = model_data.get("model")
    model = model if isinstance(model, Mapping) else {}
    named = any(isinstance(model.get(k), str) and "roformer" in model[k].lower()
                for k in ("model_type", "type", "architecture"))
    if named or any(k in model for k in ROFORMER_MODEL_KEYS) or "roformer" in Path(yaml_path).name.lower():
        model_data["is_roformer"] = True
    return model_data


def _providers_for(device: Device, wanted: str, ort_providers: Iterable[str] | None) -> list[str]:
    """ONNX Runtime providers: `wanted` first when `ort_providers` (the available ones) has it."""
    if ort_providers is None:
        return list(device.onnx_providers)
    if wanted in ort_providers:
        return [wanted, "CPUExecutionProvider"]
    log.warning("%s is not available in ONNX Runtime, so ONNX models will run on the CPU", wanted)
    return ["CPUExecutionProvider"]


class ReferenceSeparatorAPI:
    """Mixin of `Separator`: the reference's public names that vsep's own code does not need."""

    device: Device | None
    model_record: ModelRecord | None
    arch_params: dict[str, dict[str, Any]]
    onnx_execution_provider: list[str] | None
    use_directml: bool
    offline: bool

    # -- attributes --------------------------------------------------------------------------------

    @property
    def torch_device(self) -> Any:
        """The torch device models run on, as a `torch.device` (None before the device is set up)."""
        value = self.__dict__.get("_torch_device")
        if isinstance(value, str):
            import torch

            value = self.__dict__["_torch_device"] = torch.device(value)
        return value

    @torch_device.setter
    def torch_device(self, value: Any) -> None:
        self.__dict__["_torch_device"] = value  # a string becomes a torch.device when read

    @property
    def model_friendly_name(self) -> str | None:
        """The catalogue's name of the loaded model (e.g. "Roformer Model: BS-Roformer-Viperx-1297")."""
        return self.model_record.friendly_name if getattr(self, "model_record", None) else None

    @property
    def arch_specific_params(self) -> dict[str, dict[str, Any]]:
        """Parameters by architecture name ("MDX", "VR", "Demucs", "MDXC", and any plugin's)."""
        from vsep_core import plugins

        archs = plugins.architectures().values()
        return {arch.name: self.arch_params.get(arch.flag_prefix, {}) for arch in archs}

    # -- device set-up ---------------------------------------------------------------------------

    def _use_device(self, device: Device, onnx_providers: list[str] | None = None) -> Any:
        self.device = device
        self.torch_device = device.torch_device
        self.onnx_execution_provider = onnx_providers if onnx_providers is not None else list(device.onnx_providers)
        log.info("device: %s (%s), ONNX Runtime providers %s", device.torch_device, device.description,
                 self.onnx_execution_provider)
        return self.torch_device

    def _select(self, request: str | None) -> Device:
        from vsep_core import plugins

        return plugins.get_plugin_manager().hook.vsep_select_device(request=request,
                                                                     use_directml=self.use_directml)

    def setup_torch_device(self, system_info: Any = None) -> Any:
        """Pick the best device in the reference's order (CUDA, Apple MPS, DirectML if enabled, CPU).

        `system_info` is accepted for the reference's signature and not needed. Returns the torch device.
        """
        return self._use_device(self._select(None))

    def configure_cuda(self, ort_providers: Iterable[str] | None = None) -> Any:
        """Run on CUDA (a :class:`DeviceError` if there is none); ONNX Runtime uses CUDA when it can."""
        device = self._select("cuda")
        return self._use_device(device, _providers_for(device, "CUDAExecutionProvider", ort_providers))

    def configure_mps(self, ort_providers: Iterable[str] | None = None) -> Any:
        """Run on Apple MPS (a :class:`DeviceError` if there is none); ONNX Runtime uses CoreML when it can."""
        device = self._select("mps")
        return self._use_device(device, _providers_for(device, "CoreMLExecutionProvider", ort_providers))

    def configure_dml(self, ort_providers: Iterable[str] | None = None) -> Any:
        """Run on DirectML (needs the torch-directml package); ONNX Runtime uses DirectML when it can."""
        try:
            import torch_directml
        except ImportError:
            raise DeviceError("DirectML needs the torch-directml package: pip install torch-directml") from None
        if not torch_directml.is_available():
            raise DeviceError("DirectML is not available on this machine; use the CPU (device='cpu')")
        if ort_providers is None:
            from vsep_core.devices import _ort_providers

            ort_providers = _ort_providers()
        device = Device(str(torch_directml.device()), ("DmlExecutionProvider", "CPUExecutionProvider"), "DirectML")
        return self._use_device(device, _providers_for(device, "DmlExecutionProvider", ort_providers))

    def preload_onnxruntime_dependencies(self) -> bool:
        """Let ONNX Runtime load its CUDA/cuDNN libraries now (onnxruntime >= 1.21); True when it did."""
        from vsep_core.devices import quiet_onnxruntime

        try:
            ort = quiet_onnxruntime()
        except ImportError:
            log.debug("ONNX Runtime is not installed; nothing to preload")
            return False
        if not hasattr(ort, "preload_dlls"):
            log.debug("this ONNX Runtime has no preload_dlls(); nothing to preload")
            return False
        try:
            ort.preload_dlls()
        except Exception as exc:  # a missing optional CUDA library must not stop a CPU run
            log.warning("could not preload ONNX Runtime's libraries: %s", exc)
            return False
        return True

    # -- downloads ---------------------------------------------------------------------------------

    def download_file_if_not_exists(self, url: str, output_path: str | os.PathLike) -> None:
        """Download `url` to `output_path` unless a file is there (resumed, retried, renamed into place).

        Raises :class:`~vsep_core.errors.DownloadError` (a RuntimeError) when it cannot.
        """
        from vsep_core import download

        download.download_url(url, output_path, offline=getattr(self, "offline", False))
