#!/usr/bin/env python
"""Run audio-separator's own unit tests against the reference and against vsep; print counts by file.

    python benchmarks/upstream/run.py PATH [--side both|reference|vsep] [--json OUT] [--markdown]

PATH is a checkout of nomadkaraoke/python-audio-separator (or its tests/unit folder); it is
not stored in this repository. Its tests/unit (and pytest.ini) are copied to a temporary
folder and run twice with pytest:

- reference: in benchmarks/.refenv (audio-separator[cpu] 0.47.1 on CPU torch, made by
  ../refenv.py on first use; pytest is added to it), against the installed package;
- vsep: with this interpreter (where vsep-core and its plugins are installed) and
  ``shim/`` first on PYTHONPATH: a stand-in ``audio_separator`` package that only renames
  modules (``audio_separator.separator`` -> ``vsep_core``, ...; see shim/audio_separator).

The counts come from pytest's JUnit XML. A file whose module cannot be imported under a side
counts as a collection error there (its tests as not passed). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import refenv  # noqa: E402

SHIM = HERE / "shim"
OUTCOMES = ("passed", "failed", "error", "skipped")


def find_unit_tests(path: Path) -> Path:
    """The folder of test_*.py files: PATH/tests/unit, or PATH itself."""
    for candidate in (path / "tests" / "unit", path):
        if candidate.is_dir() and any(candidate.glob("test_*.py")):
            return candidate
    raise SystemExit(f"error: no tests/unit with test_*.py files under {path}; pass a checkout of "
                     "nomadkaraoke/python-audio-separator (git clone https://github.com/nomadkaraoke/python-audio-separator)")


def stage(unit: Path, work: Path) -> Path:
    """Copy the unit tests (and the checkout's pytest.ini) into `work`; return the tests folder there."""
    dest = work / "tests" / "unit"
    shutil.copytree(unit, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for up in (unit.parent.parent, unit.parent):
        if (up / "pytest.ini").is_file():
            shutil.copy(up / "pytest.ini", work / "pytest.ini")
            break
    else:
        (work / "pytest.ini").write_text("[pytest]\n")
    return dest


REFERENCE_TEST_DEPS = {"pytest": "pytest", "google.cloud.firestore": "google-cloud-firestore",
                       "google.cloud.storage": "google-cloud-storage", "fastapi": "fastapi", "uvicorn": "uvicorn",
                       "filetype": "filetype", "multipart": "python-multipart"}
"""Module -> distribution of what the reference's unit tests import beyond the package (its dev group)."""


def ensure_reference_python(log=print) -> Path:
    """benchmarks/.refenv's python (made on first use), with the reference's test dependencies installed."""
    refenv.ensure_ffmpeg(log)
    py = refenv.ensure_refenv(log=log)
    missing = [dist for module, dist in REFERENCE_TEST_DEPS.items()
               if subprocess.run([str(py), "-c", f"import {module}"], capture_output=True).returncode != 0]
    if missing:
        log(f"installing the reference's test dependencies: {' '.join(missing)}")
        subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-c",
                        str(refenv.REFENV / "constraints.txt"), *missing], check=True)
    return py


