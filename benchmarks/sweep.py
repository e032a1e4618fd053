#!/usr/bin/env python
"""Parity sweep: vsep against the reference (audio-separator 0.47.1) on every input kind and every parameter.

    python benchmarks/sweep.py                    # the whole grid; rewrites docs/parity.md
    python benchmarks/sweep.py --only mdx --no-report      # cases whose name contains "mdx"
    python benchmarks/sweep.py --list             # print the grid and stop

Both tools run on the oracle's tiny random-weight models (../shared/reference/models) with the
same Separator keyword arguments per case (runners/sweep_worker.py: one process per tool for the
whole grid). The grid is generated:

- input kinds (INPUTS): 44.1 kHz 16-bit stereo, 22.05 kHz, 48 kHz, mono, 24-bit, float with peaks
  above 1, MP3, 1.5 s, silence, an odd length, and 12 s (MDXC's yaml ``dim_t`` path), each through
  every model of MODELS at its defaults;
- every parameter of every architecture, read from the plugins' params tables (min / max / choices /
  type), moved to its edges and to a middle value, one at a time (SWEEP_VALUES replaces edges that
  neither tool can run, e.g. a 1-frame chunk, or that are unbounded); a new parameter joins by itself;
- core's settings (CORE_VALUES): thresholds, output rate, single stem, chunking, spectral inversion.

Each stem is compared with the metric of ../shared/tools/check_reference.py (benchmarks/parity.py).
Where the reference is wrong (docs/upstream-behaviour.md section 8) the case is compared with the
corrected expectation (MDX-Net levels, 8.1) or named as a difference by design (DIFFERENCES).
docs/parity.md gets one row per case: worst stem dB, length match, verdict.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import parity  # noqa: E402
import refenv  # noqa: E402

ROOT = HERE.parent
SHARED = ROOT.parent / "shared"
MODEL_DIR = SHARED / "reference" / "models"
SOURCE = SHARED / "reference" / "input" / "mardy20s_6s_16bit.flac"
LONG_SOURCE = SHARED / "audio" / "mardy20s.flac"
CACHE = HERE / ".cache" / "sweep"
REPORT = ROOT / "docs" / "parity.md"
MIN_DB = 50.0
COMMAND = "python benchmarks/sweep.py"

#: model key -> (file in MODEL_DIR, architecture, Separator params keyword)
MODELS = {
    "mdx": ("UVR-MDX-NET-Inst_HQ_3.onnx", "MDX", "mdx_params"),
    "vr_nets": ("2_HP-UVR.pth", "VR", "vr_params"),
    "vr_nets_new": ("UVR-De-Echo-Normal.pth", "VR", "vr_params"),
    "demucs": ("htdemucs.yaml", "Demucs", "demucs_params"),
    "mdx23c": ("MDX23C-8KFFT-InstVoc_HQ.ckpt", "MDXC", "mdxc_params"),
    "bs_roformer": ("model_bs_roformer_ep_317_sdr_12.9755.ckpt", "MDXC", "mdxc_params"),
    "mel_roformer": ("model_mel_band_roformer_ep_3005_sdr_11.4360.ckpt", "MDXC", "mdxc_params"),
}
#: the model each family's parameters are swept on (plus EXTRA_PARAM_MODELS)
PARAM_MODEL = {"MDX": "mdx", "VR": "vr_nets", "Demucs": "demucs", "MDXC": "bs_roformer"}
EXTRA_PARAM_MODELS: dict[str, tuple[list[str], list[Any] | None]] = {
    "mdxc.pitch_shift": (["mdx23c"], [2]), "vr.window_size": (["vr_nets_new"], None)}
#: per-family settings every case of that family starts from (Demucs: no random shifts unless swept)
BASE_PARAMS = {"Demucs": {"shifts": 0}}

#: input kind -> description (files made by make_inputs)
INPUTS = {
    "wav16": "44.1 kHz 16-bit stereo WAV, 3 s",
    "sr22050": "22.05 kHz 16-bit stereo WAV, 3 s",
    "sr48000": "48 kHz 16-bit stereo WAV, 3 s",
    "mono": "44.1 kHz mono WAV, 3 s",
    "pcm24": "44.1 kHz 24-bit stereo WAV, 3 s",
    "float_hot": "44.1 kHz float WAV, peaks at 1.6, 3 s",
    "mp3": "MP3 (LAME 192 kbit/s) of the 3 s clip",
    "short": "44.1 kHz 16-bit stereo, 1.5 s",
    "silence": "1 s of digital silence",
    "odd": "44.1 kHz stereo, 132 301 samples (an odd length)",
    "long12s": "44.1 kHz stereo, 12 s (>= 10 s: MDXC uses the yaml's dim_t)",
}
BASE_INPUT = "wav16"
#: models every input kind runs through; INPUT_MODELS adds or replaces per kind
INPUT_DEFAULT_MODELS = ["mdx", "vr_nets", "demucs", "bs_roformer"]
INPUT_MODELS = {"long12s": ["bs_roformer", "mel_roformer"],
                **{k: [*INPUT_DEFAULT_MODELS, "vr_nets_new", "mel_roformer"] for k in ("sr22050", "sr48000", "mono")},
                "wav16": list(MODELS)}  # MDX23C (slow on CPU) at its defaults and with pitch_shift only

#: replacements of a parameter's formal edges (prefix.field -> values); None = skip the parameter
SWEEP_VALUES: dict[str, list[Any] | None] = {
    "mdx.hop_length": [512, 2048, 768],          # min 1 gives chunks shorter than n_fft (both refuse)
    "mdx.segment_size": [32, 512, 128],          # min 1: same; no max
    "mdx.batch_size": [4],
    "mdx.overlap": [0.001, 0.95, 0.5],           # 0.999: ~2000 chunks per second of audio (runtime only)
    "demucs.overlap": [0.001, 0.95, 0.5],        # likewise
    "vr.batch_size": [4],
    "demucs.segment_size": ["1", "100", "4"],    # a string: "Default" or 1..100 seconds
    "demucs.shifts": [1, 20],
    "demucs.seed": [12345],                      # vsep only: the reference is seeded the same way (worker)
    "mdxc.segment_size": [64, 512, 128],         # min 2; MDX23C needs multiples of 32
    "mdxc.batch_size": [1, 8],
    "mdxc.pitch_shift": [-24, 24, -3, 2],        # the middle (0) is the default
}
#: settings a swept parameter needs to have any effect
CONTEXT = {
    "vr.post_process_threshold": {"enable_post_process": True},
    "demucs.seed": {"shifts": 2},
    "mdxc.override_model_segment_size": {"segment_size": 128},
    "mdxc.overlap": {"segment_size": 64},        # several chunks in the short clip
}
CONTEXT_INPUT = {"mdxc.override_model_segment_size": "long12s"}

#: core settings: name -> (values, models)
CORE_VALUES: dict[str, tuple[list[Any], list[str]]] = {
    "normalization_threshold": ([0.1, 1.0, 0.5], ["mdx", "bs_roformer", "vr_nets"]),
    "amplification_threshold": ([0.95], ["mdx", "bs_roformer", "vr_nets"]),
    "sample_rate": ([22050, 48000], ["mdx", "vr_nets"]),
    "output_single_stem": (["Vocals"], ["mdx", "bs_roformer", "demucs"]),
    "chunk_duration": ([1.0], ["mdx", "bs_roformer"]),
    "invert_using_spec": ([True], ["mdx"]),
}


#: cases below MIN_DB whose cause was traced outside vsep's code path under test (with the control run)
EXPLAINED = {
    "bs_roformer/wav16/pitch_shift=-24": (
        "the tiny random RoFormer on band-limited input: pitch -24 feeds it the clip upsampled 4x (3/4 of the "
        "spectrum empty); the same clip upsampled 4x with libsamplerate and written to a file gives the same "
        "40.6 dB (Vocals) / 61.9 dB at pitch_shift 0, so the pitch path is not the cause; float32 rounding "
        "in the empty bands decides the random model's output there"),
}


@dataclass
class Case:
    """One comparison: the same Separator call for both tools."""

    name: str
    model: str
    input: str
    setting: str
    kwargs: dict[str, Any]
    vsep_only: dict[str, Any] = field(default_factory=dict)
    ref_seed: int | None = None

    @property
    def arch(self) -> str:
        return MODELS[self.model][1]


# ------------------------------------------------------------------------------------------ inputs

def make_inputs(out: Path) -> dict[str, Path]:
    """Write every input kind of INPUTS under `out` (once); returns kind -> path."""
    import soxr

    out.mkdir(parents=True, exist_ok=True)
    clip, sr = sf.read(str(SOURCE), dtype="float32", always_2d=True)
    base = clip[: 3 * sr]
    paths = {k: out / f"{k}.wav" for k in INPUTS}
    paths["mp3"] = out / "mp3.mp3"
    if all(p.exists() for p in paths.values()):
        return paths
    sf.write(paths["wav16"], base, sr, subtype="PCM_16")
    for rate in (22050, 48000):
        sf.write(paths[f"sr{rate}"], soxr.resample(base, sr, rate, quality="VHQ"), rate, subtype="PCM_16")
    sf.write(paths["mono"], base.mean(axis=1), sr, subtype="PCM_16")
    sf.write(paths["pcm24"], base, sr, subtype="PCM_24")
    sf.write(paths["float_hot"], base * np.float32(1.6 / np.max(np.abs(base))), sr, subtype="FLOAT")
    subprocess.run([refenv.ensure_ffmpeg(), "-loglevel", "error", "-y", "-i", str(paths["wav16"]), "-codec:a",
                    "libmp3lame", "-b:a", "192k", str(paths["mp3"])], check=True)
    sf.write(paths["short"], base[: int(1.5 * sr)], sr, subtype="PCM_16")
    sf.write(paths["silence"], np.zeros((sr, 2), np.float32), sr, subtype="PCM_16")
    sf.write(paths["odd"], base[:132_301], sr, subtype="PCM_16")
    long, lsr = sf.read(str(LONG_SOURCE), dtype="float32", always_2d=True)
    sf.write(paths["long12s"], long[: 12 * lsr], lsr, subtype="PCM_16")
    return paths


# ------------------------------------------------------------------------------------------ grid

def _type_of(f: dataclasses.Field, owner: type) -> str:
    hints = typing.get_type_hints(owner)
    return str(hints.get(f.name, f.type))


def field_values(prefix: str, f: dataclasses.Field, owner: type) -> list[Any] | None:
    """Edges and a middle value of one parameter (SWEEP_VALUES first), the default left out."""
    key = f"{prefix}.{f.name}"
    if key in SWEEP_VALUES:
        return SWEEP_VALUES[key]
    meta, default, kind = f.metadata, f.default, _type_of(f, owner)
    if "bool" in kind:
        return [not bool(default)]
    if meta.get("choices"):
        return [c for c in meta["choices"] if c != default]
    lo, hi = meta.get("min"), meta.get("max")
    if lo is None or hi is None:
        return None  # unbounded and not in SWEEP_VALUES: listed as not swept
    is_int = "int" in kind and "float" not in kind
    mid = (lo + hi) // 2 if is_int else round((lo + hi) / 2, 6)
    values = []
    for v in (lo, hi, mid):
        v = int(v) if is_int else float(v)
        if v != default and v not in values:
            values.append(v)
    return values


def reference_param_keys() -> dict[str, set[str]]:
    """The arch params the reference's Separator takes (its constructor's default dicts, 0.47.1)."""
    return {
        "mdx_params": {"hop_length", "segment_size", "overlap", "batch_size", "enable_denoise"},
        "vr_params": {"batch_size", "window_size", "aggression", "enable_tta", "enable_post_process",
                      "post_process_threshold", "high_end_process"},
        "demucs_params": {"segment_size", "shifts", "overlap", "segments_enabled"},
        "mdxc_params": {"segment_size", "override_model_segment_size", "batch_size", "overlap", "pitch_shift"},
    }


def full_params(arch_obj: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Every field's default with `params` over it (the reference replaces rather than merges, 8.18)."""
    out = {f.name: f.default for f in arch_obj.param_fields()}
    out.update(params)
    return out


