"""Large-block reuse in glibc's malloc, the allocator behind every CPU tensor.

glibc serves a block above its (self-adjusting) mmap threshold with a fresh ``mmap`` and gives it
back to the system on ``free``, and trims the heap's top once it holds more than twice that
threshold. A network's forward allocates and frees the same large temporaries over and over (a
RoFormer's qkv, attention output and 4x feed-forward layer of every token group, 4-32 MB each), so
each one is page-faulted in afresh: about 80,000 page faults per forward of one second of audio for
BS-RoFormer ep_317, 8-9% of its bf16 forward's CPU time on the 2-core EPYC of docs/benchmarks.md.
Fixing the thresholds (mmap above 32 MB, the most glibc accepts; trim above 256 MB) keeps those
blocks in the heap for the next group. jemalloc or tcmalloc would do the same but must be preloaded
(``LD_PRELOAD``) before the process starts, which a library cannot do for its caller.

Blocks above 32 MB (a convolutional network's full-resolution activations: 33-128 MB each in HTDemucs's
first layers and MDX23C's U-Net) are still mapped afresh; ``reuse_all_blocks()`` keeps those too, for the
span of a forward loop: 12-17% of an HTDemucs forward's CPU time on that EPYC was page faults.

``VSEP_MALLOC_TUNING=0`` leaves glibc's defaults alone. Not glibc (macOS, Windows, musl): nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import sys
import threading
from collections.abc import Iterator

from vsep_core import config

log = logging.getLogger("vsep")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
GLIBC_MMAP_MAX = 65536  # glibc's default number of blocks served by mmap at once
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024
_done: bool | None = None


def keep_large_blocks() -> bool:
    """Set glibc's mmap and trim thresholds once per process (see the module docstring); True when they are set."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or not config.malloc_tuning_enabled():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                      TRIM_THRESHOLD_BYTES))
    log.debug("glibc malloc keeps large blocks: %s", _done)
    return _done


_reuse_lock = threading.Lock()
_reuse_users = 0


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.malloc_trim.argtypes = (ctypes.c_size_t,)
        return libc
    except (OSError, AttributeError):  # not glibc
        return None


@contextlib.contextmanager
def reuse_all_blocks() -> Iterator[None]:
    """Inside: glibc's malloc maps no block afresh, whatever its size, and keeps freed ones for reuse.

    For forward loops whose temporaries are larger than the 32 MB that ``keep_large_blocks`` can keep. The heap
    then holds freed blocks until the next allocation (fragmentation can raise the peak: measured +3% RSS for
    HTDemucs, +50% for MDX23C, which therefore does not use it). On leaving (the last of nested or concurrent
    users) mmap is allowed again with ``keep_large_blocks``'s thresholds and the free memory goes back to the
    system (``malloc_trim``). A no-op where ``keep_large_blocks`` is (``VSEP_MALLOC_TUNING=0``, not glibc).
    """
    global _reuse_users
    libc = _libc() if keep_large_blocks() else None
    if libc is None:
        yield
        return
    with _reuse_lock:
        _reuse_users += 1
        if _reuse_users == 1:
            libc.mallopt(M_MMAP_MAX, 0)
    try:
        yield
    finally:
        with _reuse_lock:
            _reuse_users -= 1
            if _reuse_users == 0:
                libc.mallopt(M_MMAP_MAX, GLIBC_MMAP_MAX)
                libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
                libc.malloc_trim(0)
