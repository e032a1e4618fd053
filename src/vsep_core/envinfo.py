"""What this machine offers for separation: versions, devices, codecs. Used by `vsep env` and Separator."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import platform
import sys
from pathlib import Path
from typing import Any


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def total_ram_bytes() -> int | None:
    """Physical memory in bytes (POSIX sysconf; None where unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def parse_byte_size(text: str) -> int | None:
    """``"32768K"``, ``"32M"``, ``"1G"``, ``"1048576"`` (binary units) -> bytes; None when it is not a size."""
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in "KMG" else text
    return int(digits) * scale if digits.isdigit() else None


def cpu_cache_bytes() -> int | None:
    """The CPU's largest cache (usually the L3) in bytes: glibc's ``sysconf(_SC_LEVEL3_CACHE_SIZE)``, else the
    kernel's ``/sys/devices/system/cpu/cpu0/cache``; None where neither tells."""
    try:
        size = int(os.sysconf("SC_LEVEL3_CACHE_SIZE"))
    except (ValueError, OSError, AttributeError):
        size = 0
    if size > 0:
        return size
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        try:
            sizes.append(parse_byte_size(entry.read_text()) or 0)
        except OSError:
            continue
    return max(sizes, default=0) or None


def ffmpeg_version() -> str | None:
    """The FFmpeg that PyAV carries (libavcodec version), else None. No system binary is needed."""
    if importlib.util.find_spec("av") is None:
        return None
    import av

    versions = av.library_versions
    codec = versions.get("libavcodec")
    ffmpeg = getattr(av, "ffmpeg_version_info", None)
    if ffmpeg:
        return f"FFmpeg {ffmpeg} (bundled with PyAV {av.__version__})"
    return f"libavcodec {'.'.join(map(str, codec))} (bundled with PyAV {av.__version__})" if codec else None


def system_info(model_dir: str | None = None) -> dict[str, Any]:
    """Python, OS, CPU, RAM, torch / ONNX Runtime versions and devices, codecs, model directory."""
    import soundfile as sf

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "ram_gb": round(total_ram_bytes() / 2**30, 1) if total_ram_bytes() else None,
        "libsndfile": sf.__libsndfile_version__,
        "pyav": package_version("av"),
        "ffmpeg": ffmpeg_version(),
        "torch": None,
        "cuda_available": False,
        "cuda_devices": [],
        "mps_available": False,
        "onnxruntime": None,
        "onnxruntime_providers": [],
        "model_dir": model_dir,
    }
    if importlib.util.find_spec("torch") is not None:
        import torch

        info["torch"] = torch.__version__
        info["cuda_available"] = torch.cuda.is_available()
        if info["cuda_available"]:
            info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["mps_available"] = bool(torch.backends.mps.is_available())
    if importlib.util.find_spec("onnxruntime") is not None:
        from vsep_core.devices import quiet_onnxruntime

        ort = quiet_onnxruntime()
        info["onnxruntime"] = ort.__version__
        info["onnxruntime_providers"] = list(ort.get_available_providers())
    return info


def onnxruntime_packages() -> dict[str, str]:
    """Installed ONNX Runtime distributions (the reference logs these four)."""
    names = ("onnxruntime-gpu", "onnxruntime-silicon", "onnxruntime", "onnxruntime-directml")
    return {n: v for n in names if (v := package_version(n))}