def build_grid() -> tuple[list[Case], list[str]]:
    """All cases, and the parameters not swept (with why)."""
    from vsep_core import plugins

    archs = plugins.architectures()
    ref_keys = reference_param_keys()
    cases: list[Case] = []
    skipped: list[str] = []

    def make(model: str, inp: str, setting: str, arch_params: dict[str, Any], core: dict[str, Any] | None = None
             ) -> Case:
        _, arch, keyword = MODELS[model]
        params = full_params(archs[arch], {**BASE_PARAMS.get(arch, {}), **arch_params})
        ref_params = {k: v for k, v in params.items() if k in ref_keys[keyword]}
        only = {k: v for k, v in params.items() if k not in ref_keys[keyword]}
        kwargs = {keyword: ref_params, **(core or {})}
        seed = int(params["seed"]) if arch == "Demucs" and params.get("shifts") else None
        name = f"{model}/{inp}/{setting}"
        return Case(name, model, inp, setting, kwargs, vsep_only={keyword: only} if only else {}, ref_seed=seed)

    for inp in INPUTS:
        for model in INPUT_MODELS.get(inp, INPUT_DEFAULT_MODELS):
            cases.append(make(model, inp, "defaults", {}))
    for arch_name, arch in archs.items():
        if arch_name not in PARAM_MODEL:
            continue
        for f in arch.param_fields():
            key = f"{arch.flag_prefix}.{f.name}"
            values = field_values(arch.flag_prefix, f, arch.params)
            if not values:
                skipped.append(f"{key} (unbounded; add it to SWEEP_VALUES)")
                continue
            extra_models, extra_values = EXTRA_PARAM_MODELS.get(key, ([], None))
            for model in [PARAM_MODEL[arch_name], *extra_models]:
                for v in (values if model == PARAM_MODEL[arch_name] else extra_values or values):
                    params = {**CONTEXT.get(key, {}), f.name: v}
                    cases.append(make(model, CONTEXT_INPUT.get(key, BASE_INPUT), f"{f.name}={v}", params))
    for name, (values, models) in CORE_VALUES.items():
        for model in models:
            for v in values:
                cases.append(make(model, BASE_INPUT, f"{name}={v}", {}, {name: v}))
    return cases, skipped


