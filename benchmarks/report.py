"""The benchmark's table and plots, and their place in docs/benchmarks.md.

``write_all(detail)`` (called by run.py after a full run) writes

- ``docs/img/bench_time.png``: separation time per case, vsep vs reference (log scale);
- ``docs/img/bench_rss.png``: peak RSS against input length, both tools (memory cases);
- the generated part of ``docs/benchmarks.md`` between ``<!-- bench:start -->`` and
  ``<!-- bench:end -->`` (machine, versions, date, the per-case table).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"
IMG = DOCS / "img"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _f(x: Any, fmt: str = "{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def table(detail: dict[str, Any]) -> str:
    """Markdown table of every case of a run."""
    lines = ["| case | input | vsep s (load incl.) | reference s (load incl.) | time ratio | vsep RSS MiB | "
             "reference RSS MiB | RSS ratio | parity dB | model GFLOP per audio s | % of fp32 matmul peak |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in detail["cases"]:
        r = c["results"]
        vs, rf = r.get("vsep", {}), r.get("reference", {})
        if c["kind"] == "bf16":
            rf = r.get("vsep_fp32", {})
        ratio = (vs.get("separate_s") / rf["separate_s"]) if vs.get("separate_s") and rf.get("separate_s") else None
        seconds = c["input_seconds"]
        inp = f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
        label = c["name"] + (" (tiny model)" if c["models"] == "tiny" else "")
        if c["kind"] == "bf16":
            label = f"{c['arch']} bf16 autocast vs fp32 (oracle, tiny)"
        lines.append(
            f"| {label} | {inp} | {_f(vs.get('separate_s'))} ({_f(vs.get('with_load_s'))}) | "
            f"{_f(rf.get('separate_s'))} ({_f(rf.get('with_load_s'))}) | {_f(ratio, '{:.3f}')} | "
            f"{_f(vs.get('peak_rss_mb'), '{:.0f}')} | {_f(rf.get('peak_rss_mb'), '{:.0f}')} | "
            f"{_f(r.get('rss_ratio'), '{:.3f}')} | {_f(r.get('parity_db'), '{:.1f}')} | "
            f"{_f(r.get('flops_per_audio_second') / 1e9 if r.get('flops_per_audio_second') else None, '{:.0f}')} | "
            f"{_f(100 * r['peak_fraction'] if r.get('peak_fraction') else None, '{:.0f}%')} |")
    return "\n".join(lines)


def machine_block(detail: dict[str, Any]) -> str:
    """Machine, versions and date of a run, as markdown."""
    m = detail["machine"]
    ref = m.get("reference", {})
    peak = m.get("matmul_peak", {})
    return "\n".join([
        f"- date: {m.get('date')}; vsep commit {m.get('vsep_commit', '?')}; harness total {m.get('total_s', 0):.0f} s",
        f"- machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB, torch CPU capability "
        f"{m.get('torch_cpu_capability')}; load average at start {_loads(m.get('loadavg_start'))}, at end "
        f"{_loads(m.get('loadavg_end'))}",
        f"- matmul peak (2 threads): fp32 {_f(peak.get('fp32_gflops'), '{:.0f}')} GFLOP/s "
        f"({peak.get('fp32_size')}x{peak.get('fp32_size')}), bf16 {_f(peak.get('bf16_gflops'), '{:.0f}')} GFLOP/s "
        f"({peak.get('bf16_size')}x{peak.get('bf16_size')})",
        f"- vsep {m.get('vsep')} (torch {m.get('vsep_torch')}, onnxruntime {m.get('vsep_onnxruntime')}); reference "
        f"audio-separator {ref.get('audio-separator')} (torch {ref.get('torch')}, onnxruntime "
        f"{ref.get('onnxruntime')}), Python {m.get('python')}",
    ] + [f"- re-measured {u['date']}, vsep commit {u.get('vsep_commit', '?')} "
         f"(load {_loads(u.get('loadavg_start'))} -> {_loads(u.get('loadavg_end'))}): "
         f"{', '.join(u['cases'])}" for u in m.get("updates", [])])


def _loads(v: Any) -> str:
    return "–" if not v else " / ".join(f"{x:.1f}" for x in v)


def plot_time(detail: dict[str, Any], path: Path) -> None:
    """Bar chart: separation seconds per timing case, vsep vs reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [c for c in detail["cases"] if c["kind"] in ("equal_work", "defaults")
             and c["results"].get("vsep", {}).get("separate_s")]
    labels = [c["name"].replace("/", "\n", 1) + f"\n{c['input_seconds']:g} s" for c in cases]
    vs = [c["results"]["vsep"]["separate_s"] for c in cases]
    rf = [c["results"].get("reference", {}).get("separate_s") or 0 for c in cases]
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=80)
    xs = range(len(cases))
    ax.bar([x - 0.2 for x in xs], vs, 0.4, label="vsep")
    ax.bar([x + 0.2 for x in xs], rf, 0.4, label="reference (audio-separator)")
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("separation wall time, s (log)")
    ax.set_title("Separation time per architecture (equal work unless 'defaults'), CPU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_rss(detail: dict[str, Any], path: Path) -> None:
    """Peak RSS against input length per tool and memory-case model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=80)
    archs = sorted({c["arch"] for c in detail["cases"] if c["kind"] == "memory"})
    for arch in archs:
        cases = sorted((c for c in detail["cases"] if c["kind"] == "memory" and c["arch"] == arch),
                       key=lambda c: c["input_seconds"])
        for tool, style in (("vsep", "-o"), ("reference", "--s")):
            pts = [(c["input_seconds"] / 60, c["results"].get(tool, {}).get("peak_rss_mb")) for c in cases]
            pts = [(x, y) for x, y in pts if y]
            if pts:
                line, = ax.plot([p[0] for p in pts], [p[1] / 1024 for p in pts], style, label=f"{tool} ({arch}, tiny)")
            longest = cases[-1]["input_seconds"] / 60 if cases else 0
            if tool == "reference" and len(pts) >= 2 and pts[-1][0] < longest:
                # not run that long (see --memory-reference-max): its linear trend, drawn dotted
                slope = (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
                at_longest = pts[-1][1] + slope * (longest - pts[-1][0])
                ax.plot([pts[-1][0], longest], [pts[-1][1] / 1024, at_longest / 1024], ":",
                        color=line.get_color(), label=f"reference ({arch}), linear extrapolation")
    ax.set_xlabel("input length, minutes")
    ax.set_ylabel("peak RSS, GiB")
    ax.set_title("Peak RSS vs input length (CPU)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def make_plots(detail: dict[str, Any]) -> None:
    """Both PNGs, with this interpreter's matplotlib or else the reference environment's (installed there
    on demand, so vsep's own environment needs no plotting library)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        import json
        import subprocess
        import tempfile

        import refenv

        py = refenv.ensure_plotting()
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(detail, fh, default=str)
        subprocess.run([str(py), str(Path(__file__)), "--plots", fh.name], check=True)
        Path(fh.name).unlink()
        return
    plot_time(detail, IMG / "bench_time.png")
    plot_rss(detail, IMG / "bench_rss.png")


def write_all(detail: dict[str, Any]) -> None:
    """Plots into docs/img and the generated block of docs/benchmarks.md."""
    IMG.mkdir(parents=True, exist_ok=True)
    make_plots(detail)
    block = "\n".join([START, "", machine_block(detail), "", table(detail), "",
                       "![time per architecture](img/bench_time.png)", "",
                       "![peak RSS vs input length](img/bench_rss.png)", "", END])
    doc = DOCS / "benchmarks.md"
    text = doc.read_text() if doc.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--plots":
        make_plots(json.loads(Path(sys.argv[2]).read_text()))
    elif len(sys.argv) == 2:  # regenerate docs/benchmarks.md and the plots from a results JSON
        write_all(json.loads(Path(sys.argv[1]).read_text()))
    else:
        sys.exit("usage: report.py RESULTS.json  (rewrites docs/benchmarks.md and docs/img/bench_*.png)")
