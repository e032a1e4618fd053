"""`vsep advise` / `vsep bench`: counted costs, calibrations, the recommendation, unknown costs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, run_vsep
from vsep_core import advise, calibration, cost
from vsep_core.api import CostPass, ModelCost
from vsep_core.errors import UsageError

CALIBRATIONS = ROOT / "tests" / "fixtures" / "calibration"


# -- counting ---------------------------------------------------------------------------------------


def test_counted_cost_follows_the_network_shape():
    batch, frames, width, out, rate = 2, 50, 64, 96, 3.0
    linear = CostPass(build=lambda: torch.nn.Linear(width, out, bias=False), input_shapes=((batch, frames, width),),
                      passes_per_second=rate)
    c = cost.count_cost([linear])
    assert c.matmul_flops == pytest.approx(2 * batch * frames * width * out * rate)
    assert c.conv_flops == 0
    assert c.passes == rate
    assert c.weight_bytes == width * out * 4
    assert c.activation_bytes >= batch * frames * out * 4  # the output is live at the end of the pass

    channels, side = 8, 16
    conv = CostPass(build=lambda: torch.nn.Sequential(torch.nn.Conv2d(channels, channels, 3, padding=1),
                                                      torch.nn.ReLU()),
                    input_shapes=((1, channels, side, side),), passes_per_second=1.0)
    c2 = cost.count_cost([conv, linear])
    assert c2.conv_flops == pytest.approx(2 * channels * channels * 9 * side * side)
    assert c2.matmul_flops == pytest.approx(c.matmul_flops)
    assert c2.other_bytes > 0 and c2.ops > c.ops  # bias add and ReLU are memory-bound ops
    assert c2.passes == rate + 1.0


def test_cost_round_trips_through_json_and_attaches_to_records():
    c = ModelCost(matmul_flops=1e9, conv_flops=2e9, other_bytes=3e8, ops=100.0, passes=0.5, weight_bytes=10,
                  activation_bytes=20)
    assert cost.cost_from_dict(json.loads(json.dumps(cost.cost_to_dict(c)))) == c
    from vsep_core.api import ModelRecord

    records = [ModelRecord("a.ckpt", "X", "A", []), ModelRecord("b.ckpt", "X", "B", [])]
    attached = cost.attach_costs(records, {"a.ckpt": cost.cost_to_dict(c)})
    assert attached[0].cost == c and attached[1].cost is None


# -- calibration --------------------------------------------------------------------------------------


def test_calibration_measures_saves_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("VSEP_CALIBRATION_DIR", str(tmp_path))
    cal = calibration.calibrate("cpu", families=False, scale=0.1)
    r = cal.rates["float32"]
    assert r.matmul_gflops > 0 and r.conv_gflops > 0 and r.memory_gbps > 0 and r.op_us > 0
    path = calibration.save_calibration(cal)
    assert path == tmp_path / "cpu.json"
    assert calibration.load_calibration("cpu") == cal


def test_family_check_runs_the_small_network_for_real():
    cal = calibration.Calibration.from_dict(json.loads((CALIBRATIONS / "cpu_2core.json").read_text()))
    net = CostPass(build=lambda: torch.nn.Sequential(torch.nn.Conv2d(4, 16, 3, padding=1), torch.nn.ReLU()),
                   input_shapes=((1, 4, 32, 32),), passes_per_second=1.0)
    check = calibration.check_family("X", [net], cal)
    assert check["measured_s"] > 0 and check["estimated_s"] > 0
    assert check["ratio"] == pytest.approx(check["measured_s"] / check["estimated_s"])
    assert check["op_us"] >= cal.rates["float32"].op_us


def test_missing_or_broken_calibration_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VSEP_CALIBRATION_DIR", str(tmp_path))
    with pytest.raises(UsageError, match="vsep bench --quick"):
        calibration.load_calibration("cpu")
    (tmp_path / "cuda.json").write_text('{"device": "cuda"}')
    with pytest.raises(UsageError, match="not a vsep calibration"):
        calibration.load_calibration("cuda")


def test_estimate_scales_with_the_song_and_the_family_check():
    cal = calibration.Calibration.from_dict(json.loads((CALIBRATIONS / "cpu_2core.json").read_text()))
    c = ModelCost(matmul_flops=95e9, conv_flops=0.0, other_bytes=0.0, ops=0.0, passes=1.0, weight_bytes=0,
                  activation_bytes=0)
    assert advise.estimate_seconds(c, "Other", cal, 60) == pytest.approx(60.0)  # 1 s per second of audio
    assert advise.estimate_seconds(c, "Other", cal, 0.2) == pytest.approx(1.0)  # at least one whole pass
    with_ops = dataclasses.replace(c, ops=1e6, other_bytes=4.5e9)  # + 1 s of ops per op_us, + 1 s of bytes
    assert advise.estimate_seconds(with_ops, "Other", cal, 60) == pytest.approx(60.0 * (2 + cal.rates["float32"].op_us))


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("2m", 120), ("3:30", 210), ("1:00:00", 3600),
                                          ("1.5min", 90)])
def test_durations(text, seconds):
    assert advise.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-3s", "0", "1:2:3:4"])
def test_bad_durations_are_usage_errors(text):
    with pytest.raises(UsageError):
        advise.parse_duration(text, "--budget")


# -- advice -------------------------------------------------------------------------------------------


def _advise_json(*args: str, model_dir: Path) -> dict:
    proc = run_vsep("advise", "--json", "--limit", "1000", "--model_file_dir", model_dir, *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_cpu_and_a_gpu_calibration_pick_different_models(tmp_path):
    common = ("--stem", "vocals", "--budget", "60s", "--per", "3:00")
    cpu = _advise_json(*common, "--calibration", str(CALIBRATIONS / "cpu_2core.json"), model_dir=tmp_path)
    gpu = _advise_json(*common, "--device", "cuda", "--calibration", str(CALIBRATIONS / "gpu.json"),
                       model_dir=tmp_path)
    assert cpu["recommended"] and gpu["recommended"]
    assert cpu["recommended"] != gpu["recommended"]
    for advice in (cpu, gpu):
        rows = {c["name"]: c for c in advice["candidates"]}
        rec = rows[advice["recommended"]]
        assert advice["candidates"][0]["name"] == rec["name"]  # recommended first
        known = [c for c in rows.values() if c["seconds"] is not None and c["sdr"] is not None]
        fitting = [c for c in known if c["seconds"] <= 60]
        if fitting:  # the best SDR that fits, or a faster one within the balanced margin
            assert rec["seconds"] <= 60
            assert rec["sdr"] >= max(c["sdr"] for c in fitting) - advise.QUALITY_MARGIN_DB["balanced"]
        else:  # nothing fits: the fastest, and the advice says it is over budget
            assert advice["over_budget"] and rec["seconds"] == min(c["seconds"] for c in known)
    assert gpu["candidates"][0]["command"].startswith("vsep separate SONG -m ")
    assert "--device cuda" in gpu["candidates"][0]["command"]


def test_quality_max_never_picks_a_lower_score_than_fast(tmp_path):
    common = ("--stem", "vocals", "--budget", "60s", "--device", "cuda", "--calibration",
              str(CALIBRATIONS / "gpu.json"))
    best = _advise_json(*common, "--quality", "max", model_dir=tmp_path)
    fast = _advise_json(*common, "--quality", "fast", model_dir=tmp_path)
    rows = {c["name"]: c for c in best["candidates"] + fast["candidates"]}
    assert rows[best["recommended"]]["sdr"] >= rows[fast["recommended"]]["sdr"]
    assert rows[best["recommended"]]["seconds"] >= rows[fast["recommended"]]["seconds"]


def test_a_plugin_that_gives_no_cost_shows_unknown_time(tmp_path, gain_model_dir):
    # vsep-gain (tests/fixtures) adds vocal models and no cost_passes: known score or not, never a made-up time
    data = _advise_json("--stem", "vocals", "--calibration", str(CALIBRATIONS / "cpu_2core.json"),
                        model_dir=gain_model_dir)
    gain = [c for c in data["candidates"] if c["architecture"] == "Gain"]
    assert {c["name"] for c in gain} >= {"vocal_split.gain", "remote_split.gain"}
    assert all(c["seconds"] is None and c["peak_memory_mb"] is None and not c["fits"] for c in gain)
    assert data["recommended"] not in {c["name"] for c in gain}
    on_disk = next(c for c in gain if c["name"] == "vocal_split.gain")
    assert on_disk["on_disk"]  # its file is there, and still its time is unknown
    proc = run_vsep("advise", "--stem", "vocals", "--limit", "1000", "--model_file_dir", gain_model_dir,
                    "--calibration", CALIBRATIONS / "cpu_2core.json", COLUMNS="250")
    assert proc.returncode == 0, proc.stderr
    line = next(row for row in proc.stdout.splitlines() if "Gain: vocal split" in row)
    assert "unknown" in line


def test_advise_without_a_calibration_says_what_to_run(tmp_path):
    proc = run_vsep("advise", "--stem", "vocals", "--device", "cuda", VSEP_CALIBRATION_DIR=str(tmp_path))
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "vsep bench --quick --device cuda" in proc.stderr


def test_bench_refuses_a_device_the_machine_lacks(tmp_path):
    missing = "mps" if torch.cuda.is_available() else "cuda"
    proc = run_vsep("bench", "--quick", "--device", missing, VSEP_CALIBRATION_DIR=str(tmp_path))
    assert proc.returncode != 0 and missing in proc.stderr and not list(tmp_path.iterdir())


def test_the_plugin_docs_cost_example_runs(capsys):
    text = (ROOT / "docs" / "plugins" / "contracts.md").read_text(encoding="utf-8")
    section = text.split("## Costs for `vsep advise`", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "contracts.md#costs", "exec"), {})  # noqa: S102 - our own docs
    out = capsys.readouterr().out
    assert "GFLOP and 2 passes per second of audio" in out


# 2_HP-UVR.pth and htdemucs.yaml pass too, in minutes each on 2 shared cores: left out to keep the suite short
TINY = ["model_bs_roformer_ep_317_sdr_12.9755.ckpt"]


@pytest.mark.slow
@pytest.mark.parametrize("name", TINY)
def test_counted_passes_per_second_are_the_models(tmp_path, monkeypatch, name):
    """The oracle's tiny checkpoints: the passes per second counted from the params (as the plugin says) are
    the passes the loaded model adds, through its progress callback, for 8 more seconds of input."""
    import shutil

    import numpy as np

    from tests.conftest import REFERENCE
    from vsep_core import Separator, catalog

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    models = tmp_path / "models"
    shutil.copytree(REFERENCE / "models", models)
    sep = Separator(model_file_dir=str(models), output_dir=str(tmp_path), offline=True)
    sep.load_model(name)
    totals = {}
    rng = np.random.default_rng(0)
    for seconds in (12.0, 20.0):
        audio = (rng.standard_normal((2, int(seconds * 44100))) * 0.1).astype(np.float32)
        seen: list[int] = []
        sep.model_instance.separate(audio, lambda done, total, seen=seen: seen.append(total))
        totals[seconds] = seen[-1]
    c = cost.cost_of(catalog.resolve_model(name, models), models)
    assert c is not None
    assert abs((totals[20.0] - totals[12.0]) - c.passes * 8.0) <= 1.0, (totals, c.passes)


def test_separator_advise_is_the_cli_advice(tmp_path):
    from vsep_core import Separator

    gpu = str(CALIBRATIONS / "gpu.json")
    advice = Separator(model_file_dir=str(tmp_path), info_only=True).advise(
        "vocals", budget="60s", per="3:00", device="cuda", calibration=gpu)
    cli = _advise_json("--stem", "vocals", "--budget", "60s", "--per", "3:00", "--device", "cuda", "--calibration",
                       gpu, model_dir=tmp_path)
    assert advice.recommended is not None and advice.recommended.name == cli["recommended"]
    assert advice.to_dict()["candidates"][0]["seconds"] == pytest.approx(cli["candidates"][0]["seconds"])
