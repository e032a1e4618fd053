"""A broken plugin is skipped with one warning naming its distribution; the rest keep working."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import GAIN_PLUGIN, run_vsep

BROKEN = Path(__file__).parent / "fixtures" / "broken_plugins"


def _with_broken(**env: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(BROKEN), str(GAIN_PLUGIN), os.environ.get("PYTHONPATH", "")]), **env}


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "skipped" in line]


def test_help_lists_commands_despite_broken_plugins():
    proc = run_vsep("--help", **_with_broken())
    assert proc.returncode == 0, proc.stderr
    assert "separate" in proc.stdout and "Traceback" not in proc.stderr
    warnings = _warnings(proc.stderr)
    assert len(warnings) == 2
    assert any("vsep-misspelt" in w and "did you mean vsep_architectures" in w for w in warnings)
    assert any("vsep-noimport" in w and "vsep_noimport_missing_module" in w for w in warnings)


def test_plugins_lists_the_failed_ones_with_their_reason():
    proc = run_vsep("plugins", "--json", **_with_broken())
    assert proc.returncode == 0, proc.stderr
    rows = {r["distribution"]: r for r in json.loads(proc.stdout)}
    assert rows["vsep-misspelt"]["error"] and "vsep_architecture" in rows["vsep-misspelt"]["error"]
    assert rows["vsep-noimport"]["error"]
    assert rows["vsep-gain"]["error"] is None and rows["vsep-gain"]["architectures"] == ["Gain"]


def test_separation_with_a_good_plugin_still_works(tmp_path, audio_file, gain_model_dir):
    song = audio_file("song.wav", seconds=0.5)
    proc = run_vsep("separate", song, "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir,
                    "--output_dir", tmp_path / "out", **_with_broken())
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "out").iterdir())) == 2
    assert len(_warnings(proc.stderr)) == 2


@pytest.mark.parametrize("env,expect_failed", [
    ({"VSEP_DISABLE_PLUGINS": "vsep-misspelt,noimport"}, set()),
    ({"VSEP_LOAD_PLUGINS": "gain,misspelt"}, {"vsep-misspelt"}),
])
def test_plugins_can_be_selected_by_name(env, expect_failed):
    proc = run_vsep("plugins", "--json", **_with_broken(**env))
    assert proc.returncode == 0, proc.stderr
    rows = {r["distribution"]: r for r in json.loads(proc.stdout)}
    assert {d for d, r in rows.items() if r["error"]} == expect_failed
    assert "vsep-gain" in rows
    if "VSEP_LOAD_PLUGINS" in env:
        assert "vsep-mdx" not in rows


def test_params_for_a_prefix_no_plugin_owns_is_an_error_naming_the_installed_ones():
    from vsep_core import Separator
    from vsep_core.errors import UsageError

    with pytest.raises(UsageError, match=r"xyz_params.*installed: .*gain_params"):
        Separator(info_only=True, xyz_params={"a": 1})
