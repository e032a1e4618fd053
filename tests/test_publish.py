"""Output sets published whole, and the leftovers of dead runs cleaned up (vsep_core.publish)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from vsep_core.errors import AudioWriteError
from vsep_core.publish import StagedFiles, new_run_id, owner_of, pid_alive, remove_dead_leftovers, staged, work_dir


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_pid():
    """The pid of a process that runs while the test does."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def leftovers(folder: Path, pid: int) -> tuple[Path, Path, Path]:
    """A temporary stem, the backup of a replaced file and a work folder, as a run `pid` leaves them."""
    run = new_run_id()
    stem = folder / f".vsep-{pid}-{run}.song_(Vocals)_model.flac"
    stem.write_bytes(b"half a stem")
    backup = folder / f".vsep-{pid}-{run}.song_(Instrumental)_model.flac.old"
    backup.write_bytes(b"old stem")
    work = folder / f"vsep-stems-{pid}-{run}-abc123"
    work.mkdir()
    (work / "0.f32").write_bytes(b"\0" * 64)
    return stem, backup, work


def test_names_say_whose_they_are(tmp_path: Path):
    files = StagedFiles()
    tmp = files.temp_for(tmp_path / "song_(Vocals)_model.flac")
    assert tmp.parent == tmp_path and tmp.name.endswith(".song_(Vocals)_model.flac") and tmp.name.startswith(".")
    assert owner_of(tmp.name)[0] == os.getpid()
    work = work_dir("stems", tmp_path)
    assert owner_of(work.name)[0] == os.getpid() and work.name.startswith(f"vsep-stems-{os.getpid()}-")
    assert owner_of("song_(Vocals)_model.flac") is None and owner_of(".song.abc.flac") is None


def test_leftovers_of_a_dead_run_are_removed_by_the_next_run(tmp_path: Path, audio_file, gain_model_dir):
    from vsep_core.cli import run

    out = tmp_path / "out"
    out.mkdir()
    pid = dead_pid()
    assert not pid_alive(pid)
    stale = leftovers(out, pid)
    unrelated = out / ".keep.flac"
    unrelated.write_bytes(b"someone else's")
    temp_stale = leftovers(Path(tempfile.gettempdir()), pid)
    rc = run(["separate", str(audio_file()), "-m", "vocal_split.gain", "--model_file_dir", str(gain_model_dir),
              "--output_dir", str(out)])
    assert rc == 0
    assert not any(p.exists() for p in (*stale, *temp_stale))
    assert unrelated.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted([".keep.flac", "song_(Instrumental)_vocal_split.flac",
                                                            "song_(Vocals)_vocal_split.flac"])


def test_leftovers_of_a_live_run_are_kept(tmp_path: Path, live_pid: int, audio_file, gain_model_dir):
    from vsep_core.cli import run

    out = tmp_path / "out"
    out.mkdir()
    assert pid_alive(live_pid)
    busy = leftovers(out, live_pid)
    temp_busy = leftovers(Path(tempfile.gettempdir()), live_pid)
    try:
        rc = run(["separate", str(audio_file()), "-m", "vocal_split.gain", "--model_file_dir", str(gain_model_dir),
                  "--output_dir", str(out)])
        assert rc == 0
        assert all(p.exists() for p in (*busy, *temp_busy))
        assert remove_dead_leftovers(out) == 0
    finally:
        import shutil

        shutil.rmtree(temp_busy[2], ignore_errors=True)
        for p in temp_busy[:2]:
            p.unlink(missing_ok=True)


def test_a_machines_tag_guards_shared_folders(tmp_path: Path):
    pid = dead_pid()
    other_host = tmp_path / f".vsep-{pid}-ffff{new_run_id()[4:]}.x.flac"
    if owner_of(other_host.name)[1] == new_run_id()[:4]:
        pytest.skip("this machine's tag happens to be ffff")
    other_host.write_bytes(b"another machine's run")
    remove_dead_leftovers(tmp_path)
    assert other_host.exists()


def test_a_set_is_published_whole_or_not_at_all(tmp_path: Path):
    (tmp_path / "b.flac").mkdir()  # in the way of the second name
    with pytest.raises(AudioWriteError, match="in the way"):
        with staged() as files:
            files.temp_for(tmp_path / "a.flac").write_bytes(b"first")
            files.temp_for(tmp_path / "b.flac").write_bytes(b"second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.flac"]


def test_an_exception_while_writing_leaves_nothing(tmp_path: Path):
    with pytest.raises(RuntimeError, match="boom"):
        with staged() as files:
            files.temp_for(tmp_path / "a.flac").write_bytes(b"first")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_puts_back_what_was_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # A rename failing after the checks (a race: another process, a filesystem going away) cannot be made
    # to happen on cue for real: the third os.replace of the publish fails here.
    old = tmp_path / "a.flac"
    old.write_bytes(b"old a")
    files = StagedFiles()
    for name in ("a", "b", "c"):
        files.temp_for(tmp_path / f"{name}.flac").write_bytes(f"new {name}".encode())
    real_replace, calls = os.replace, []

    def flaky_replace(src, dst):
        calls.append(dst)
        if Path(dst).name == "c.flac":
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(AudioWriteError, match="c.flac: No space left"):
        files.publish()
    monkeypatch.setattr(os, "replace", real_replace)
    files.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac"]
    assert old.read_bytes() == b"old a"


def test_two_outputs_of_one_set_may_not_share_a_name(tmp_path: Path):
    with pytest.raises(AudioWriteError, match="both be written"):
        with staged() as files:
            files.temp_for(tmp_path / "a.flac")
            files.temp_for(tmp_path / "sub" / ".." / "a.flac")
    assert list(tmp_path.iterdir()) == []


def test_published_files_get_the_usual_mode(tmp_path: Path):
    with staged() as files:
        tmp = files.temp_for(tmp_path / "a.flac")
        tmp.write_bytes(b"x")
        os.chmod(tmp, 0o600)
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.flac").stat().st_mode & 0o777 == 0o666 & ~mask
