"""Small helpers that plugins share (public API: plugins import them instead of keeping copies).

Only what really is the same for every family lives here; what must differ for parity with a
reference (chunk schedules, a family's own STFT) stays in its plugin.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vsep_core.api import ModelRecord
from vsep_core.errors import AudioWriteError

SCORE_METRICS = ("SDR", "SIR", "SAR", "ISR")


def scores_from_table(entry: Mapping[str, Any]) -> tuple[list[str], str | None, dict[str, Any]]:
    """``(stems, target stem, scores)`` from one entry of a scores table.

    The table's shape (audio-separator's medians, reduced): ``{"stems": [...], "target": stem,
    "median": {stem: [SDR, SIR, SAR, ISR]}, "extra": {...}}``; scores come back in the
    reference's shape ``{stem: {"SDR", "SIR", "SAR", "ISR"}}`` plus the extras.
    """
    scores: dict[str, Any] = {stem: dict(zip(SCORE_METRICS, values, strict=True))
                              for stem, values in entry.get("median", {}).items()}
    scores.update(entry.get("extra", {}))
    return list(entry.get("stems", [])), entry.get("target"), scores


def attach_scores(records: Iterable[ModelRecord], table: Mapping[str, Mapping[str, Any]]) -> list[ModelRecord]:
    """Records with stems, target stem and scores from `table` (keyed by file name); a record's own win."""
    out = []
    for record in records:
        entry = table.get(record.filename)
        if not entry:
            out.append(record)
            continue
        stems, target, scores = scores_from_table(entry)
        out.append(dataclasses.replace(record, stems=list(record.stems) or stems,
                                       target_stem=record.target_stem or target, scores={**scores, **record.scores}))
    return out


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad the last axis to exactly `length` samples."""
    n = audio.shape[-1]
    if n == length:
        return audio
    if n > length:
        return audio[..., :length]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, length - n)])


def peak_gain(peak: float, max_peak: float = 0.9, min_peak: float = 0.0) -> float:
    """The reference's ``normalize`` as a factor: down to `max_peak` when louder, up to `min_peak`
    when 0 < peak < `min_peak`, else 1."""
    if peak > max_peak:
        return max_peak / peak
    if min_peak and 0.0 < peak < min_peak:
        return min_peak / peak
    return 1.0


def stem_pair(name: str) -> str:
    """The complementary stem name as the reference pairs them: "Vocals" <-> "Instrumental",
    "No X" <-> "X" (a leading "No " only), anything else -> "No <name>"."""
    low = name.strip().lower()
    if low == "vocals":
        return "Instrumental"
    if low == "instrumental":
        return "Vocals"
    if low.startswith("no "):
        return name.strip()[3:]
    return f"No {name.strip()}"


class ConfigLoader(yaml.SafeLoader):
    """A safe YAML loader plus ``!!python/tuple`` (used by model configs); nothing that can run code."""


ConfigLoader.add_constructor("tag:yaml.org,2002:python/tuple",
                             lambda loader, node: tuple(loader.construct_sequence(node, deep=True)))


def load_yaml(path: str | Path) -> Any:
    """A model config read with :class:`ConfigLoader`."""
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=ConfigLoader)  # noqa: S506 - ConfigLoader is a SafeLoader


@contextlib.contextmanager
def atomic_path(final: str | Path, allow_empty: bool = False) -> Iterator[Path]:
    """Yield a hidden temporary path beside `final`; rename it into place (with the usual file mode)
    only if the block succeeds and wrote something, so a crash never leaves a half file under `final`."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not allow_empty and tmp.stat().st_size == 0:
            raise AudioWriteError(f"writing {final} produced an empty file")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; published files get the usual mode
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_atomically(data: bytes, dest: str | Path) -> Path:
    """Write `data` to `dest` through :func:`atomic_path`."""
    with atomic_path(dest, allow_empty=True) as tmp:
        tmp.write_bytes(data)
    return Path(dest)
