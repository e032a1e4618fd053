"""Core's shared pieces that plugins import: safe checkpoint reading, MSST-format yaml settings, worker pipes."""

from __future__ import annotations

from multiprocessing import Pipe
from pathlib import Path

import numpy as np
import pytest
import torch

from vsep_core import msst
from vsep_core.checkpoints import load_strict, read_state_dict
from vsep_core.errors import ModelLoadError, UsageError
from vsep_core.helpers import channels_first, mono_or_stereo
from vsep_core.ipc import RestartBudget, requests_until_stop
from vsep_core.testlib import one_line_error, save_with_code, write_yaml


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))


def test_read_state_dict_unwraps_strips_a_shared_prefix_and_drops(tmp_path: Path) -> None:
    state = {f"model.{k}": v for k, v in _net().state_dict().items()}
    torch.save({"state_dict": {**state, "loss_handler.w": torch.zeros(1)}, "epoch": 3}, tmp_path / "a.ckpt")
    got = read_state_dict(tmp_path / "a.ckpt", drop_prefixes=("loss_handler.",))
    assert sorted(got) == ["0.bias", "0.weight", "1.bias", "1.weight"]


def test_read_state_dict_refuses_code_and_non_checkpoints(tmp_path: Path) -> None:
    message = one_line_error(ModelLoadError, read_state_dict, save_with_code(tmp_path / "evil.pt", {}))
    assert "refused" in message and "evil.pt" in message
    torch.save({"note": "no tensors"}, tmp_path / "empty.pt")
    assert "holds no state dict" in one_line_error(ModelLoadError, read_state_dict, tmp_path / "empty.pt")


@pytest.mark.parametrize(("change", "needle"), [
    (lambda s: s.pop("1.bias"), "'1.bias' (1,) of the network built from the yaml is missing"),
    (lambda s: s.update({"2.weight": torch.zeros(1)}), "has tensor '2.weight' (1,) that the network"),
    (lambda s: s.update({"0.weight": torch.zeros(2, 4)}), "'0.weight' has shape (2, 4) in the checkpoint but (2, 3)"),
])
def test_load_strict_names_the_first_mismatched_tensor(change, needle: str) -> None:
    state = dict(_net().state_dict())
    change(state)
    assert needle in one_line_error(ModelLoadError, load_strict, _net(), state, "m.ckpt")


def test_load_strict_copies_and_ignores_listed_buffers() -> None:
    source, target = _net(), _net()
    load_strict(target, {**source.state_dict(), "stft.window": torch.ones(4)}, "m.ckpt", ignore=("stft.window",))
    torch.testing.assert_close(target.state_dict()["0.weight"], source.state_dict()["0.weight"])


def test_inference_settings_defaults_and_instruments() -> None:
    config = {"audio": {"chunk_size": 100}, "inference": {"num_overlap": 2, "normalize": True},
              "training": {"instruments": ["a", "b"], "target_instrument": None}}
    got = msst.inference_settings(config, instruments=True)
    assert (got.sample_rate, got.channels, got.chunk_size, got.num_overlap, got.batch_size, got.normalize,
            got.instruments) == (44100, 2, 100, 2, 1, True, ("a", "b"))
    assert msst.inference_settings(config).instruments == ()
    target = {**config, "training": {"instruments": ["a", "b"], "target_instrument": "b"}}
    assert msst.inference_settings(target, instruments=True).instruments == ("b",)


@pytest.mark.parametrize(("config", "needle"), [
    ({"inference": {"num_overlap": 2}}, "no 'audio' section"),
    ({"audio": {}, "inference": {"num_overlap": 2}}, "'audio.chunk_size'"),
    ({"audio": {"chunk_size": 10, "num_channels": 3}, "inference": {"num_overlap": 2}}, "'audio.num_channels'"),
    ({"audio": {"chunk_size": 10}, "inference": {"num_overlap": 1.5}}, "'inference.num_overlap' must be"),
])
def test_inference_settings_errors_name_the_key(config: dict, needle: str) -> None:
    assert needle in one_line_error(msst.ConfigError, msst.inference_settings, config)


def test_model_type_checks_and_claims(tmp_path: Path) -> None:
    msst.check_model_type({"training": {"model_type": "X"}}, "x", "x", "vsep-x")
    assert "vsep-x runs only 'x'" in one_line_error(msst.ConfigError, msst.check_model_type, {}, "y", "x", "vsep-x")
    assert "says model_type 'y'" in one_line_error(msst.ConfigError, msst.check_model_type,
                                                   {"model_type": "y"}, None, "x", "vsep-x")
    write_yaml(tmp_path / "m.yaml", {"model_type": "x"})
    (tmp_path / "m.ckpt").write_bytes(b"")
    assert msst.yaml_beside_claims(tmp_path / "m.ckpt", lambda c: c.get("model_type") == "x")
    assert not msst.yaml_beside_claims(tmp_path / "m.ckpt", lambda c: False)
    assert not msst.yaml_beside_claims(tmp_path / "other.ckpt", lambda c: True)


def test_msst_model_runs_a_network_with_or_without_a_stem_axis() -> None:
    settings = msst.InferenceSettings(44100, 2, 400, 2, 2, True)
    mix = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32)
    one = msst.MsstModel(torch.nn.Identity(), settings, ["Restored"]).separate(mix)
    np.testing.assert_allclose(one["Restored"], mix, atol=1e-5)

    class Two(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x, -x], dim=1)

    two = msst.MsstModel(Two(), settings, ["a", "b"]).separate(mix)
    np.testing.assert_allclose(two["b"], -mix + 2 * mix.mean(), atol=1e-4)  # de-standardised with the mix's mean


def test_requests_until_stop_ends_on_none_and_on_a_closed_pipe() -> None:
    parent, child = Pipe()
    parent.send(1)
    parent.send(2)
    parent.send(None)
    parent.send(3)
    assert list(requests_until_stop(child)) == [1, 2]
    parent.close()
    assert list(requests_until_stop(child)) == [3]


def test_restart_budget_allows_its_limit_then_refuses() -> None:
    budget = RestartBudget(2)
    assert [budget.spend() for _ in range(3)] == [True, True, False] and budget.used == 3


def test_mono_or_stereo() -> None:
    assert mono_or_stereo(np.zeros(5, np.float64), "X models").shape == (1, 5)
    assert mono_or_stereo(np.zeros((2, 5)), "X models").dtype == np.float32
    with pytest.raises(UsageError, match="^X models take mono or stereo audio, got 3 channels$"):
        mono_or_stereo(np.zeros((3, 5)), "X models")


def test_channels_first() -> None:
    assert channels_first(np.zeros(5, np.float64)).shape == (1, 5)
    for bad in (np.zeros((2, 0)), np.zeros((1, 2, 3))):
        assert "expected audio [channels, samples]" in one_line_error(UsageError, channels_first, bad)


def test_a_worker_that_has_ended_ignores_late_stop_signals() -> None:
    """After a worker's body returns, a late SIGTERM/SIGHUP (the parent's and the process group's often both
    come) must not raise inside the interpreter's exit (it printed a traceback where one line was promised)."""
    import subprocess
    import sys

    probe = ("import multiprocessing, os, signal\n"
             "from vsep_core.ipc import child_main\n"
             "ours, theirs = multiprocessing.Pipe()\n"
             "child_main(ours, lambda conn: None, (), os.getppid())\n"
             "os.kill(os.getpid(), signal.SIGTERM)\n"
             "os.kill(os.getpid(), signal.SIGHUP)\n"
             "print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True" and "Traceback" not in done.stderr