# ------------------------------------------------------------------------------------------ running

def _job(tool: str, cases: list[Case], inputs: dict[str, Path], work: Path) -> dict[str, Any]:
    jobs: dict[str, Any] = {"tool": tool, "cases": []}
    for c in cases:
        kwargs = dict(c.kwargs)
        if tool == "vsep":
            for k, extra in c.vsep_only.items():
                kwargs[k] = {**kwargs.get(k, {}), **extra}
        jobs["cases"].append({"name": c.name, "dir": str(work / safe(c.name)), "model": MODELS[c.model][0],
                              "model_dir": str(MODEL_DIR), "input": str(inputs[c.input]), "kwargs": kwargs,
                              "ref_seed": c.ref_seed})
    return jobs


def run_tools(cases: list[Case], inputs: dict[str, Path], work: Path, pythons: dict[str, str], workers: int,
              timeout: float) -> None:
    """Run every case with both tools, `workers` processes per tool at once, each process working through
    its share of the cases; a worker that dies leaves its remaining cases to the next round."""
    def pending(tool: str) -> list[Case]:
        return [c for c in cases if not (work / safe(c.name) / tool / "result.json").exists()]

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    while True:
        todo = {tool: pending(tool) for tool in pythons}
        if not any(todo.values()):
            return
        procs = []
        for tool, left in todo.items():
            for w in range(workers):
                share = left[w::workers]
                if not share:
                    continue
                job_file = work / f"jobs_{tool}_{w}.json"
                job_file.write_text(json.dumps(_job(tool, share, inputs, work)))
                log = open(work / f"log_{tool}_{w}.txt", "a")
                procs.append((subprocess.Popen([pythons[tool], str(HERE / "runners" / "sweep_worker.py"),
                                                str(job_file)], env=env, stdout=log, stderr=subprocess.STDOUT),
                              share, tool))
        for proc, _, _ in procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for _, share, tool in procs:  # the case a worker died on: record it, the next round goes on after it
            dead = next((c for c in share if not (work / safe(c.name) / tool / "result.json").exists()), None)
            if dead is not None:
                out = work / safe(dead.name) / tool
                out.mkdir(parents=True, exist_ok=True)
                (out / "result.json").write_text(json.dumps({"ok": False, "error": "worker died", "stems": {}}))


def safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)


# ------------------------------------------------------------------------------------------ comparing

def gain_factor(peak: float, max_peak: float, min_peak: float) -> float:
    """k of the reference's spec_utils.normalize (0.47.1): the normalised mix is k * mix."""
    if peak > max_peak:
        return max_peak / peak
    if min_peak and 0.0 < peak < min_peak:
        return min_peak / peak
    return 1.0


def mdx_expected(ref: dict[str, np.ndarray], case: Case, mix_peak: float) -> dict[str, np.ndarray]:
    """vsep's MDX-Net stems derived from the reference's (8.1: one consistent gain); check_reference.py's
    correction with the case's thresholds and the peak of the mix the reference loaded."""
    entry = json.loads((MODEL_DIR.parent / "manifest.json").read_text())["models"]["mdx"]["model_data"]
    primary, c = entry["primary_stem"], float(entry["compensate"])
    secondaries = [s for s in ref if s != primary]
    if primary not in ref or len(secondaries) != 1 or mix_peak == 0.0:
        return ref
    (secondary,) = secondaries
    k = gain_factor(mix_peak, float(case.kwargs.get("normalization_threshold", 0.9)),
                    float(case.kwargs.get("amplification_threshold", 0.0)))
    p_ref, s_ref = ref[primary].astype(np.float64), ref[secondary].astype(np.float64)
    m_n = s_ref + c * p_ref
    return {primary: p_ref / (k * mix_peak), secondary: (m_n - c * p_ref / mix_peak) / k}


