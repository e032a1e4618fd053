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

``VSEP_MALLOC_TUNING=0`` leaves glibc's defaults alone. Not glibc (macOS, Windows, musl): nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

from vsep_core import config

log = logging.getLogger("vsep")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
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
