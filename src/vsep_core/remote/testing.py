"""Test helpers for the remote API: a fake backend that writes real audio, and a live server.

``FakeBackend`` knows three models: ``fake-gain.ckpt`` (writes ``(Vocals)`` = 0.5 x input and
``(Instrumental)`` = 0.25 x input, as 16-bit files in the requested format), ``fake-slow.ckpt``
(the same after ``VSEP_FAKE_SLOW_S`` seconds, default 30, reporting progress) and
``fake-fail.ckpt`` (raises). :class:`LiveServer` runs ``vsep serve``'s server in a separate
process on a free localhost port, so tests talk HTTP to a real uvicorn.

Run a fake server by hand: ``python -m vsep_core.remote.testing --port 8000 --data-dir /tmp/x``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from vsep_core.errors import ModelNotFoundError, UsageError
from vsep_core.remote.backend import FormField, common_fields, format_model_table

FAKE_MODELS = {
    "fake-gain.ckpt": {"Name": "Fake gain", "Type": "Fake", "Stems": ["vocals*", "instrumental"]},
    "fake-slow.ckpt": {"Name": "Fake slow gain", "Type": "Fake", "Stems": ["vocals*", "instrumental"]},
    "fake-fail.ckpt": {"Name": "Fake failure", "Type": "Fake", "Stems": ["vocals*", "instrumental"]},
}
FAKE_PRESETS = {"fake_pair": {"name": "Fake pair", "description": "two fake models", "algorithm": "avg_wave",
                              "models": ["fake-gain.ckpt", "fake-slow.ckpt"]}}
FAKE_GAINS = {"Vocals": 0.5, "Instrumental": 0.25}


class FakeBackend:
    """A backend with the fake models above; its runner is :func:`fake_separation`."""

    runner = "vsep_core.remote.testing:fake_separation"

    def option_fields(self) -> list[FormField]:
        """The common fields plus one architecture field, ``fake_gain`` (a float in 0..4)."""
        return [*common_fields(), FormField("fake_gain", float, "Extra gain", key="gain", group="fake_params",
                                          ge=0, le=4)]

    def check_selection(self, models: list[str], preset: str | None) -> list[str]:
        """Accept only the fake models and presets."""
        if preset is not None:
            if preset not in FAKE_PRESETS:
                raise UsageError(f"unknown preset {preset!r}; choose one of: {', '.join(FAKE_PRESETS)}")
            return list(FAKE_PRESETS[preset]["models"])
        for name in models:
            if name not in FAKE_MODELS:
                raise ModelNotFoundError(f"unknown model {name!r}; GET /models lists the models of this server")
        return list(models) or ["fake-gain.ckpt"]

    def check_options(self, separator_kwargs: dict[str, Any]) -> None:
        """Only flac and wav outputs."""
        if separator_kwargs.get("output_format", "flac").lower() not in ("flac", "wav"):
            raise UsageError("the fake backend writes only flac or wav")

    def models_json(self) -> Any:
        """The fake catalogue in the reference's nesting (arch -> friendly name -> record)."""
        return {"Fake": {info["Name"]: {"filename": name, "stems": info["Stems"]}
                         for name, info in FAKE_MODELS.items()}}

    def models_text(self, filter_sort_by: str | None) -> str:
        """The fake models as the CLI's table."""
        models = {k: v for k, v in FAKE_MODELS.items() if not filter_sort_by or filter_sort_by in k}
        return format_model_table(models)

    def presets(self) -> Any:
        """The fake presets."""
        return {"presets": FAKE_PRESETS}


def fake_outputs(audio: Any, gain: float = 1.0) -> dict[str, Any]:
    """What the fake models make of ``audio`` (float [samples, channels]): stem -> array."""
    return {stem: audio * g * gain for stem, g in FAKE_GAINS.items()}


