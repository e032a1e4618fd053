"""The reference implementation's own virtual environment, made on first use.

``audio-separator[cpu]`` (pinned: REFERENCE_VERSION) goes into ``benchmarks/.refenv``
(git-ignored), on top of the CPU build of ``torch`` (TORCH_VERSION) installed first, with a
constraints file that keeps pip from swapping it for the multi-GB CUDA build when a
dependency (torchvision, via onnx2torch) asks for torch. The reference writes its stems with
the ``ffmpeg`` binary; when there is none it is installed from Debian's packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFENV = HERE / ".refenv"
REFERENCE_VERSION = "0.47.1"
TORCH_VERSION = "2.13.0"
TORCHVISION_VERSION = "0.28.0"  # the torchvision release built against TORCH_VERSION


def python_of(env: Path = REFENV) -> Path:
    """The interpreter of the reference environment."""
    return env / "bin" / "python"


def installed_version(env: Path = REFENV) -> str | None:
    """audio-separator's version in `env`, or None when it is not (fully) installed."""
    py = python_of(env)
    if not py.exists():
        return None
    code = "import importlib.metadata as m, torch; print(m.version('audio-separator'))"
    proc = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def ensure_ffmpeg(log=print) -> str:
    """Path of an ``ffmpeg`` binary; installs Debian's package when none is on PATH."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    log("ffmpeg not found: installing Debian's package (apt-get install -y ffmpeg)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "ffmpeg"], check=True, env=env)
    found = shutil.which("ffmpeg")
    if not found:
        raise RuntimeError("ffmpeg is still missing after apt-get install ffmpeg")
    return found


def ensure_refenv(env: Path = REFENV, log=print) -> Path:
    """Create (once) the reference environment and return its python."""
    if installed_version(env) == REFERENCE_VERSION:
        return python_of(env)
    log(f"creating the reference environment in {env} (audio-separator {REFERENCE_VERSION}, torch {TORCH_VERSION} CPU)")
    if env.exists():
        shutil.rmtree(env)
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    py = str(python_of(env))
    constraints = env / "constraints.txt"
    constraints.write_text(f"torch=={TORCH_VERSION}\ntorchvision=={TORCHVISION_VERSION}\n")
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-c", str(constraints)]
    # the CPU wheel (local version "+cpu") ranks above the CUDA one of the same release
    subprocess.run(pip + [f"torch=={TORCH_VERSION}"], check=True)
    subprocess.run(pip + [f"audio-separator[cpu]=={REFERENCE_VERSION}", f"torchvision=={TORCHVISION_VERSION}"],
                   check=True)
    got = installed_version(env)
    if got != REFERENCE_VERSION:
        raise RuntimeError(f"reference environment incomplete: audio-separator {got!r}")
    return python_of(env)


def ensure_plotting(env: Path = REFENV) -> Path:
    """The reference environment's python, with matplotlib installed (the harness draws its plots there)."""
    py = ensure_refenv(env)
    if subprocess.run([str(py), "-c", "import matplotlib"], capture_output=True).returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-c",
                        str(env / "constraints.txt"), "matplotlib"], check=True)
    return py


def versions(py: Path) -> dict[str, str]:
    """Versions of the main packages in the environment of interpreter `py`."""
    code = ("import importlib.metadata as m, json\n"
            "out = {}\n"
            "for n in ('audio-separator', 'torch', 'onnxruntime', 'numpy'):\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")
    proc = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
    import json

    return json.loads(proc.stdout) if proc.returncode == 0 else {}


if __name__ == "__main__":
    ensure_ffmpeg()
    print(ensure_refenv())
    print(versions(python_of()))
    sys.exit(0)