def difference_by_design(case: Case) -> str | None:
    """The section-8 entry under which the reference's output differs from vsep's on purpose, if any."""
    kw, arch = case.kwargs, case.arch
    params = next((v for k, v in kw.items() if k.endswith("_params")), {})
    if kw.get("sample_rate", 44100) != 44100:
        return "8.12 (sample_rate is the reference's processing rate; vsep resamples only the output)"
    if kw.get("chunk_duration"):
        return "8.20 (the reference concatenates chunks without crossfade, normalised per chunk)"
    if kw.get("invert_using_spec") and arch == "MDX":
        return "8.2 (the reference's invert_using_spec fails on mismatched shapes)"
    if arch == "Demucs":
        if int(params.get("shifts", 0)) >= 2:
            return ("8.9 (the reference draws shift offsets from the unseeded global RNG, and its transformer "
                    "draws from the same RNG in every forward pass, so even seeded only its first offset is "
                    "vsep's: shifts=1 matches)")
        seg = params.get("segment_size", "Default")
        if str(seg).isdigit() and float(seg) > 7.8:
            return "8.24 (the reference runs the transformer past its training segment)"
    return None


def length_note(case: Case, vsep_len: int | None, ref_len: int | None, input_len: int) -> str:
    if vsep_len is None or ref_len is None:
        return "-"
    if vsep_len == ref_len:
        return "yes"
    if case.arch == "VR" and vsep_len == input_len:
        return f"input length ({ref_len - vsep_len:+d} in the reference, 8.11)"
    return f"no ({vsep_len} vs {ref_len})"


