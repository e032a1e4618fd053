"""Which model should I use? The best model for a stem within a time budget, on this machine.

Every candidate (a catalogue model that outputs the stem, or an ensemble preset of such models) gets
its SDR for the stem from the catalogue's scores, and an estimated time for a song of the given
length from its counted cost (:mod:`vsep_core.cost`) and this device's calibration
(:mod:`vsep_core.calibration`). A model whose cost cannot be counted (its plugin gives no cost, or
its file is needed and not on disk) has unknown time: it is listed, never recommended, and never
given a made-up number. An ensemble costs the sum of its models.

Quality: ``max`` recommends the best SDR within the budget; ``balanced`` the fastest model within
0.5 dB of that; ``fast`` the fastest within 1.5 dB. With nothing within the budget, the fastest model
of known time is recommended and the advice says that it is over the budget.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vsep_core.api import ModelCost, ModelRecord
from vsep_core.calibration import Calibration
from vsep_core.errors import UsageError

QUALITY_MARGIN_DB = {"max": 0.0, "balanced": 0.5, "fast": 1.5}
DEFAULT_SONG_SECONDS = 210.0


@dataclass
class Candidate:
    """One row of the advice: a model or a preset, its SDR, estimated time, memory, size and licence."""

    name: str
    friendly_name: str
    kind: str  # "model" or "preset"
    models: list[str]
    architecture: str
    sdr: float | None
    seconds: float | None
    peak_memory_mb: float | None
    size_bytes: int | None
    on_disk: bool
    license: str | None
    command: str
    fits: bool = False


@dataclass
class Advice:
    """The advice for one stem: candidates (recommended first), the recommendation, and the assumptions."""

    stem: str
    song_seconds: float
    budget_seconds: float | None
    device: str
    quality: str
    dataset: str | None
    calibration: str
    candidates: list[Candidate] = field(default_factory=list)
    recommended: Candidate | None = None
    over_budget: bool = False
    verify: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``vsep advise --json`` prints)."""
        data = asdict(self)
        data["recommended"] = self.recommended.name if self.recommended else None
        return data


def parse_duration(text: str | float | None, what: str = "duration") -> float | None:
    """Seconds from ``"90"``, ``"90s"``, ``"2m"``, ``"1h"``, ``"3:30"`` or ``"1:02:03"``; None stays None."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip().lower()
        try:
            if ":" in s:
                parts = [float(p) for p in s.split(":")]
                if len(parts) > 3:
                    raise ValueError
                value = 0.0
                for p in parts:
                    value = value * 60 + p
            else:
                m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(h|m|min|s|sec)?", s)
                if not m:
                    raise ValueError
                value = float(m.group(1)) * {"h": 3600, "m": 60, "min": 60, None: 1, "s": 1, "sec": 1}[m.group(2)]
        except ValueError:
            raise UsageError(f"{what} {text!r} is not a duration: write e.g. 90s, 2m, 3:30") from None
    if not value > 0 or math.isinf(value):
        raise UsageError(f"{what} must be more than 0 seconds (got {text!r})")
    return value


def passes_for(cost: ModelCost, seconds: float) -> float:
    """Network passes for an input of `seconds`: whole passes, at least one."""
    return max(1.0, math.ceil(cost.passes * seconds - 1e-6))


def estimate_seconds(cost: ModelCost, architecture: str, cal: Calibration, seconds: float,
                     precision: str = "float32") -> float:
    """Estimated separation time of `seconds` of audio: the calibrated time model for the whole passes the
    input takes (`architecture` is kept for per-family terms; the time model has none today)."""
    per_second = cal.seconds_per_audio_second(cost, precision)
    return per_second * passes_for(cost, seconds) / cost.passes


def _size(record: ModelRecord, model_dir: Path | None) -> tuple[int | None, bool]:
    """(bytes on disk or to download, whether every file is on disk)."""
    if model_dir is not None and record.files and all((model_dir / f.name).is_file() for f in record.files):
        return sum((model_dir / f.name).stat().st_size for f in record.files), True
    sizes = [f.size for f in record.files]
    return (sum(sizes) if sizes and all(s is not None for s in sizes) else None), False  # type: ignore[arg-type]


def _command(models: list[str], preset: str | None, device: str) -> str:
    parts = ["vsep", "separate", "SONG"]
    if preset:
        parts += ["--ensemble_preset", preset]
    else:
        parts += ["-m", models[0]]
    if device != "cpu":
        parts += ["--device", device]
    return " ".join(shlex.quote(p) for p in parts)


def _dataset(records: list[ModelRecord], costs: dict[str, ModelCost | None], stem: str) -> str | None:
    """The data set whose SDRs rank the candidates: the one that scores most models of known time (scores
    of different data sets are never compared); ties go to catalog's preferred order."""
    from vsep_core import catalog

    counts: dict[str, int] = {}
    for r in records:
        for name in catalog.stem_scores(r, stem):
            counts[name] = counts.get(name, 0) + (2 if costs.get(r.filename) else 0) + 1  # known time counts most
    if not counts:
        return None
    preferred = [catalog.PREFERRED_DATASET, catalog.REFERENCE_DATASET]
    return max(counts, key=lambda d: (counts[d], -(preferred.index(d) if d in preferred else len(preferred))))


