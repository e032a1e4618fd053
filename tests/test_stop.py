"""Stopping vsep the way services are stopped: SIGTERM and SIGHUP do what Ctrl-C does.

Real `vsep` processes, real audio files, the gain test plugin (and the "hold" plugin of
test_batch.py, which waits inside a separation so that a signal lands mid-run).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REFERENCE, cli_env
from tests.test_batch import GAINS, hold_plugin_dir, hold_setup, manifest_entries, wait_for
from vsep_core import stop
from vsep_core.batch.manifest import DONE, STATE_DIR

REAL_AUDIO = REFERENCE.parent / "audio" / "mardy20s.flac"


def vsep_process(*args: str, **env: str) -> subprocess.Popen:
    """The real `vsep` CLI in its own session (so a signal reaches it alone, as a supervisor sends it)."""
    return subprocess.Popen([sys.executable, "-m", "vsep_core.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(**env), start_new_session=True)


def error_lines(stderr: str) -> list[str]:
    """The non-blank lines that are not log lines (the command's own message)."""
    return [line for line in stderr.splitlines()
            if line.strip() and not re.match(r"(INFO|WARNING|DEBUG) ", line)]


def gone(pid: int, timeout: float = 10) -> bool:
    """Whether process `pid` has ended (within `timeout` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def temp_leftovers(tmp: Path) -> list[str]:
    """What a vsep run left in its temp folder (folders, or files named like vsep's)."""
    return [p.name for p in tmp.iterdir() if p.is_dir() or "vsep" in p.name]


def files_outside_state(out: Path) -> set[str]:
    """Every file under `out`, by relative path, except the batch state folder."""
    return {p.relative_to(out).as_posix() for p in out.rglob("*")
            if p.is_file() and STATE_DIR not in p.relative_to(out).parts}


# -- the stop module ---------------------------------------------------------------------------------------------

def test_stop_signals_raise_in_the_main_thread_and_deferred_blocks_hold_them():
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or pytest-xdist's own handler in a worker
    with stop.handled():
        with pytest.raises(stop.Stopped) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        assert caught.value.signum == signal.SIGTERM and stop.exit_status(caught.value) == 143
        done = []
        with pytest.raises(stop.Stopped) as caught:
            with stop.deferred():
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(0.05)
                done.append("published")  # not cut short
        assert done == ["published"] and stop.exit_status(caught.value) == 129
        assert stop.stop_message(caught.value) == "error: cancelled (SIGHUP)"
    assert signal.getsignal(signal.SIGTERM) is before  # the test process's handlers are back
    assert stop.exit_status(KeyboardInterrupt()) == 130 and stop.stop_message(KeyboardInterrupt()) == "error: cancelled"


# -- vsep separate -----------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_separate_stopped_mid_write_leaves_nothing_and_says_one_line(tmp_path, gain_model_dir, sig):
    mix, rate = sf.read(str(REAL_AUDIO), dtype="float32")
    song = tmp_path / "long song.wav"
    sf.write(str(song), np.tile(mix, (12, 1)), rate, subtype="PCM_16")  # 4 minutes: each stem takes a while to write
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    args = ["separate", str(song), "-m", "vocal_split.gain", "--model_file_dir", str(gain_model_dir),
            "--output_dir", str(out), "--output_format", "FLAC", "--log_level", "warning"]
    proc = vsep_process(*args, TMPDIR=str(tmp))
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(p.name.startswith(".") for p in out.iterdir())):  # a stem is being written
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    os.kill(proc.pid, sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr
    assert error_lines(stderr) == [f"error: cancelled ({signal.Signals(sig).name})"], stderr
    assert "Traceback" not in stderr and stdout == ""
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no hidden partial stem
    assert not temp_leftovers(tmp)  # no vsep-stems-* folder
    again = subprocess.run([sys.executable, "-m", "vsep_core.cli", *args], capture_output=True, text=True,
                           env=cli_env(TMPDIR=str(tmp)), timeout=300)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"long song_({s})_vocal_split.flac" for s in GAINS)
    assert not temp_leftovers(tmp)


# -- vsep batch (local worker processes) -------------------------------------------------------------------------

def check_manifest_matches_outputs(out: Path) -> dict:
    """Every file in the output directory is an output of a finished manifest entry and the reverse; no staging,
    no hidden partials. Returns the manifest entries."""
    entries = manifest_entries(out)
    recorded = {o.path for e in entries.values() if e.status == DONE for o in e.outputs}
    assert files_outside_state(out) == recorded
    assert not [p for p in out.rglob(".*") if STATE_DIR not in p.relative_to(out).parts]
    assert not (out / STATE_DIR / "staging").exists()
    return entries


@pytest.mark.slow
@pytest.mark.parametrize("target", ["driver", "group"])
def test_batch_stopped_mid_run_records_what_was_published_and_resume_does_the_rest(tmp_path, tmp_path_factory,
                                                                                   target):
    inputs, models, gate, marker, victim = hold_setup(tmp_path, n=8)
    plugin = str(hold_plugin_dir(tmp_path_factory))
    out = tmp_path / "out"
    args = ["batch", str(inputs), "--output_dir", str(out), "-m", "slow.hold", "--model_file_dir", str(models),
            "--device", "cpu", "--workers", "2"]
    env = {"PYTHONPATH": os.pathsep.join([plugin, cli_env()["PYTHONPATH"]])}
    proc = vsep_process(*args, **env)
    wait_for(marker)  # one worker is inside the victim's separation (largest first); the other works on
    worker_pid = int(marker.read_text())
    time.sleep(0.3)
    if target == "driver":
        os.kill(proc.pid, signal.SIGTERM)  # what a supervisor sends: the driver alone
    else:
        os.killpg(proc.pid, signal.SIGTERM)  # what `docker stop` / a terminal hang-up sends: the whole group
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert error_lines(stderr) == ["error: cancelled (SIGTERM)"], stderr
    assert "Traceback" not in stderr
    assert gone(worker_pid)  # the stop reached the worker; nothing runs on after the driver
    time.sleep(1)
    entries = check_manifest_matches_outputs(out)  # nothing reached a final name without its record
    assert entries[victim].status != DONE
    finished = {k for k, e in entries.items() if e.status == DONE}
    gate.unlink()
    again = subprocess.run([sys.executable, "-m", "vsep_core.cli", *args], capture_output=True, text=True,
                           env=cli_env(**env), timeout=300)
    assert again.returncode == 0, again.stderr
    done_now = int(re.search(r"separated now\W+(\d+)", again.stdout).group(1))
    skipped = int(re.search(r"already done \(skipped\)\W+(\d+)", again.stdout).group(1))
    assert done_now == 8 - len(finished) and skipped == len(finished)  # only the unfinished files
    entries = check_manifest_matches_outputs(out)
    assert all(e.status == DONE for e in entries.values()) and len(entries) == 8
    assert all(entries[k].attempts == 1 for k in finished)  # none done twice


# -- vsep serve --------------------------------------------------------------------------------------------------

def wait_healthy(proc: subprocess.Popen, port: int, timeout: float = 60) -> None:
    """Wait until the server `proc` answers /health on `port`."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_serve_stops_gracefully_on_sigterm_and_sighup(tmp_path, gain_model_dir, sig):
    from tests.test_remote_server import worker_processes
    from vsep_core.remote.testing import free_port

    port = free_port()
    data = tmp_path / "data"
    proc = vsep_process("serve", "--port", str(port), "--data-dir", str(data), "--model_file_dir",
                        str(gain_model_dir), "--device", "cpu", "--log_level", "warning")
    wait_healthy(proc, port)
    deadline = time.monotonic() + 60
    workers = []
    while not workers and time.monotonic() < deadline:
        workers = worker_processes(proc.pid)
        time.sleep(0.05)
    assert workers
    os.kill(proc.pid, sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr
    assert [line for line in stderr.splitlines() if line.startswith("error")] == \
        [f"error: cancelled ({signal.Signals(sig).name})"], stderr
    assert "Traceback" not in stderr
    assert all(gone(pid) for pid in workers)
    assert not (data / "tmp").exists()  # the upload spool is removed
    again = vsep_process("serve", "--port", str(port), "--data-dir", str(data), "--log_level", "warning")
    try:  # the data directory is free again: a new server starts on it
        wait_healthy(again, port)
    finally:
        os.kill(again.pid, signal.SIGTERM)
        again.communicate(timeout=60)
    assert again.returncode == 143


# -- vsep remote -------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_remote_separate_stopped_cancels_its_job_and_says_one_line(tmp_path):
    import httpx

    from vsep_core.remote.testing import LiveServer

    song = tmp_path / "song.wav"
    sf.write(str(song), np.zeros((4410, 2), dtype=np.float32), 44100)
    with LiveServer(tmp_path / "data", token="t0ken", env={"VSEP_FAKE_SLOW_S": "60"}) as server:
        headers = server.headers()
        proc = vsep_process("remote", "separate", str(song), "-m", "fake-slow.ckpt", "--poll_interval", "0.1",
                            "--output_dir", str(tmp_path / "out"), VSEP_API_URL=server.url, VSEP_API_TOKEN="t0ken")
        deadline = time.monotonic() + 60
        while httpx.get(server.url + "/", headers=headers).json()["running"] == 0:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 143, stderr
        assert [line for line in stderr.splitlines() if line.lower().startswith("error")] == \
            ["error: cancelled (SIGTERM)"], stderr
        deadline = time.monotonic() + 20
        while httpx.get(server.url + "/", headers=headers).json()["running"] != 0:  # the job was cancelled there
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_in_process_batch_stopped_between_files_resumes_with_the_rest(tmp_path):
    from tests.conftest import make_tone
    from tests.test_batch import gain_settings, model_dir
    from vsep_core.batch import run_batch

    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(5):
        sf.write(str(inputs / f"s{i}.wav"), make_tone(0.2 + 0.05 * i), 44100)
    out, settings = tmp_path / "out", gain_settings(model_dir(tmp_path / "models"))
    started: list[str] = []

    def on_event(event) -> None:
        if event.kind == "started":
            started.append(event.key)
            if len(started) == 3:
                os.kill(os.getpid(), signal.SIGTERM)  # arrives in this (the driver's) main thread

    with pytest.raises(stop.Stopped), stop.handled():
        run_batch(str(inputs), str(out), settings, workers=0, on_event=on_event)
    entries = check_manifest_matches_outputs(out)
    finished = {k for k, e in entries.items() if e.status == DONE}
    assert len(finished) == 2 and started[2] not in finished
    again: list[str] = []
    report = run_batch(str(inputs), str(out), settings, workers=0,
                       on_event=lambda e: e.kind == "started" and again.append(e.key))
    assert report.ok and sorted(again) == sorted({str(p) for p in inputs.glob("*.wav")} - finished)
    assert len(again) == 3 and report.stats.skipped == 2  # only the unfinished files