def compare_case(case: Case, work: Path, inputs: dict[str, Path]) -> dict[str, Any]:
    """Worst-stem parity and lengths of one case (both tools' results read from `work`)."""
    base = work / safe(case.name)
    ref = json.loads((base / "reference" / "result.json").read_text())
    ours = json.loads((base / "vsep" / "result.json").read_text())
    info = sf.info(str(inputs[case.input]))
    rate = int(case.kwargs.get("sample_rate", 44100))
    input_len = int(math.ceil(info.frames * rate / info.samplerate)) if info.samplerate != rate else info.frames
    row: dict[str, Any] = {"case": case.name, "model": case.model, "input": case.input, "setting": case.setting,
                           "ref_error": ref.get("error"), "vsep_error": ours.get("error"), "stems": {}}
    design = difference_by_design(case)
    if not ref.get("ok") or not ours.get("ok"):
        both_refuse = not ref.get("ok") and not ours.get("ok")
        row.update(worst_db=None, length="-", verdict="both refuse" if both_refuse else
                   (f"difference {design}" if design else "FAIL"))
        return row
    ref_arrays = {k: np.load(v) for k, v in ref["stems"].items()}
    if case.arch == "MDX":
        ref_arrays = mdx_expected(ref_arrays, case, float(ref.get("mix_peak", 0.0)))
    ours_by_name = {k.lower(): (k, v) for k, v in ours["stems"].items()}
    worst, vsep_len, ref_len = math.inf, None, None
    for stem, arr in ref_arrays.items():
        mine = ours_by_name.get(stem.lower())
        if mine is None:
            continue
        ours_arr = np.load(mine[1])
        db, _ = parity.compare(ours_arr, arr)
        row["stems"][stem] = db
        worst = min(worst, db)
        vsep_len, ref_len = ours_arr.shape[-1], arr.shape[-1]
    missing = sorted(set(k.lower() for k in ours["stems"]) ^ set(k.lower() for k in ref_arrays))
    row["worst_db"] = worst if row["stems"] else None
    row["length"] = length_note(case, vsep_len, ref_len, input_len)
    if missing:
        row["missing"] = missing
    if row["stems"] and worst >= MIN_DB and not missing:
        row["verdict"] = "ok"
    elif design:
        row["verdict"] = f"difference {design}"
    elif case.name in EXPLAINED:
        row["verdict"] = f"explained: {EXPLAINED[case.name]}"
    else:
        row["verdict"] = "FAIL" + (f" (stems differ: {', '.join(missing)})" if missing else "")
    return row


# ------------------------------------------------------------------------------------------ report

def fmt_db(db: float | None) -> str:
    if db is None:
        return "-"
    if db == math.inf:
        return "exact"
    if db == -math.inf:
        return "-inf"
    return f"{db:.1f}"