def _model_candidate(record: ModelRecord, stem: str, dataset: str | None, cal: Calibration, seconds: float,
                     model_dir: Path | None, device: str, model_cost: ModelCost | None) -> Candidate:
    from vsep_core import catalog

    scores = catalog.stem_scores(record, stem)
    size, on_disk = _size(record, model_dir)
    est = estimate_seconds(model_cost, record.architecture, cal, seconds) if model_cost else None
    return Candidate(name=record.filename, friendly_name=record.friendly_name, kind="model",
                     models=[record.filename], architecture=record.architecture,
                     sdr=scores.get(dataset) if dataset else None, seconds=est,
                     peak_memory_mb=cal.peak_memory_mb(model_cost) if model_cost else None, size_bytes=size,
                     on_disk=on_disk, license=record.license, command=_command([record.filename], None, device))


def _preset_candidates(by_name: dict[str, Candidate], records: dict[str, ModelRecord], stem: str,
                       cal: Calibration, device: str) -> list[Candidate]:
    from vsep_core import presets

    out = []
    for preset in presets.presets().values():
        members = [by_name.get(m) for m in preset.models]
        if any(m is None for m in members):
            continue
        members_c: list[Candidate] = [m for m in members if m is not None]
        times = [m.seconds for m in members_c]
        memories = [m.peak_memory_mb for m in members_c]
        sizes = [m.size_bytes for m in members_c]
        licences = sorted({m.license or "unknown" for m in members_c})
        out.append(Candidate(
            name=preset.id, friendly_name=preset.name, kind="preset", models=list(preset.models),
            architecture="+".join(sorted({m.architecture for m in members_c})), sdr=None,
            seconds=sum(t for t in times if t is not None) if all(t is not None for t in times) else None,
            # ensemble members run one after the other: the peak is the largest member's
            peak_memory_mb=max(m for m in memories if m is not None) if all(m is not None for m in memories)
            else None,
            size_bytes=sum(s for s in sizes if s is not None) if all(s is not None for s in sizes) else None,
            on_disk=all(m.on_disk for m in members_c), license=", ".join(licences),
            command=_command(list(preset.models), preset.id, device)))
    return out


def _pick(cands: list[Candidate], quality: str) -> tuple[Candidate | None, bool]:
    """(recommended candidate, whether it is over the budget)."""
    known = [c for c in cands if c.seconds is not None and c.sdr is not None]
    fitting = [c for c in known if c.fits]
    if fitting:
        best = max(c.sdr for c in fitting)  # type: ignore[type-var]
        near = [c for c in fitting if c.sdr >= best - QUALITY_MARGIN_DB[quality]]  # type: ignore[operator]
        return min(near, key=lambda c: (c.seconds, -c.sdr)), False  # type: ignore[operator]
    if known:
        return min(known, key=lambda c: (c.seconds, -c.sdr)), True  # type: ignore[operator]
    return None, False


