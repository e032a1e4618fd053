"""glibc malloc tuning: large temporaries are reused instead of page-faulted in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, ctypes.util, json, resource
from vsep_core import allocator
tuned = allocator.keep_large_blocks()


class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, (ctypes.c_size_t,), (ctypes.c_void_p,)
before = libc.mallinfo2().hblkhd
block = libc.malloc(24 << 20)  # glibc's first threshold is 128 KiB: by default a block this size is its own mmap
mapped = libc.mallinfo2().hblkhd - before
libc.free(block)
import torch
torch.set_num_threads(1)
x, s, g = torch.randn(2048, 1024), torch.rand(2048, 1), torch.rand(1024)
for _ in range(3):
    (x * s * g).sum()  # two live 8 MB temporaries per call, as a network's forward makes them
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    (x * s * g).sum()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20
print(json.dumps({"tuned": tuned, "again": allocator.keep_large_blocks(), "mapped": mapped, "faults": faults}))
"""


def _probe(env_value: str | None) -> dict:
    env = dict(os.environ)
    env.pop("VSEP_MALLOC_TUNING", None)
    if env_value is not None:
        env["VSEP_MALLOC_TUNING"] = env_value
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_tuned_malloc_reuses_large_blocks_and_can_be_turned_off() -> None:
    tuned = _probe(None)
    default = _probe("0")
    assert tuned["tuned"] is True and tuned["again"] is True
    assert default["tuned"] is False and default["again"] is False
    # tuned, a 24 MB block comes from the heap (kept for reuse when freed); by default it is a fresh mapping
    assert tuned["mapped"] == 0, tuned
    assert default["mapped"] >= 24 << 20, default
    # 16 MB of fresh pages per call would be 4096 faults of 4 KiB: tuned, (almost) none are fresh (glibc's
    # defaults fault in some or all of them, how many depending on how its thresholds have adapted)
    assert tuned["faults"] < 1024, tuned


def test_a_bad_tuning_value_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from vsep_core import config
    from vsep_core.errors import UsageError

    monkeypatch.setenv("VSEP_MALLOC_TUNING", "maybe")
    with pytest.raises(UsageError, match="VSEP_MALLOC_TUNING"):
        config.malloc_tuning_enabled()
    monkeypatch.setenv("VSEP_MALLOC_TUNING", "off")
    assert config.malloc_tuning_enabled() is False
    monkeypatch.delenv("VSEP_MALLOC_TUNING")
    assert config.malloc_tuning_enabled() is True
