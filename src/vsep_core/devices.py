"""Built-in device selection plugin: CUDA -> MPS (ARM Mac) -> DirectML (opt-in) -> CPU.

Registered with the plugin manager like any third-party plugin; another plugin's
``vsep_select_device`` implementation (tryfirst) can take over.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
from typing import Any

from vsep_core.api import Device
from vsep_core.errors import DeviceError
from vsep_core.hookspecs import hookimpl


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (x86 AVX512-BF16 or AMX-BF16).

    Without it torch emulates bf16 matmuls, which is many times slower than fp32 (measured in
    docs/benchmarks.md), so a CPU bf16 mode only makes sense where this is True.
    `cpuinfo` is the text of /proc/cpuinfo; when None this machine's answer, read once per process
    (callers may ask for every chunk they run).
    """
    if cpuinfo is None:
        return _this_cpu_has_native_bf16()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


@functools.cache
def _this_cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            return cpu_has_native_bf16(fh.read())
    except OSError:  # no /proc (macOS, Windows): no x86 bf16 flags to read
        return False


def quiet_onnxruntime() -> Any:
    """The ``onnxruntime`` module with its telemetry off (``ORT_DISABLE_TELEMETRY=1`` unless set: otherwise it
    prints "Failed to persist telemetry device ID" where the home directory is not writable) and its default
    logger at errors only."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # read when onnxruntime is first imported
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    return ort


def _ort_providers() -> list[str]:
    if importlib.util.find_spec("onnxruntime") is None:
        return []
    return list(quiet_onnxruntime().get_available_providers())


def _pick(available: list[str], wanted: str) -> tuple[str, ...]:
    return (wanted, "CPUExecutionProvider") if wanted in available else ("CPUExecutionProvider",)


@hookimpl(trylast=True)
def vsep_select_device(request: str | None, use_directml: bool) -> Device:
    """The reference's order, or exactly the requested device (no silent CPU fallback)."""
    has_torch = importlib.util.find_spec("torch") is not None
    providers = _ort_providers()
    if request in (None, "", "auto"):
        if has_torch:
            import torch

            if torch.cuda.is_available():
                return Device("cuda", _pick(providers, "CUDAExecutionProvider"), torch.cuda.get_device_name(0))
            if torch.backends.mps.is_available() and platform.machine() == "arm64":
                return Device("mps", _pick(providers, "CoreMLExecutionProvider"), "Apple MPS")
        if use_directml and importlib.util.find_spec("torch_directml") is not None:
            import torch_directml

            if torch_directml.is_available():
                return Device(str(torch_directml.device()), _pick(providers, "DmlExecutionProvider"), "DirectML")
        return Device("cpu", ("CPUExecutionProvider",), platform.processor() or platform.machine())
    request = request.lower()
    if request == "cpu":
        return Device("cpu", ("CPUExecutionProvider",), platform.processor() or platform.machine())
    if request.startswith("cuda"):
        if not has_torch:
            raise DeviceError("--device cuda needs torch with CUDA support: pip install torch (a CUDA build)")
        import torch

        if not torch.cuda.is_available():
            raise DeviceError(f"--device {request}: no CUDA device is available here; use --device cpu")
        index = int(request.split(":")[1]) if ":" in request else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {request}: only {torch.cuda.device_count()} CUDA device(s) here")
        return Device(f"cuda:{index}", _pick(providers, "CUDAExecutionProvider"), torch.cuda.get_device_name(index))
    if request == "mps":
        if not has_torch:
            raise DeviceError("--device mps needs torch: pip install torch")
        import torch

        if not torch.backends.mps.is_available():
            raise DeviceError("--device mps: Apple MPS is not available here; use --device cpu")
        return Device("mps", _pick(providers, "CoreMLExecutionProvider"), "Apple MPS")
    raise DeviceError(f"unknown device {request!r}: use cpu, cuda, cuda:N or mps")