def advise(stem: str, budget: str | float | None = None, per: str | float | None = DEFAULT_SONG_SECONDS,
           device: str = "cpu", quality: str = "balanced", calibration: Calibration | str | Path | None = None,
           model_dir: str | Path | None = None, limit: int | None = 15) -> Advice:
    """Advise the best model for `stem` within `budget` (per song of length `per`) on `device`.

    `budget` and `per` take seconds or durations ("2m", "3:30"); `calibration` is a Calibration, a
    calibration file, or None for the saved one of `device` (``vsep bench --quick`` makes it);
    `model_dir` is where downloaded models are (their size on disk, and models counted from their files).
    `limit` keeps the recommended candidate plus the best others by SDR (None: all).
    """
    from vsep_core import calibration as calib
    from vsep_core import catalog, cost
    from vsep_core.config import default_model_dir

    if quality not in QUALITY_MARGIN_DB:
        raise UsageError(f"quality must be one of {', '.join(QUALITY_MARGIN_DB)} (got {quality!r})")
    song = parse_duration(per, "--per") or DEFAULT_SONG_SECONDS
    budget_s = parse_duration(budget, "--budget")
    if isinstance(calibration, Calibration):
        cal, cal_source = calibration, "given"
    else:
        cal = calib.load_calibration(device, calibration)
        cal_source = str(calibration or calib.calibration_path(device))
    mdir = Path(model_dir) if model_dir else default_model_dir()
    installed = set(catalog.architecture_names())
    records = [r for r in catalog.sort_records(catalog.all_records(), stem) if r.architecture in installed]
    if not records:
        raise UsageError(f"no installed model outputs the stem {stem!r} (see vsep models)")
    costs = {r.filename: cost.cost_of(r, mdir) for r in records}
    dataset = _dataset(records, costs, stem)
    cands = [_model_candidate(r, stem, dataset, cal, song, mdir, device, costs[r.filename]) for r in records]
    by_name = {c.name: c for c in cands}
    cands += _preset_candidates(by_name, {r.filename: r for r in records}, stem, cal, device)
    for c in cands:
        c.fits = c.seconds is not None and (budget_s is None or c.seconds <= budget_s)
    recommended, over = _pick(cands, quality)

    def order(c: Candidate) -> tuple:
        return (c is not recommended, not c.fits, c.seconds is None, -(c.sdr if c.sdr is not None else -1e9),
                c.seconds if c.seconds is not None else 0.0)

    cands.sort(key=order)
    if limit is not None:
        cands = cands[:max(1, limit)]
    return Advice(stem=stem, song_seconds=song, budget_seconds=budget_s, device=device, quality=quality,
                  dataset=dataset, calibration=cal_source, candidates=cands, recommended=recommended,
                  over_budget=over)


def _test_audio(seconds: float, path: Path) -> Path:
    """`seconds` of a stereo test signal (tones over noise, 44.1 kHz) written as WAV to `path`."""
    import numpy as np
    import soundfile as sf

    rate = 44100
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    voice = 0.2 * np.sin(2 * np.pi * 220 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)))
    beat = 0.1 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.9)
    sf.write(str(path), np.stack([voice + beat, voice - beat], axis=1).astype(np.float32), rate, subtype="PCM_16")
    return path


def verify_recommendation(advice: Advice, seconds: float = 10.0, model_dir: str | Path | None = None,
                          calibration: Calibration | str | Path | None = None) -> dict[str, Any]:
    """Run the recommended model(s) on `seconds` of audio: estimated vs measured separation time (load
    excluded). Downloads the model when it is not on disk (unless offline)."""
    import logging
    import tempfile
    import time

    from vsep_core import calibration as calib
    from vsep_core import catalog, cost
    from vsep_core.config import default_model_dir
    from vsep_core.separator import Separator

    rec = advice.recommended
    if rec is None:
        raise UsageError("nothing was recommended, so there is nothing to verify")
    cal = calibration if isinstance(calibration, Calibration) else calib.load_calibration(advice.device, calibration)
    mdir = Path(model_dir) if model_dir else default_model_dir()
    estimated = measured = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        audio = _test_audio(seconds, Path(tmp) / "verify.wav")
        for name in rec.models:
            sep = Separator(log_level=logging.WARNING, model_file_dir=str(mdir), output_dir=tmp,
                            device=None if advice.device == "cpu" else advice.device)
            sep.load_model(name)
            record = catalog.resolve_model(name, mdir)
            model_cost = cost.cost_of(record, mdir)
            if model_cost is None:
                raise UsageError(f"{name}: its cost cannot be counted, so there is no estimate to verify")
            estimated += estimate_seconds(model_cost, record.architecture, cal, seconds)
            started = time.perf_counter()
            sep.separate(str(audio))
            measured += time.perf_counter() - started
    return {"model": rec.name, "seconds": seconds, "estimated_s": estimated, "measured_s": measured,
            "error_percent": (estimated / measured - 1) * 100 if measured else 0.0}
