"""`vsep batch` and vsep_core.batch in local mode: worker processes, the manifest, resuming, fsspec.

The helpers at the top (corpus, reference outputs, the "hold" test plugin) are shared with
tests/test_batch_ray.py, which runs the same scenarios on a real local Ray runtime.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import make_tone
from vsep_core.batch import BatchSettings, Entry, Manifest, OutputRecord, discover_inputs, make_plan, run_batch
from vsep_core.batch.manifest import DONE, FAILED, RUNNING, STATE_DIR, parse_lines
from vsep_core.batch.runner import check_collisions
from vsep_core.errors import UsageError

N_FILES = 20
GAINS = {"Vocals": 0.25, "Instrumental": 0.75}
_CACHE: dict[str, object] = {}


# -- shared helpers (also used by test_batch_ray.py) -----------------------------------------------------------

def write_corpus(folder: Path, n: int = N_FILES) -> list[Path]:
    """`n` short stereo WAVs of different lengths (0.2 s and up) in two folders, plus the model dir."""
    files = []
    for i in range(n):
        sub = folder / ("disc2" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"song {i:02d}.wav"
        sf.write(str(path), make_tone(0.2 + 0.01 * i, amplitude=0.2 + 0.02 * i), 44100, subtype="PCM_16")
        files.append(path)
    return files


def model_dir(folder: Path) -> Path:
    """A model directory with the gain model `vocal_split.gain`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocal_split.gain").write_text(json.dumps({"stems": GAINS}))
    return folder


def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, bytes]]:
    """(input dir, model dir, {relative output path: bytes}) with outputs of `vsep separate` on each input.

    Computed once per session: every batch test compares its outputs with these bytes.
    """
    if "reference" not in _CACHE:
        from vsep_core.cli import main

        base = tmp_path_factory.mktemp("batch-reference")
        inputs = base / "in"
        files = write_corpus(inputs)
        models = model_dir(base / "models")
        expected: dict[str, bytes] = {}
        for sub in sorted({f.parent for f in files}):
            out = base / "ref" / sub.relative_to(inputs)
            rc = main(["separate", *[str(f) for f in files if f.parent == sub], "-m", "vocal_split.gain",
                       "--model_file_dir", str(models), "--output_dir", str(out), "--device", "cpu", "--offline"])
            assert rc == 0
        for path in (base / "ref").rglob("*.flac"):
            expected[path.relative_to(base / "ref").as_posix()] = path.read_bytes()
        assert len(expected) == 2 * N_FILES
        _CACHE["reference"] = (inputs, models, expected)
    return _CACHE["reference"]  # type: ignore[return-value]


def output_files(out: Path) -> dict[str, bytes]:
    """Every file under `out` except the batch state folder, by relative path."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and STATE_DIR not in p.relative_to(out).parts}


def manifest_entries(out: Path) -> dict[str, Entry]:
    """The folded manifest of an output directory."""
    return parse_lines((out / STATE_DIR / "manifest.jsonl").read_text())


def gain_settings(models: Path, **extra) -> BatchSettings:
    """Settings of `vsep batch -m vocal_split.gain` with the CLI's defaults (FLAC)."""
    kwargs = {"model_file_dir": str(models), "output_format": "FLAC", "device": "cpu", "offline": True, **extra}
    return BatchSettings(kwargs, ("vocal_split.gain",))


HOLD_PLUGIN = '''
"""A test plugin: gain models that stop inside separate() on one input length while a gate file exists."""
import json, os, time
from dataclasses import dataclass
from pathlib import Path
import numpy as np
from vsep_core.api import Architecture, LoadContext
from vsep_core.hookspecs import hookimpl

@dataclass
class HoldParams:
    """No parameters."""

class HoldModel:
    sample_rate = 44100
    def __init__(self, cfg):
        self.cfg = cfg
        self.stems = list(cfg["stems"])
    def separate(self, audio, progress=None):
        cfg = self.cfg
        if audio.shape[-1] == cfg["hold_frames"] and os.path.exists(cfg["gate"]):
            Path(cfg["marker"]).write_text(str(os.getpid()))
            deadline = time.monotonic() + 60
            while os.path.exists(cfg["gate"]) and time.monotonic() < deadline:
                time.sleep(0.02)
        return {k: audio * np.float32(g) for k, g in cfg["stems"].items()}

def load(ctx: LoadContext):
    return HoldModel(json.loads(ctx.model_path.read_text()))

@hookimpl
def vsep_architectures():
    return [Architecture(name="Hold", flag_prefix="hold", params=HoldParams, load=load, package="vsep-hold",
                         extensions=(".hold",), claims=lambda p: Path(p).suffix == ".hold")]
'''


