"""`vsep batch --ray-address` on a real local Ray runtime (``ray.init(num_cpus=2)``), vsep-gain models.

One Ray runtime serves the whole module (starting it takes most of the time). The scenarios
are those of tests/test_batch.py: 20 files match `vsep separate`, a rerun does no work, a
killed actor's file is done again, a corrupt input fails alone with a non-zero exit.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import GAIN_PLUGIN
from tests.test_batch import (
    N_FILES,
    check_hold_outputs,
    hold_plugin_dir,
    hold_setup,
    manifest_entries,
    output_files,
    reference,
    wait_for,
)
from vsep_core.batch import BatchSettings, run_batch
from vsep_core.batch.manifest import DONE, FAILED

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_runtime(tmp_path_factory):
    """A local Ray runtime with 2 CPUs whose workers can import the vsep-gain and hold test plugins."""
    from vsep_core import plugins

    plugins.get_plugin_manager()
    hold = str(hold_plugin_dir(tmp_path_factory))
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")}
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(GAIN_PLUGIN), hold, saved["PYTHONPATH"]) if p)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_ray_batch_matches_separate_then_rerun_does_no_work(ray_runtime, tmp_path, tmp_path_factory, capsys):
    from vsep_core.cli import main

    inputs, models, expected = reference(tmp_path_factory)
    out = tmp_path / "out"
    rc = main(["batch", str(inputs), "--output_dir", str(out), "-m", "vocal_split.gain", "--model_file_dir",
               str(models), "--device", "cpu", "--offline", "--ray-address", "auto", "--workers", "2",
               "--num-gpus-per-worker", "0"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert output_files(out) == expected  # byte for byte what `vsep separate` writes
    entries = manifest_entries(out)
    assert len(entries) == N_FILES and all(e.status == DONE and e.attempts == 1 for e in entries.values())
    assert {e.worker.split(".")[0] for e in entries.values()} <= {"r0", "r1"}  # two Ray actors
    assert ray_runtime.is_initialized()  # the test's connection was used and left open
    events = []
    settings = BatchSettings({"model_file_dir": str(models), "output_format": "FLAC", "device": "cpu",
                              "offline": True}, ("vocal_split.gain",))
    report = run_batch(str(inputs), str(out), settings, ray_address="auto", on_event=events.append)
    assert report.ok and report.stats.skipped == N_FILES and report.stats.done == 0 and report.workers == 0
    assert not [e for e in events if e.kind == "started"]


def test_ray_killed_actor_file_is_redone_and_corrupt_input_fails_alone(ray_runtime, tmp_path):
    inputs, models, gate, marker, victim = hold_setup(tmp_path)
    broken = inputs / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    out = tmp_path / "out"
    killed = []

    def on_event(event):
        if event.kind == "started" and event.key == victim and not killed:
            wait_for(marker)  # the actor is inside model.separate() on the victim
            assert int(marker.read_text()) == event.worker.pid
            ray_runtime.kill(event.worker.handle, no_restart=False)  # a crash: Ray restarts the actor
            killed.append(event.worker.id)
            gate.unlink()

    settings = BatchSettings({"model_file_dir": str(models), "output_format": "FLAC", "device": "cpu"}, ("slow.hold",))
    report = run_batch(str(inputs), str(out), settings, ray_address="auto", workers=2, num_gpus_per_worker=0,
                       max_retries=1, on_event=on_event)
    assert killed and report.stats.workers_lost == 1 and report.stats.done == 6
    assert [k for k, _ in report.failures] == [str(broken)] and "broken.wav" in report.failures[0][1]
    entries = manifest_entries(out)
    assert entries[victim].status == DONE and entries[victim].attempts == 2
    assert entries[str(broken)].status == FAILED and entries[str(broken)].attempts == 1  # a decode error: not retried
    broken.unlink()
    check_hold_outputs(out, inputs)


def test_ray_batch_stopped_records_what_actors_finish_and_resume_does_the_rest(ray_runtime, tmp_path):
    import signal
    import threading
    import time

    from tests.test_stop import check_manifest_matches_outputs
    from vsep_core import stop

    inputs, models, gate, marker, victim = hold_setup(tmp_path, n=8)
    out = tmp_path / "out"
    settings = BatchSettings({"model_file_dir": str(models), "output_format": "FLAC", "device": "cpu"}, ("slow.hold",))

    def supervisor() -> None:  # SIGTERM to the driver while an actor holds the victim, then let the actor finish
        wait_for(marker)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
        gate.unlink()

    threading.Thread(target=supervisor, daemon=True).start()
    with pytest.raises(KeyboardInterrupt) as caught, stop.handled():  # Ray re-raises a bare KeyboardInterrupt,
        run_batch(str(inputs), str(out), settings, ray_address="auto", workers=2, num_gpus_per_worker=0)
    assert stop.exit_status(caught.value) == 143  # which stop.handled() turns back into the signal's Stopped
    entries = check_manifest_matches_outputs(out)  # every published file has its record, nothing else is there
    assert entries[victim].status == DONE  # the driver waited for the file the actor was holding
    finished = {k for k, e in entries.items() if e.status == DONE}
    assert len(finished) < 8
    started = []
    report = run_batch(str(inputs), str(out), settings, ray_address="auto", workers=2, num_gpus_per_worker=0,
                       on_event=lambda e: e.kind == "started" and started.append(e.key))
    assert report.ok and sorted(started) == sorted(set(map(str, inputs.glob("*.wav"))) - finished)
    assert report.stats.skipped == len(finished)
    check_hold_outputs(out, inputs)
