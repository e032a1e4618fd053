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