def run_side(python: Path, work: Path, xml: Path, shim: bool, timeout: int) -> subprocess.CompletedProcess:
    """pytest over work/tests/unit with `python`; JUnit XML to `xml`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    if shim:
        env["PYTHONPATH"] = str(SHIM)
    env.setdefault("MPLBACKEND", "Agg")
    cmd = [str(python), "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider", "-o",
           "junit_family=xunit1", f"--junitxml={xml}", "--continue-on-collection-errors"]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


def parse_junit(xml: Path, passed: set[str] | None = None) -> dict[str, Counter]:
    """{test file name: Counter(passed, failed, error, skipped)} from pytest's JUnit XML (xunit1).

    The ids (``file::class.name``) of the tests that passed are added to `passed` when given.
    """
    counts: dict[str, Counter] = {}
    if not xml.is_file():
        return counts
    for case in ET.parse(xml).getroot().iter("testcase"):
        file = case.get("file") or ""
        if not file:  # a collection error: name is the module's dotted path
            file = case.get("name", "").replace(".", "/") + ".py"
        name = Path(file).name
        children = {child.tag for child in case}
        if "error" in children and not case.get("classname"):
            outcome = "collection error"
        elif "failure" in children:
            outcome = "failed"
        elif "error" in children:
            outcome = "error"
        elif "skipped" in children:
            outcome = "skipped"
        else:
            outcome = "passed"
        counts.setdefault(name, Counter())[outcome] += 1
        if outcome == "passed" and passed is not None:
            passed.add(f"{name}::{case.get('classname')}.{case.get('name')}")
    return counts


def collected_per_file(unit: Path) -> dict[str, int]:
    """Number of test functions per file (``def test_`` at any indent), for files that do not import."""
    return {f.name: sum(1 for line in f.read_text(encoding="utf-8").splitlines()
                        if line.lstrip().startswith("def test_"))
            for f in sorted(unit.glob("test_*.py"))}


def table(results: dict[str, dict[str, Counter]], unit: Path) -> list[dict]:
    """One row per test file: tests, and passed/failed/skipped for each side."""
    defined = collected_per_file(unit)
    rows = []
    for name in sorted(defined):
        row: dict = {"file": name}
        sizes = [sum(c.values()) - c["collection error"] for side in results.values()
                 if (c := side.get(name, Counter())) and not c["collection error"]]
        row["tests"] = max(sizes) if sizes else defined[name]
        for side, per_file in results.items():
            c = per_file.get(name, Counter())
            row[side] = {"passed": c["passed"], "failed": c["failed"] + c["error"], "skipped": c["skipped"],
                         "import_error": bool(c["collection error"])}
        rows.append(row)
    return rows


def format_rows(rows: list[dict], sides: list[str], markdown: bool) -> str:
    def cell(r: dict, side: str) -> str:
        s = r[side]
        if s["import_error"]:
            return "import error"
        text = f"{s['passed']} passed"
        if s["skipped"]:
            text += f", {s['skipped']} skipped"
        return text

    head = ["file", "tests"] + sides
    lines = [[r["file"], str(r["tests"])] + [cell(r, s) for s in sides] for r in rows]
    totals = ["total", str(sum(r["tests"] for r in rows))] + [
        f"{sum(r[s]['passed'] for r in rows)} passed" for s in sides]
    lines.append(totals)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), *(fmt.format(*line) for line in lines)])


def main(argv: list[str] | None = None) -> int:
    """Run the reference's unit tests on the selected sides and print the counts by file."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkout", type=Path, help="a checkout of nomadkaraoke/python-audio-separator (or its tests/unit)")
    ap.add_argument("--side", choices=("both", "reference", "vsep"), default="both")
    ap.add_argument("--json", type=Path, help="write the per-file counts here")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (pytest output, XML)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds for each side's pytest run")
    args = ap.parse_args(argv)

    unit = find_unit_tests(args.checkout.resolve())
    sides = ["reference", "vsep"] if args.side == "both" else [args.side]
    work = Path(tempfile.mkdtemp(prefix="vsep-upstream-tests-"))
    results: dict[str, dict[str, Counter]] = {}
    passed: dict[str, set[str]] = {}
    try:
        for side in sides:
            side_dir = work / side
            stage(unit, side_dir)
            python = ensure_reference_python() if side == "reference" else Path(sys.executable)
            xml = side_dir / "junit.xml"
            print(f"{side}: pytest {unit} with {python}", file=sys.stderr)
            proc = run_side(python, side_dir, xml, shim=side == "vsep", timeout=args.timeout)
            (side_dir / "pytest.log").write_text(proc.stdout + proc.stderr)
            summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
            print(f"{side}: {summary}", file=sys.stderr)
            passed[side] = set()
            results[side] = parse_junit(xml, passed[side])
        rows = table(results, unit)
        print(format_rows(rows, sides, args.markdown))
        if len(sides) == 2:
            both = passed["reference"] & passed["vsep"]
            print(f"\n{len(both)} of the {len(passed['reference'])} tests that pass on the reference pass on vsep; "
                  f"{len(passed['vsep'] - passed['reference'])} pass on vsep only")
        if args.json:
            args.json.write_text(json.dumps({"tests": str(unit), "rows": rows,
                                             "passed": {k: sorted(v) for k, v in passed.items()}}, indent=2) + "\n")
    finally:
        if args.keep:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
