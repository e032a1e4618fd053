"""Publishing output files whole: owned temporary names, sets renamed together, leftovers of dead runs removed.

Every output vsep writes (stems, stem files, exported tables) is first written under a hidden temporary
name beside its final name, ``.vsep-<pid>-<run>.<final name>``, and renamed into place only when the
whole set of one result (all stems of one input) is written: on any failure (disk full in the second
stem, a directory in the way of a name, an exception) none of the set's new names appear and its
temporary files are removed. Work folders in the temp dir are named ``vsep-<what>-<pid>-<run>-...``.

The pid and run id say whose a temporary name is: a later run into the same directory (and every run,
in the temp dir) removes the leftovers of runs whose process is gone (killed, crashed, power lost) and
never those of a live one. The run id starts with a short tag of the host name, so that on a directory
shared between machines a run only judges the leftovers of its own machine's processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vsep_core.errors import AudioWriteError

log = logging.getLogger("vsep")

OWNED_NAME = re.compile(r"^(?:\.vsep|vsep-[a-z]+)-(\d+)-([0-9a-f]{4})([0-9a-f]{6})[.-]")
"""A temporary name vsep made: ``.vsep-<pid>-<run>.<name>`` or ``vsep-<what>-<pid>-<run>-<random>``
(run = 4 hex digits of host tag + 6 random)."""
NAME_MAX = 255


def host_tag() -> str:
    """Four hex digits naming this machine (its host name, hashed)."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:4]


def new_run_id() -> str:
    """A fresh run id: this machine's :func:`host_tag` and six random hex digits."""
    return host_tag() + secrets.token_hex(3)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (another user's counts; so does a zombie)."""
    if pid == os.getpid():
        return True
    if os.name == "nt" or pid <= 0:  # os.kill(pid, 0) would end the process on Windows: never judge there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def owner_of(name: str) -> tuple[int, str] | None:
    """``(pid, host tag)`` of a temporary name vsep made, None for any other name."""
    m = OWNED_NAME.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def remove_dead_leftovers(directory: str | Path) -> int:
    """Remove the temporary files and folders in `directory` of vsep runs on this machine whose process is
    gone; returns how many were removed. Leftovers of live runs, and every other name, are kept."""
    removed = 0
    mine = host_tag()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        owner = owner_of(entry.name)
        if owner is None or owner[1] != mine or pid_alive(owner[0]):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError:
            continue  # gone already, or not ours to remove: leave it
    if removed:
        log.info("removed %d temporary file(s) left in %s by stopped vsep runs", removed, directory)
    return removed


def work_dir(what: str, parent: str | Path | None = None) -> Path:
    """A new private folder ``vsep-<what>-<pid>-<run>-...`` in `parent` (default: the temp dir), after
    removing the folders there of dead runs. The caller removes it when done."""
    base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    remove_dead_leftovers(base)
    return Path(tempfile.mkdtemp(prefix=f"vsep-{what}-{os.getpid()}-{new_run_id()}-", dir=base))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class StagedFiles:
    """Files of one result, written under owned temporary names and published together by :meth:`publish`.

    Use through :func:`staged`: ``path = files.temp_for(final)`` gives the name to write to; on leaving the
    block every final name appears (all renamed), or none does and the temporary files are gone.
    """

    def __init__(self, allow_empty: bool = False):
        self.allow_empty = allow_empty
        self.run = new_run_id()
        self.pending: dict[Path, Path] = {}  # final (as given) -> temporary
        self._keys: set[Path] = set()  # the finals, resolved: two names of one file are one name
        self._swept: set[Path] = set()

    def temp_for(self, final: str | Path) -> Path:
        """The temporary name to write `final` to (its directory is created; dead runs' leftovers there removed).

        Two files of one set with the same final name are an error: one would overwrite the other."""
        final = Path(final)
        key = final.parent.resolve() / final.name
        if key in self._keys:
            raise AudioWriteError(f"two outputs of one result would both be written to {final}; give them "
                                  "different names", path=str(final))
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AudioWriteError(f"cannot create the output directory {final.parent}: {exc.strerror or exc}",
                                  path=str(final)) from exc
        if key.parent not in self._swept:
            self._swept.add(key.parent)
            remove_dead_leftovers(final.parent)
        prefix = f".vsep-{os.getpid()}-{self.run}."
        name = final.name
        room = NAME_MAX - len(prefix.encode())
        if len(name.encode()) > room:  # keep the end (the extension); the temporary name need not be whole
            name = name.encode()[-room:].decode("utf-8", "ignore")
        tmp = final.parent / f"{prefix}{name}"
        self._keys.add(key)
        self.pending[final] = tmp
        return tmp

    def publish(self) -> list[Path]:
        """Rename every temporary file to its final name, all or none; returns the final paths.

        Checked first: each was written (and is not empty unless `allow_empty`), no directory is in the
        way of a final name. A file already under a final name is replaced; if a rename fails, the names
        already renamed are put back as they were (the old file restored, a new name removed)."""
        for final, tmp in self.pending.items():
            if not tmp.is_file():
                raise AudioWriteError(f"writing {final} produced no file", path=str(final))
            if not self.allow_empty and tmp.stat().st_size == 0:
                raise AudioWriteError(f"writing {final} produced an empty file", path=str(final))
            if final.is_dir() or (final.exists() and not final.is_file()):
                raise AudioWriteError(f"cannot write {final}: a directory (or other non-file) of that name is in "
                                      "the way; move it or choose another output directory", path=str(final))
        mode = 0o666 & ~_umask()  # the usual mode, whatever mode the writer gave its temporary file
        done: list[tuple[Path, Path | None]] = []  # (final, backup of the file it replaced)
        current = next(iter(self.pending), None)
        try:
            for final, tmp in self.pending.items():
                current = final
                os.chmod(tmp, mode)
                backup = None
                if final.is_file():
                    backup = tmp.with_name(tmp.name + ".old")
                    try:
                        os.link(final, backup)
                    except OSError:  # no hard links here: move the old file aside instead
                        os.replace(final, backup)
                done.append((final, backup))
                os.replace(tmp, final)
        except OSError as exc:
            failed = current
            for final, backup in reversed(done):
                with contextlib.suppress(OSError):
                    if backup is not None:
                        os.replace(backup, final)
                    elif final != failed:
                        final.unlink()
            raise AudioWriteError(f"cannot write {failed}: {exc.strerror or exc}", path=str(failed)) from exc
        finally:
            for _, backup in done:
                if backup is not None:
                    with contextlib.suppress(OSError):
                        backup.unlink()
        published = list(self.pending)
        self.pending, self._keys = {}, set()
        return published

    def discard(self) -> None:
        """Remove every temporary file not published."""
        for tmp in self.pending.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
        self.pending, self._keys = {}, set()


@contextlib.contextmanager
def staged(allow_empty: bool = False) -> Iterator[StagedFiles]:
    """A :class:`StagedFiles` set, published when the block ends without an error and discarded otherwise."""
    files = StagedFiles(allow_empty)
    try:
        yield files
        files.publish()
    finally:
        files.discard()
