"""Packaging is real: wheels of vsep-core and vsep-mdxc, installed into a fresh venv away from the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.mark.slow
def test_wheels_install_and_find_their_plugin(tmp_path):
    wheels = tmp_path / "wheels"
    for project in (ROOT, ROOT / "plugins" / "vsep_mdxc"):
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(project)])
    built = sorted(p.name for p in wheels.glob("*.whl"))
    assert [n.split("-")[0] for n in built] == ["vsep_core", "vsep_mdxc"]
    mdxc_wheel = next(wheels.glob("vsep_mdxc-*.whl"))
    names = zipfile.ZipFile(mdxc_wheel).namelist()
    assert any(n.startswith("vsep_mdxc/data/") for n in names), "catalogue data missing from the wheel"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    core_wheel = next(wheels.glob("vsep_core-*.whl"))
    core_names = zipfile.ZipFile(core_wheel).namelist()
    assert {f"vsep_core/remote/ui_static/{n}" for n in ("index.html", "app.js", "style.css")} <= set(core_names), \
        "the web page's files are missing from the wheel"
    _run([str(py), "-m", "pip", "install", "-q", str(core_wheel)])
    # torch is left out (multi-GB from an index); `vsep plugins` must not need it.
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(mdxc_wheel)])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = _run([str(venv / "bin" / "vsep"), "plugins", "--json"], cwd=tmp_path, env=env)
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["mdxc"]["distribution"] == "vsep-mdxc" and rows["mdxc"]["architectures"] == ["MDXC"]
    assert "mdx" not in rows  # only what was installed
    check = ("import vsep_mdxc, pathlib; d = pathlib.Path(vsep_mdxc.__file__).parent / 'data'; "
             "print(sum(1 for _ in d.rglob('*') if _.is_file()))")
    count = _run([str(py), "-c", check], cwd=tmp_path, env=env)
    assert int(count.stdout) > 0
    assert str(ROOT) not in _run([str(py), "-c", "import vsep_core; print(vsep_core.__file__)"], cwd=tmp_path,
                                 env=env).stdout
