"""Built-in device selection plugin: CUDA -> MPS (ARM Mac) -> DirectML (opt-in) -> CPU.

Registered with the plugin manager like any third-party plugin; another plugin's
``vsep_select_device`` implementation (tryfirst) can take over.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import platform
from typing import Any

from vsep_core.api import Device
from vsep_core.errors import DeviceError, UsageError
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
    return bool(_cpu_flags(cpuinfo) & {"avx512_bf16", "amx_bf16", "bf16"})  # x86 flags; "bf16": Arm's Features


def cpu_has_native_fp16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies float16 in hardware (x86 AVX512-FP16 or AMX-FP16); like `cpu_has_native_bf16`."""
    if cpuinfo is None:
        return _this_cpu_has_native_fp16()
    return bool(_cpu_flags(cpuinfo) & {"avx512_fp16", "amx_fp16"})


def _cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first CPU in /proc/cpuinfo text (x86 ``flags``, Arm ``Features``)."""
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.partition(":")[2].split())
    return set()


def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return fh.read()
    except OSError:  # no /proc (macOS, Windows): no flags to read
        return ""


@functools.cache
def _this_cpu_has_native_fp16() -> bool:
    return cpu_has_native_fp16(_read_cpuinfo())


@functools.cache
def _this_cpu_has_native_bf16() -> bool:
    return cpu_has_native_bf16(_read_cpuinfo())


PRECISIONS = ("fp32", "bf16", "fp16")
"""What a plugin gets in ``LoadContext.precision`` (never ``auto``: core resolves it for the device)."""


def requested_precision(precision: str, use_autocast: bool = False, use_native_fp16: bool = False) -> str:
    """The precision asked for: `precision`, or the reference's flags' meaning (``autocast``: bf16 on CPU and
    fp16 on GPU, as torch.autocast's defaults; ``use_native_fp16``: fp16). Two of them at once: UsageError."""
    given = [name for name, on in (("use_autocast", use_autocast), ("use_native_fp16", use_native_fp16),
                                   (f"precision {precision}", precision != "fp32")) if on]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} exclude each other: choose one (use_autocast is --precision bf16 "
                         "on CPU / fp16 on GPU, use_native_fp16 is --precision fp16)")
    if use_autocast:
        return "autocast"
    return "fp16" if use_native_fp16 else precision


def resolve_precision(requested: str, device_type: str, logger: logging.Logger | None = None) -> str:
    """fp32, bf16 or fp16 for `requested` (fp32|bf16|fp16|auto|autocast) on a torch `device_type`.

    ``auto``: bf16 on a CPU with native bf16 and on a GPU that has it, fp16 on other GPUs, fp32 elsewhere.
    A half precision the device does not multiply natively (emulated: many times slower than fp32, see
    docs/benchmarks.md) falls back to fp32 with one warning on `logger`.
    """
    log = logger or logging.getLogger("vsep")
    gpu = device_type in ("cuda", "mps")
    bf16 = _device_has_bf16(device_type)
    if requested == "auto":
        return "bf16" if bf16 else "fp16" if gpu else "fp32"
    if requested == "autocast":
        requested = "fp16" if gpu else "bf16"
    if requested == "bf16" and not bf16:
        log.warning("precision bf16: this %s has no native bf16 (AVX512-BF16, AMX or Arm BF16 on CPUs); running in "
                    "fp32", "CPU" if device_type == "cpu" else "device")
        return "fp32"
    if requested == "fp16" and not gpu and not (device_type == "cpu" and cpu_has_native_fp16()):
        log.warning("precision fp16: this %s has no native fp16 (a GPU, or AVX512-FP16/AMX-FP16 on CPUs); running "
                    "in fp32", "CPU" if device_type == "cpu" else "device")
        return "fp32"
    if requested not in PRECISIONS:
        raise UsageError(f"unknown precision {requested!r}: choose one of fp32, bf16, fp16, auto")
    return requested


def _device_has_bf16(device_type: str) -> bool:
    if device_type == "cpu":
        return cpu_has_native_bf16()
    if device_type == "cuda":
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
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
    # ONNX Runtime's providers only matter off the CPU: importing it costs ~20 MB RSS a torch-only run never uses
    if request in (None, "", "auto"):
        if has_torch:
            import torch

            if torch.cuda.is_available():
                return Device("cuda", _pick(_ort_providers(), "CUDAExecutionProvider"), torch.cuda.get_device_name(0))
            if torch.backends.mps.is_available() and platform.machine() == "arm64":
                return Device("mps", _pick(_ort_providers(), "CoreMLExecutionProvider"), "Apple MPS")
        if use_directml and importlib.util.find_spec("torch_directml") is not None:
            import torch_directml

            if torch_directml.is_available():
                return Device(str(torch_directml.device()), _pick(_ort_providers(), "DmlExecutionProvider"), "DirectML")
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
        return Device(f"cuda:{index}", _pick(_ort_providers(), "CUDAExecutionProvider"),
                      torch.cuda.get_device_name(index))
    if request == "mps":
        if not has_torch:
            raise DeviceError("--device mps needs torch: pip install torch")
        import torch

        if not torch.backends.mps.is_available():
            raise DeviceError("--device mps: Apple MPS is not available here; use --device cpu")
        return Device("mps", _pick(_ort_providers(), "CoreMLExecutionProvider"), "Apple MPS")
    raise DeviceError(f"unknown device {request!r}: use cpu, cuda, cuda:N or mps")