def hold_plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that installs the "hold" test plugin when put on sys.path / PYTHONPATH (entry point included)."""
    if "hold" not in _CACHE:
        root = tmp_path_factory.mktemp("hold-plugin")
        (root / "vsep_hold").mkdir()
        (root / "vsep_hold" / "__init__.py").write_text('"""vsep-hold test plugin."""\n')
        (root / "vsep_hold" / "plugin.py").write_text(textwrap.dedent(HOLD_PLUGIN))
        info = root / "vsep_hold-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vsep-hold\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text("[vsep]\nhold = vsep_hold.plugin\n")
        _CACHE["hold"] = root
    return _CACHE["hold"]  # type: ignore[return-value]


def hold_setup(tmp_path: Path, victim_seconds: float = 0.3, n: int = 6) -> tuple[Path, Path, Path, Path, str]:
    """Inputs (one `victim_seconds` long, the rest 0.2 s), a hold model that stops on the victim while the
    gate exists; returns (inputs, models, gate, marker, victim key)."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(n - 1):
        sf.write(str(inputs / f"t{i}.wav"), make_tone(0.2, amplitude=0.3), 44100, subtype="PCM_16")
    victim = inputs / "victim.wav"
    sf.write(str(victim), make_tone(victim_seconds, amplitude=0.3), 44100, subtype="PCM_16")
    gate, marker = tmp_path / "gate", tmp_path / "holding"
    gate.write_text("closed")
    models = tmp_path / "models"
    models.mkdir()
    (models / "slow.hold").write_text(json.dumps({"stems": GAINS, "hold_frames": int(victim_seconds * 44100),
                                                  "gate": str(gate), "marker": str(marker)}))
    return inputs, models, gate, marker, str(victim)