def write_report(rows: list[dict[str, Any]], skipped: list[str], versions: dict[str, str], seconds: float,
                 path: Path) -> None:
    ok = sum(r["verdict"] == "ok" for r in rows)
    design = sum(r["verdict"].startswith("difference") for r in rows)
    refuse = sum(r["verdict"] == "both refuse" for r in rows)
    explained = sum(r["verdict"].startswith("explained") for r in rows)
    fail = len(rows) - ok - design - refuse - explained
    finite = [r["worst_db"] for r in rows if r["verdict"] == "ok" and r["worst_db"] not in (None, math.inf)]
    lines = [
        "# Parity sweep: vsep against the reference on every input kind and parameter",
        "",
        f"Generated by `{COMMAND}` (benchmarks/sweep.py; the two tools' runs add up to {seconds / 60:.0f} min "
        "on a shared 2-core machine; results are kept in benchmarks/.cache/sweep, `--fresh` starts over). "
        "Both tools run the oracle's tiny random-weight models (`../shared/reference/models`) with the same "
        "Separator keyword arguments; each stem is compared with the metric of "
        "`../shared/tools/check_reference.py` (parity in dB after the best gain; `exact` = identical). "
        "The grid is generated from the plugins' params tables (edges and a middle value of every "
        "parameter, one at a time), every input kind through every model, and core's settings.",
        "",
        f"**{len(rows)} cases: {ok} at >= {MIN_DB:.0f} dB, {design} differences by design "
        f"(docs/upstream-behaviour.md section 8), {explained} below {MIN_DB:.0f} dB for a traced cause outside "
        f"vsep's code (see its row), {refuse} refused by both, {fail} failing.** "
        + (f"Matching cases: worst {min(finite):.1f} dB, median {float(np.median(finite)):.1f} dB."
           if finite else ""),
        "",
        f"Reference: audio-separator {versions.get('audio-separator', '?')} (torch {versions.get('torch', '?')}, "
        f"onnxruntime {versions.get('onnxruntime', '?')}), in benchmarks/.refenv. MDX-Net cases are compared "
        "with the corrected expectation of section 8.1 (one consistent stem gain), as check_reference.py "
        "does. Length: vsep's stem length against the reference's (VR: the reference does not trim to the "
        "input, 8.11; vsep gives the input's length).",
        "",
        "| case | worst stem dB | length match | verdict |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        verdict = r["verdict"]
        if r.get("ref_error") or r.get("vsep_error"):
            verdict += f" (reference: {r.get('ref_error') or 'ok'}; vsep: {r.get('vsep_error') or 'ok'})"
        lines.append(f"| `{r['case']}` | {fmt_db(r['worst_db'])} | {r['length']} | {verdict.replace('|', '/')} |")
    if skipped:
        lines += ["", "Parameters not swept: " + "; ".join(skipped) + "."]
    lines += ["", "Inputs: " + "; ".join(f"`{k}` {v}" for k, v in INPUTS.items()) + ".", ""]
    path.write_text("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="run only cases whose name matches this regular expression")
    ap.add_argument("--list", action="store_true", help="print the grid and stop")
    ap.add_argument("--fresh", action="store_true", help="discard results of an earlier run")
    ap.add_argument("--no-report", action="store_true", help="do not rewrite docs/parity.md")
    ap.add_argument("--work", default=str(CACHE), help="where stems and results go")
    ap.add_argument("--timeout", type=float, default=7200.0, help="seconds per worker process")
    ap.add_argument("--workers", type=int, default=3, help="worker processes per tool (default 3)")
    a = ap.parse_args()

    cases, skipped = build_grid()
    if a.only:
        cases = [c for c in cases if re.search(a.only, c.name)]
    if a.list:
        for c in cases:
            print(c.name, json.dumps(c.kwargs), json.dumps(c.vsep_only) if c.vsep_only else "")
        print(f"{len(cases)} cases; not swept: {skipped}")
        return 0
    work = Path(a.work)
    if a.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    inputs = make_inputs(work / "inputs")
    ref_python = str(refenv.ensure_refenv())
    run_tools(cases, inputs, work, {"reference": ref_python, "vsep": sys.executable}, a.workers, a.timeout)
    rows = [compare_case(c, work, inputs) for c in cases]
    seconds = sum(json.loads((work / safe(c.name) / tool / "result.json").read_text()).get("seconds") or 0.0
                  for c in cases for tool in ("reference", "vsep"))
    for r in rows:
        print(f"{r['case']:60s} {fmt_db(r['worst_db']):>8s}  {r['length']:12s} {r['verdict']}")
    bad = [r for r in rows if r["verdict"].startswith("FAIL")]
    print(f"{len(rows)} cases, {len(bad)} failing")
    (work / "rows.json").write_text(json.dumps(rows, default=str, indent=1))
    if not a.no_report and not a.only:
        write_report(rows, skipped, refenv.versions(Path(ref_python)), seconds, REPORT)
        print(f"wrote {REPORT}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
