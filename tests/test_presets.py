"""Ensemble presets: the packaged ones, validation, presets from plugins, precedence, `vsep presets`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.conftest import registered_plugin
from vsep_core import presets as P
from vsep_core.ensemble import VALID_ENSEMBLE_ALGORITHMS
from vsep_core.hookspecs import hookimpl

PACKAGED = Path(__file__).resolve().parents[1] / "src" / "vsep_core" / "data" / "ensemble_presets.json"
UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "uvr-data" / "audio-separator" / "ensemble_presets.json"
GOOD = {"id": "duo", "name": "Duo", "description": "two models", "models": ["a.ckpt", "b.onnx"],
        "algorithm": "avg_fft", "weights": [2, 1]}


def test_packaged_presets_are_the_reference_file():
    data = json.loads(PACKAGED.read_text())
    assert data["version"] == 1
    if UPSTREAM.exists():
        assert data == json.loads(UPSTREAM.read_text())
    listed = P.list_ensemble_presets()
    assert list(listed)[:9] == list(data["presets"])
    assert "karaoke" in listed and "vocal_balanced" in listed
    for preset_id, body in data["presets"].items():
        assert listed[preset_id] == body
    assert set(listed["vocal_clean"]) == {"name", "description", "models", "algorithm", "weights", "contributor"}


def test_every_packaged_preset_is_valid():
    for body in P.packaged_presets():
        preset = P.validate_preset(body)
        assert len(preset.models) >= 2 and preset.algorithm in VALID_ENSEMBLE_ALGORITHMS


def test_validate_preset_accepts_and_converts():
    preset = P.validate_preset(GOOD, source="test")
    assert preset.models == ("a.ckpt", "b.onnx") and preset.weights == (2.0, 1.0) and preset.source == "test"
    assert preset["models"] == ["a.ckpt", "b.onnx"] and preset.get("algorithm") == "avg_fft"
    assert preset.get("missing", 7) == 7 and preset["id"] == "duo"


@pytest.mark.parametrize(("change", "message"), [
    ({"id": ""}, "has no id"),
    ({"name": None}, "'name' must be a non-empty string"),
    ({"description": "  "}, "'description' must be a non-empty string"),
    ({"models": ["only.ckpt"]}, "at least 2 model"),
    ({"models": "a.ckpt,b.ckpt"}, "at least 2 model"),
    ({"models": ["a.ckpt", 3]}, "at least 2 model"),
    ({"algorithm": "average"}, "unknown algorithm 'average'; choose one of: avg_fft"),
    ({"weights": [1.0]}, "2 finite numbers"),
    ({"weights": [1.0, float("nan")]}, "2 finite numbers"),
    ({"weights": [1.0, "x"]}, "2 finite numbers"),
    ({"weights": [1.0, -1.0]}, "sum to zero"),
])
def test_bad_presets_are_rejected_with_a_clear_message(change, message):
    with pytest.raises(P.PresetError, match=message) as info:
        P.validate_preset({**GOOD, **change}, source="my-plugin")
    if change.get("id") != "":
        assert "'duo' (from my-plugin)" in str(info.value)


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(P.PresetError, match="unknown ensemble preset 'nope'; available: instrumental_clean.*karaoke"):
        P.get_preset("nope")


class _PresetPlugin:
    @hookimpl
    def vsep_presets(self):
        return [
            {**GOOD, "id": "plugin_duo"},
            {**GOOD, "id": "plugin_bad", "models": ["one.ckpt"]},
            {**GOOD, "id": "karaoke"},
            "not a dict",
        ]


@pytest.fixture
def preset_plugin():
    with registered_plugin(_PresetPlugin(), "test-presets") as plugin:
        yield plugin


def test_plugin_presets_join_and_bad_ones_are_skipped(preset_plugin, caplog):
    with caplog.at_level(logging.WARNING, logger="vsep.presets"):
        listed = P.list_ensemble_presets()
    assert listed["plugin_duo"]["weights"] == [2.0, 1.0]
    assert P.get_preset("plugin_duo").source == "test-presets"
    assert "plugin_bad" not in listed
    assert "plugin_bad" in caplog.text and "at least 2 model" in caplog.text
    assert listed["karaoke"]["algorithm"] == "avg_wave"  # the packaged one wins
    assert "'karaoke' from test-presets is ignored" in caplog.text
    with pytest.raises(P.PresetError, match="'plugin_bad' \\(from test-presets\\).*at least 2 model"):
        P.get_preset("plugin_bad")


def test_explicit_arguments_override_the_preset():
    s = P.resolve_settings(preset="vocal_rvc")
    assert s.models == tuple(P.get_preset("vocal_rvc").models) and s.algorithm == "avg_wave"
    assert s.weights is None and s.preset == "vocal_rvc"
    s = P.resolve_settings(models=["x.ckpt", "y.ckpt"], algorithm="min_fft", weights=[1, 2], preset="vocal_rvc")
    assert s.models == ("x.ckpt", "y.ckpt") and s.algorithm == "min_fft" and s.weights == (1.0, 2.0)
    assert P.resolve_settings(models=["x", "y"]).algorithm == "avg_wave"
    with pytest.raises(P.UsageError, match="unknown ensemble algorithm"):
        P.resolve_settings(models=["x", "y"], algorithm="bogus")


def test_preset_weights_are_used_with_the_preset_models(preset_plugin):
    assert P.resolve_settings(preset="plugin_duo").weights == (2.0, 1.0)
    assert P.resolve_settings(models=["p", "q"], preset="plugin_duo").weights is None


def test_separator_applies_preset_and_explicit_overrides():
    from vsep_core.separator import Separator

    sep = Separator(ensemble_preset="vocal_clean", info_only=True)
    assert sep.ensemble_algorithm == "min_fft"
    assert sep.list_ensemble_presets() == P.list_ensemble_presets()
    sep = Separator(ensemble_preset="vocal_clean", ensemble_algorithm="avg_wave", ensemble_weights=[1, 3],
                    info_only=True)
    assert sep.ensemble_algorithm == "avg_wave" and sep.ensemble_weights == [1, 3]
    sep.load_model()
    assert sep.model_filenames == list(P.get_preset("vocal_clean").models)
    with pytest.raises(P.PresetError, match="unknown ensemble preset"):
        Separator(ensemble_preset="missing", info_only=True)


# --------------------------------------------------------------------------------------------- CLI


def _cli(*args: str):
    from click.testing import CliRunner

    from vsep_core.cli import build_cli

    return CliRunner().invoke(build_cli(), list(args), env={"COLUMNS": "200"})


def test_cli_presets_table(monkeypatch):
    from rich.console import Console

    import vsep_core.cli.presets as cli_presets

    monkeypatch.setattr(cli_presets, "console", Console(width=200))  # wide enough not to wrap model names
    result = _cli("presets")
    assert result.exit_code == 0, result.output
    for preset_id in P.list_ensemble_presets():
        assert preset_id in result.output
    assert "uvr_max_spec" in result.output and "UVR-MDX-NET-Inst_HQ_5.onnx" in result.output


def test_cli_presets_json(preset_plugin):
    result = _cli("presets", "--list_format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == P.list_ensemble_presets()
    assert "plugin_duo" in json.loads(result.output)


def test_cli_rejects_an_unknown_format():
    result = _cli("presets", "--list_format", "yaml")
    assert result.exit_code == 2 and "yaml" in result.output


def test_flat_list_presets_flag(capsys):
    from vsep_core.cli import main

    assert main(["--list_presets", "--list_format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == P.list_ensemble_presets()