def wait_for(path: Path, timeout: float = 60) -> None:
    """Wait until `path` exists (a worker reached the hold point)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def check_hold_outputs(out: Path, inputs: Path) -> None:
    """Exactly two stems per input, each the input times its gain (as 16-bit FLAC), nothing else."""
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
                   and STATE_DIR not in p.relative_to(out).parts)
    wavs = sorted(inputs.glob("*.wav"))
    assert files == sorted(f"{w.stem}_({s})_slow.flac" for w in wavs for s in GAINS)
    for w in wavs:
        mix = sf.read(str(w), dtype="float32")[0]
        for stem, gain in GAINS.items():
            got = sf.read(str(out / f"{w.stem}_({stem})_slow.flac"), dtype="float32")[0]
            assert got.shape == mix.shape and np.max(np.abs(got - mix * gain)) < 2e-4
    assert not (out / STATE_DIR / "staging").exists()


@pytest.fixture(scope="module")
def hold_on_path(tmp_path_factory):
    """Make the hold plugin importable by worker processes (not by this process's plugin manager)."""
    from vsep_core import plugins

    plugins.get_plugin_manager()  # built (and cached) without the hold plugin
    root = str(hold_plugin_dir(tmp_path_factory))
    sys.path.append(root)
    yield root
    sys.path.remove(root)


# -- units: inputs, manifest, plan ------------------------------------------------------------------------------

def test_list_file_inputs_relative_urls_missing_and_folders(tmp_path):
    (tmp_path / "a").mkdir()
    sf.write(str(tmp_path / "a" / "one.wav"), make_tone(0.1), 44100)
    (tmp_path / "dir" / "cd1").mkdir(parents=True)
    sf.write(str(tmp_path / "dir" / "cd1" / "two.flac"), make_tone(0.1), 44100)
    (tmp_path / "dir" / ".hidden.wav").write_bytes(b"x")
    (tmp_path / "dir" / "notes.txt").write_text("not audio")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my songs\n\na/one.wav\n{tmp_path / 'dir'}\nfile://{tmp_path / 'gone.wav'}\n")
    found = {f.key: f for f in discover_inputs(listing)}
    assert set(found) == {str(tmp_path / "a" / "one.wav"), str(tmp_path / "dir" / "cd1" / "two.flac"),
                          str(tmp_path / "gone.wav")}
    assert found[str(tmp_path / "dir" / "cd1" / "two.flac")].rel_dir == "cd1"
    assert found[str(tmp_path / "a" / "one.wav")].rel_dir == "" and found[str(tmp_path / "a" / "one.wav")].size > 0
    assert found[str(tmp_path / "gone.wav")].missing
    with pytest.raises(UsageError, match="input not found"):
        discover_inputs(tmp_path / "nothing-here.txt")


def test_output_directory_inside_the_input_directory_is_not_an_input(tmp_path):
    sf.write(str(tmp_path / "song.wav"), make_tone(0.1), 44100)
    (tmp_path / "out").mkdir()
    sf.write(str(tmp_path / "out" / "song_(Vocals)_m.wav"), make_tone(0.1), 44100)
    keys = [f.key for f in discover_inputs(tmp_path, exclude=str(tmp_path / "out"))]
    assert keys == [str(tmp_path / "song.wav")]


def test_inputs_that_would_overwrite_each_other_are_refused(tmp_path):
    for name in ("a.wav", "a.flac", "b.wav"):
        sf.write(str(tmp_path / name), make_tone(0.05), 44100)
    with pytest.raises(UsageError, match="same names"):
        check_collisions(discover_inputs(tmp_path))


def test_manifest_last_line_wins_and_a_torn_line_is_skipped(tmp_path):
    manifest = Manifest(str(tmp_path))
    assert manifest.open() == {}
    manifest.record(Entry("/x.wav", RUNNING, 0, "1:1", "fp"))
    manifest.record(Entry("/x.wav", DONE, 1, "1:1", "fp", [OutputRecord("x_(V)_m.flac", "ab" * 32, 10)]))
    manifest.record(Entry("/y.wav", FAILED, 1, "2:2", "fp", error="bad"))
    manifest.close()
    path = tmp_path / STATE_DIR / "manifest.jsonl"
    assert len(path.read_text().splitlines()) == 3
    with open(path, "a") as f:
        f.write('{"key": "/z.wav", "status": "do')  # a crash in the middle of a line
    again = Manifest(str(tmp_path))
    entries = again.open()
    assert set(entries) == {"/x.wav", "/y.wav"}
    assert entries["/x.wav"].status == DONE and entries["/x.wav"].outputs[0].size == 10
    assert len(path.read_text().splitlines()) == 2  # compacted on open
    with pytest.raises(UsageError, match="another vsep batch"):
        Manifest(str(tmp_path)).open()
    again.close()


def test_plan_orders_largest_first_and_checks_finished_outputs(tmp_path):
    sizes = {"small.wav": 0.1, "big.wav": 0.5, "mid.wav": 0.3, "done.wav": 0.2, "spent.wav": 0.15}
    for name, seconds in sizes.items():
        sf.write(str(tmp_path / name), make_tone(seconds), 44100)
    out = tmp_path / "out"
    out.mkdir()
    (out / "done_(V)_m.flac").write_bytes(b"stem")
    from vsep_core.batch.io import sha256_file

    inputs = discover_inputs(tmp_path, exclude=str(out))
    by = {Path(i.key).name: i for i in inputs}
    good = OutputRecord("done_(V)_m.flac", sha256_file(out / "done_(V)_m.flac"), 4)
    entries = {by["done.wav"].key: Entry(by["done.wav"].key, DONE, 1, by["done.wav"].sig, "fp", [good]),
               by["spent.wav"].key: Entry(by["spent.wav"].key, FAILED, 3, by["spent.wav"].sig, "fp", error="bad"),
               by["mid.wav"].key: Entry(by["mid.wav"].key, FAILED, 3, "other-version", "fp", error="bad")}
    plan = make_plan(inputs, entries, "fp", str(out), max_retries=2, verify="checksum")
    assert [Path(i.key).name for i, _ in plan.queue] == ["big.wav", "mid.wav", "small.wav"]
    assert [Path(i.key).name for i in plan.finished] == ["done.wav"]
    assert [Path(i.key).name for i, _ in plan.given_up] == ["spent.wav"]
    # a changed output (same size) fails the checksum but passes a size check
    (out / "done_(V)_m.flac").write_bytes(b"STEM")
    again = make_plan(inputs, entries, "fp", str(out), 2, "checksum")
    assert "done.wav" in [Path(i.key).name for i, _ in again.queue]
    assert [Path(i.key).name for i in make_plan(inputs, entries, "fp", str(out), 2, "size").finished] == ["done.wav"]
    # other settings: everything runs again, the spent file too
    other = make_plan(inputs, entries, "fp2", str(out), 2, "checksum")
    assert len(other.queue) == 5 and not other.given_up


def test_failures_that_another_attempt_could_cure_are_told_apart():
    import errno

    from vsep_core.batch.worker import is_environmental
    from vsep_core.errors import AudioReadError

    retried = [MemoryError(), OSError(errno.ENOSPC, "No space left on device"), ConnectionResetError(),
               TimeoutError(), RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")]
    once = [AudioReadError("cannot decode x.wav"), UsageError("bad value"), ValueError("shapes differ"),
            OSError(errno.ENOENT, "No such file"), RuntimeError("size mismatch for layer.weight")]
    assert [is_environmental(e) for e in retried] == [True] * len(retried)
    assert [is_environmental(e) for e in once] == [False] * len(once)


def test_param_flags_and_generated_flags_become_arch_params():
    from vsep_core.cli.batch import arch_params_from, parse_param

    assert parse_param("mdxc_overlap=4", ["mdx", "mdxc"]) == ("mdxc", "overlap", "4")
    assert parse_param("mdx_segment_size=256", ["mdx", "mdxc"]) == ("mdx", "segment_size", "256")
    assert parse_param("newarch_depth=2", ["mdx"]) == ("newarch", "depth", "2")
    with pytest.raises(UsageError, match="PREFIX_FIELD=VALUE"):
        parse_param("mdxc_overlap", ["mdxc"])
    path, params = arch_params_from(["--gain_scale", "0.5", "songs/"], ["mdxc_overlap=4"])
    assert path == "songs/" and params == {"gain_params": {"scale": 0.5}, "mdxc_params": {"overlap": "4"}}
    import click

    with pytest.raises(click.BadParameter):
        arch_params_from(["songs/", "--gain_scale", "99"], [])  # out of the plugin's range 0..10


# -- local worker processes -------------------------------------------------------------------------------------

def test_local_batch_matches_separate_then_rerun_does_no_work(tmp_path, tmp_path_factory, capsys):
    from vsep_core.cli import main

    inputs, models, expected = reference(tmp_path_factory)
    out = tmp_path / "out"
    rc = main(["batch", str(inputs), "--output_dir", str(out), "-m", "vocal_split.gain", "--model_file_dir",
               str(models), "--device", "cpu", "--offline", "--workers", "2"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert output_files(out) == expected  # byte for byte what `vsep separate` writes, in the input's folders
    entries = manifest_entries(out)
    assert len(entries) == N_FILES and all(e.status == DONE and e.attempts == 1 for e in entries.values())
    assert {e.worker.split(".")[0] for e in entries.values()} <= {"w0", "w1"}  # two local worker processes
    assert re.search(r"separated now\W+20\b", printed) and re.search(r"failed\W+0\b", printed)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")}
    events = []
    report = run_batch(str(inputs), str(out), gain_settings(models), workers=2, on_event=events.append)
    assert report.ok and report.stats.skipped == N_FILES and report.stats.done == 0 and report.workers == 0
    assert not [e for e in events if e.kind == "started"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")} == mtimes


def test_local_killed_worker_file_is_redone_nothing_lost_or_duplicated(tmp_path, hold_on_path):
    inputs, models, gate, marker, victim = hold_setup(tmp_path)
    out = tmp_path / "out"
    killed: list[int] = []
    order: list[str] = []

    def on_event(event):
        if event.kind == "started":
            order.append(event.key)
        if event.kind == "started" and event.key == victim and not killed:
            wait_for(marker)  # the worker is inside model.separate() on the victim
            assert int(marker.read_text()) == event.worker.pid
            os.kill(event.worker.pid, signal.SIGKILL)
            killed.append(event.worker.pid)
            gate.unlink()

    settings = BatchSettings({"model_file_dir": str(models), "output_format": "FLAC", "device": "cpu"}, ("slow.hold",))
    report = run_batch(str(inputs), str(out), settings, workers=2, max_retries=1, on_event=on_event)
    assert killed and report.ok, report.failures
    assert order[0] == victim and order.count(victim) == 2  # largest first; re-queued after the kill
    assert report.stats.workers_lost == 1 and report.stats.done == 6
    entries = manifest_entries(out)
    assert entries[victim].status == DONE and entries[victim].attempts == 2
    assert all(e.status == DONE and e.attempts == 1 for k, e in entries.items() if k != victim)
    check_hold_outputs(out, inputs)


def test_corrupt_input_fails_alone_with_nonzero_exit(tmp_path, tmp_path_factory, capsys):
    from vsep_core.cli import main

    _, models, _ = reference(tmp_path_factory)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        sf.write(str(inputs / f"ok{i}.wav"), make_tone(0.2), 44100)
    (inputs / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    out = tmp_path / "out"
    args = ["batch", str(inputs), "--output_dir", str(out), "-m", "vocal_split.gain", "--model_file_dir", str(models),
            "--device", "cpu", "--workers", "2", "--max-retries", "0"]
    rc = main(args)
    printed = capsys.readouterr()
    assert rc == 1, printed.err
    assert "broken.wav" not in printed.out  # the reason is printed once, in the one error line
    errors = [line for line in printed.err.splitlines() if "broken.wav" in line]
    assert len(errors) == 1 and errors[0].startswith("error: 1 of 4 file(s) failed: ")
    assert sorted(p.name for p in out.glob("*.flac")) == sorted(f"ok{i}_({s})_vocal_split.flac" for i in range(3)
                                                                 for s in GAINS)
    entries = manifest_entries(out)
    assert entries[str(inputs / "broken.wav")].status == FAILED and "broken.wav" in entries[
        str(inputs / "broken.wav")].error


# -- in-process runs (--workers 0): resuming, retries, fsspec ---------------------------------------------------

def test_rerun_redoes_only_what_is_missing_changed_or_left_running(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(4):
        sf.write(str(inputs / f"s{i}.wav"), make_tone(0.2 + 0.05 * i), 44100)
    models = model_dir(tmp_path / "models")
    out = tmp_path / "out"
    settings = gain_settings(models)
    assert run_batch(str(inputs), str(out), settings, workers=0).stats.done == 4
    (out / "s0_(Vocals)_vocal_split.flac").unlink()  # lost output
    with open(out / "s1_(Vocals)_vocal_split.flac", "r+b") as f:  # damaged output (same size)
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    # as if the driver died while s2 was running: a "running" line and a half-written staged stem
    manifest = Manifest(str(out))
    entries = manifest.open()
    manifest.record(Entry(str(inputs / "s2.wav"), RUNNING, 1, entries[str(inputs / "s2.wav")].input_sig,
                          settings.fingerprint()))
    manifest.close()
    junk = out / STATE_DIR / "staging" / "w0.1-abc" / "out" / ".s2_(Vocals)_vocal_split.tmp.flac"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"half")
    started = []
    report = run_batch(str(inputs), str(out), settings, workers=0,
                       on_event=lambda e: e.kind == "started" and started.append(Path(e.key).name))
    assert sorted(started) == ["s0.wav", "s1.wav", "s2.wav"] and report.stats.skipped == 1 and report.ok
    assert not (out / STATE_DIR / "staging").exists()
    assert len(list(out.glob("*.flac"))) == 8
    # other settings (another gain): every file is done again
    again = run_batch(str(inputs), str(out), gain_settings(models, gain_params={"scale": 0.5}), workers=0)
    assert again.stats.done == 4 and again.stats.skipped == 0


def test_failed_files_are_tried_again_across_runs_up_to_max_retries(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(str(inputs / "good.wav"), make_tone(0.2), 44100)
    bad = inputs / "bad.flac"
    bad.write_bytes(b"fLaC" + b"\x00" * 64)
    models = model_dir(tmp_path / "models")
    out = tmp_path / "out"

    def run(retries: int) -> tuple[list[str], object]:
        started: list[str] = []
        rep = run_batch(str(inputs), str(out), gain_settings(models), workers=0, max_retries=retries,
                        on_event=lambda e: e.kind == "started" and started.append(Path(e.key).name))
        return started, rep

    started, report = run(0)
    assert started == ["good.wav", "bad.flac"]  # largest first
    assert [Path(k).name for k, _ in report.failures] == ["bad.flac"] and report.stats.done == 1
    started, report = run(0)  # no attempts left: not tried, still reported
    assert started == [] and "gave up after 1 attempt" in report.failures[0][1]
    started, report = run(2)  # a rerun tries it again, but a decode error is not retried within the run
    assert started == ["bad.flac"] and report.stats.retries == 0 and len(report.failures) == 1
    assert manifest_entries(out)[str(bad)].attempts == 2
    sf.write(str(bad), make_tone(0.2), 44100)  # fixed: the count starts again
    started, report = run(0)
    assert started == ["bad.flac"] and report.ok


def test_fsspec_memory_urls_in_and_out(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    base = f"/batch-{os.getpid()}-{time.monotonic_ns()}"
    local = tmp_path / "a.wav"
    for name, seconds in (("a.wav", 0.2), ("cd2/b.wav", 0.3)):
        sf.write(str(local), make_tone(seconds), 44100)
        fs.pipe_file(f"{base}/in/{name}", local.read_bytes())
    models = model_dir(tmp_path / "models")
    out_url = f"memory://{base}/out"
    report = run_batch(f"memory://{base}/in", out_url, gain_settings(models), workers=0)
    assert report.ok and report.stats.done == 2
    names = sorted(p.split(f"{base}/out/", 1)[1] for p in fs.find(f"{base}/out"))
    assert names == [".vsep-batch/manifest.jsonl", "a_(Instrumental)_vocal_split.flac", "a_(Vocals)_vocal_split.flac",
                     "cd2/b_(Instrumental)_vocal_split.flac", "cd2/b_(Vocals)_vocal_split.flac"]
    vocals = sf.read(fs.open(f"{base}/out/cd2/b_(Vocals)_vocal_split.flac"), dtype="float32")[0]
    assert vocals.shape == (int(0.3 * 44100), 2) and np.max(np.abs(vocals - make_tone(0.3) * 0.25)) < 2e-4
    again = run_batch(f"memory://{base}/in", out_url, gain_settings(models), workers=0)
    assert again.stats.skipped == 2 and again.stats.done == 0
    fs.rm(base, recursive=True)


def test_model_that_cannot_load_stops_the_batch_with_its_error(tmp_path):
    from vsep_core.batch import BatchAbortedError

    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(str(inputs / "a.wav"), make_tone(0.1), 44100)
    settings = BatchSettings({"model_file_dir": str(model_dir(tmp_path / "models")), "device": "cpu",
                              "offline": True}, ("no_such_model.gain",))
    with pytest.raises(BatchAbortedError, match="no_such_model"):
        run_batch(str(inputs), str(tmp_path / "out"), settings, workers=0)
    entries = manifest_entries(tmp_path / "out")
    assert not entries or all(e.status != DONE for e in entries.values())


def test_bad_settings_are_refused_before_any_worker_starts(tmp_path):
    sf.write(str(tmp_path / "a.wav"), make_tone(0.1), 44100)
    with pytest.raises(UsageError, match="normalization_threshold"):
        run_batch(str(tmp_path), str(tmp_path / "out"), BatchSettings({"normalization_threshold": 2.0}, ("m",)))
    with pytest.raises(UsageError, match="max-retries"):
        run_batch(str(tmp_path), str(tmp_path / "out"), BatchSettings({}, ("m",)), max_retries=-1)
    assert not (tmp_path / "out").exists()


def test_batch_help_lists_the_scale_out_flags_and_imports_no_ray():
    import subprocess

    from tests.conftest import cli_env

    code = ("import sys; from vsep_core.cli import main; rc = main(['batch', '--help']); assert rc == 0; "
            "heavy = [m for m in ('ray', 'torch', 'fsspec') if m in sys.modules]; assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(COLUMNS="200"))
    assert proc.returncode == 0, proc.stderr
    for flag in ("--ray-address", "--num-gpus-per-worker", "--workers", "--max-retries", "--param", "--output_dir"):
        assert flag in proc.stdout