def fake_separation(request: Any, progress: Callable[[int, int | None], None]) -> list[str]:
    """Worker-process runner of :class:`FakeBackend`: reads the input and writes scaled copies."""
    import soundfile as sf

    models = request.models or ["fake-gain.ckpt"]
    if request.preset:
        models = FAKE_PRESETS[request.preset]["models"]
    if "fake-fail.ckpt" in models:
        raise RuntimeError("fake-fail.ckpt always fails")
    if "fake-slow.ckpt" in models:
        seconds = float(os.environ.get("VSEP_FAKE_SLOW_S", "30"))
        steps = 20
        for i in range(steps):
            progress(10 + 80 * i // steps, 0)
            time.sleep(seconds / steps)
    audio, rate = sf.read(request.input_path, dtype="float32", always_2d=True)
    kwargs = request.separator_kwargs
    gain = kwargs.get("fake_params", {}).get("gain", 1.0)
    fmt = kwargs.get("output_format", "flac").lower()
    stem_name = Path(request.input_path).stem
    model_name = Path(models[0]).stem
    outputs = []
    for stem, data in fake_outputs(audio, gain).items():
        single = kwargs.get("output_single_stem")
        if single and single.lower() != stem.lower():
            continue
        name = (request.custom_output_names or {}).get(stem) or f"{stem_name}_({stem})_{model_name}"
        path = Path(request.output_dir) / f"{name}.{fmt}"
        sf.write(path, data, rate, subtype="PCM_16")
        outputs.append(str(path))
    progress(90, len(models) - 1)
    return outputs


def _fake_warm_up() -> None:
    import soundfile  # noqa: F401


fake_separation.warm_up = _fake_warm_up  # type: ignore[attr-defined]


CHROMIUM = os.environ.get("VSEP_CHROMIUM", "/usr/bin/chromium")
"""The browser the page's tests and screenshots drive: Debian's Chromium (``apt-get install -y chromium``)."""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A server in its own process on a free localhost port; use as a context manager.

    ``command`` is the argv that starts it, with ``{port}`` substituted; by default the fake
    backend's server of this module. ``url`` is its base URL once :meth:`start` returned.
    """

    def __init__(self, data_dir: str | Path, *, token: str | None = None, args: list[str] | None = None,
                 env: dict[str, str] | None = None, command: list[str] | None = None, startup_timeout: float = 30):
        self.data_dir = Path(data_dir)
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = command or [sys.executable, "-m", "vsep_core.remote.testing", "--data-dir", str(self.data_dir)]
        self.command = [a.replace("{port}", str(self.port)) for a in base] + ["--port", str(self.port)] + (args or [])
        if token:
            self.command += ["--token", token]
        self.env = {**os.environ, **(env or {})}
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"

    def start(self) -> LiveServer:
        """Start the process and wait until ``/health`` answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=1) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
                try:
                    if http.get(f"{self.url}/health").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start within {self.startup_timeout} s:\n{self.log()}")

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def headers(self) -> dict[str, str]:
        """The Authorization header for this server's token (empty without one)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def stop(self) -> None:
        """Graceful stop (SIGINT, as Ctrl-C), then kill after 15 s."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """Kill the server and its worker processes at once, like a crash or power loss."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Run a server with :class:`FakeBackend` (what :class:`LiveServer` starts by default)."""
    from vsep_core.remote.server import ServerSettings, serve

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-upload-mb", type=float, default=500)
    parser.add_argument("--retention-hours", type=float, default=24)
    parser.add_argument("--max-storage-mb", type=float, default=20480)
    parser.add_argument("--max-queue", type=int, default=100)
    args = parser.parse_args(argv)
    settings = ServerSettings(data_dir=Path(args.data_dir), token=args.token, workers=args.workers,
                              max_upload_mb=args.max_upload_mb, retention_hours=args.retention_hours,
                              max_storage_mb=args.max_storage_mb, max_queue=args.max_queue, sweep_interval_s=1)
    serve(settings, port=args.port, backend=FakeBackend(), log_level="warning")


if __name__ == "__main__":
    main()
