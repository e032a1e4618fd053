"""CPU capability detection of the built-in device plugin."""

from __future__ import annotations

from vsep_core.devices import cpu_has_native_bf16

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
AVX512_BF16 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n"


def test_native_bf16_comes_from_the_cpu_flags() -> None:
    """AVX512-BF16 or AMX-BF16 count as native bf16; AVX2 alone, or no flags line (ARM, no /proc), does not."""
    assert cpu_has_native_bf16(AVX512_BF16) is True
    assert cpu_has_native_bf16(AMX) is True
    assert cpu_has_native_bf16(AVX2_ONLY) is False
    assert cpu_has_native_bf16("Features\t: fp asimd\n") is False
    assert cpu_has_native_bf16("") is False


def test_this_machine_answers_without_error() -> None:
    """Reading the real /proc/cpuinfo gives the same answer as parsing its text."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        text = ""
    assert cpu_has_native_bf16() is cpu_has_native_bf16(text)


def test_native_fp16_and_arm_bf16_flags() -> None:
    """AVX512-FP16 / AMX-FP16 count as native fp16; Arm's ``bf16`` feature as native bf16."""
    from vsep_core.devices import cpu_has_native_fp16

    assert cpu_has_native_fp16("flags\t: avx2 avx512f avx512_fp16\n") is True
    assert cpu_has_native_fp16(AVX512_BF16) is False
    assert cpu_has_native_bf16("Features\t: fp asimd bf16 i8mm\n") is True


def test_precision_resolution(monkeypatch, caplog) -> None:
    """auto: bf16 on a native-bf16 CPU, fp32 on another; asked-for bf16 falls back to fp32 with one warning;
    the reference's use_autocast means bf16 on CPU / fp16 on GPU, use_native_fp16 fp16 (fp32 on a plain CPU)."""
    import pytest

    from vsep_core import devices
    from vsep_core.errors import UsageError

    monkeypatch.setattr(devices, "_this_cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(devices, "_this_cpu_has_native_fp16", lambda: False)
    assert devices.resolve_precision("auto", "cpu") == "bf16"
    assert devices.resolve_precision("autocast", "cpu") == "bf16"
    assert devices.resolve_precision("autocast", "mps") == "fp16"
    assert devices.resolve_precision("auto", "mps") == "fp16"
    assert devices.resolve_precision("fp32", "cpu") == "fp32"
    with caplog.at_level("WARNING", logger="vsep"):
        assert devices.resolve_precision("fp16", "cpu") == "fp32"
    assert sum("no native fp16" in r.getMessage() for r in caplog.records) == 1
    caplog.clear()
    monkeypatch.setattr(devices, "_this_cpu_has_native_bf16", lambda: False)
    assert devices.resolve_precision("auto", "cpu") == "fp32"
    with caplog.at_level("WARNING", logger="vsep"):
        assert devices.resolve_precision("bf16", "cpu") == "fp32"
    assert sum("no native bf16" in r.getMessage() for r in caplog.records) == 1

    assert devices.requested_precision("fp32", use_autocast=True) == "autocast"
    assert devices.requested_precision("fp32", use_native_fp16=True) == "fp16"
    assert devices.requested_precision("auto") == "auto"
    with pytest.raises(UsageError, match="exclude each other"):
        devices.requested_precision("bf16", use_autocast=True)
    with pytest.raises(UsageError, match="exclude each other"):
        devices.requested_precision("fp32", use_autocast=True, use_native_fp16=True)


def test_choosing_the_cpu_does_not_import_onnx_runtime() -> None:
    """A CPU run of a torch model never needs ONNX Runtime's providers (importing it costs ~20 MB of RSS)."""
    import subprocess
    import sys

    probe = ("import sys; from vsep_core.devices import vsep_select_device as pick; "
             "d = pick(None, False) if not __import__('torch').cuda.is_available() else pick('cpu', False); "
             "print(d.torch_device, d.onnx_providers, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "cpu" and "CPUExecutionProvider" in out[1] and out[-1] == "False", out
