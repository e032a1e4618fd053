"""Loading: the allow-listed unpickler, checksums, bag files, parameters. No network runs here."""

from __future__ import annotations

import builtins
import dataclasses
import io
import logging
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from demucs_testlib import context, demucs_class, make_tiny, save_package, write_bag
from vsep_demucs.checkpoint import read_package
from vsep_demucs.model import load_model, stem_order
from vsep_demucs.plugin import DemucsParams, parse_segment, vsep_architectures

from vsep_core.errors import ModelLoadError, UsageError
from vsep_core.params import build_params


class _System:
    """Unpickles to os.system(<command>): what a malicious .th does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __reduce__(self):
        return (builtins.eval, ("__import__('os').getcwd()",))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    state = {"w": torch.zeros(2)}
    save_package({"args": (), "kwargs": {"sources": ["vocals"]}, "state": state,
                 "training_args": _System(f"touch {marker}")}, tmp_path, "deadbeef")
    with pytest.raises(ModelLoadError, match="system") as info:
        load_model(context(write_bag(tmp_path, "evil", ["deadbeef"])))
    assert "nothing in it ran" in str(info.value)
    assert not marker.exists()


def test_eval_in_kwargs_is_refused(tmp_path: Path) -> None:
    path = save_package({"args": (), "kwargs": {"sources": _Eval()}, "state": {}}, tmp_path, "cafe0001")
    with pytest.raises(ModelLoadError, match="eval"):
        read_package(path)


def test_class_reference_cannot_be_called(tmp_path: Path) -> None:
    """A file that tries to *call* the allowed class path while unpickling is refused too."""
    buf = io.BytesIO()
    with demucs_class() as klass:
        klass.__reduce__ = lambda self: (klass, ())  # unpickling would call demucs.htdemucs.HTDemucs()
        torch.save({"klass": klass(), "kwargs": {}, "state": {}}, buf)
    path = tmp_path / "ab12cd34.th"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ModelLoadError, match="refused"):
        read_package(path)


def test_unsupported_demucs_class_is_named(tmp_path: Path) -> None:
    path = save_package({"args": (), "kwargs": {}, "state": {}}, tmp_path, "e07c671f", klass="demucs.demucs.Demucs")
    assert read_package(path)["klass"] == "demucs.demucs.Demucs"
    with pytest.raises(ModelLoadError, match="not supported"):
        load_model(context(path))


def test_package_fields_and_fraction_segment(tiny_dir: Path) -> None:
    package = read_package(next(tiny_dir.glob("aaaa0001-*.th")))
    assert package["klass"] == "demucs.htdemucs.HTDemucs"
    assert package["kwargs"]["segment"] == Fraction(3, 2)
    assert all(t.dtype == torch.float16 for t in package["state"].values())


def test_checksum_mismatch_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    good = next(tiny_dir.glob("aaaa0001-*.th"))
    bad = tmp_path / "aaaa0001-00000000.th"
    bad.write_bytes(good.read_bytes())
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_model(context(write_bag(tmp_path, "b", ["aaaa0001"])))


def test_plain_state_dict_is_not_a_package(tmp_path: Path) -> None:
    path = tmp_path / "12345678.th"
    torch.save({"encoder.0.conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ModelLoadError, match="not a Demucs model package"):
        read_package(path)


def test_missing_and_duplicate_signatures(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(context(write_bag(tmp_path, "missing", ["ffff9999"])))
    make_tiny(tmp_path, "dddd0004", seed=4)
    (tmp_path / "dddd0004.th").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="several files"):
        load_model(context(write_bag(tmp_path, "dup", ["dddd0004"])))


def test_bad_bag_weights(tiny_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="zero total weight"):
        load_model(context(write_bag(tiny_dir, "zero", ["aaaa0001", "bbbb0002"],
                                     [[1, 0, 1, 1], [1, 0, 1, 1]])))
    with pytest.raises(ModelLoadError, match="one per source"):
        load_model(context(write_bag(tiny_dir, "short", ["aaaa0001"], [[1, 1, 1]])))


def test_segment_is_capped_at_training_segment(tiny_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vsep.test"):
        capped = load_model(context(tiny_dir / "tiny_a.yaml", segment_size="100"))
    assert capped.models[0].segment == Fraction(3, 2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "training segment 1.50 s" in warnings[0].getMessage()
    caplog.clear()
    shorter = load_model(context(tiny_dir / "tiny_a.yaml", segment_size=1))
    assert not caplog.records
    assert shorter.models[0].segment == 1
    default = load_model(context(tiny_dir / "tiny_a.yaml"))
    assert default.models[0].segment == Fraction(3, 2)


def test_parameter_parsing() -> None:
    assert parse_segment("Default") is None and parse_segment(None) is None
    assert parse_segment("10") == 10 and parse_segment(1) == 1 and parse_segment(100) == 100
    for bad in ("abc", 0, 101, "7.5", True):
        with pytest.raises(UsageError):
            parse_segment(bad)
    with pytest.raises(UsageError, match="segment_size"):
        DemucsParams(segment_size="7.5")


def test_bad_params_raise_usage_errors_from_core(tiny_dir: Path) -> None:
    arch = next(a for a in vsep_architectures() if a.params is DemucsParams)
    for bad in ({"overlap": 1.0}, {"shifts": -1}, {"segment_size": "abc"}, {"segments_enabled": "maybe"}):
        with pytest.raises(UsageError, match=next(iter(bad))):
            build_params(arch, bad)
    params = build_params(arch, {"segments_enabled": "False", "segment_size": "10"})
    assert params.segments_enabled is False and parse_segment(params.segment_size) == 10
    with pytest.raises(UsageError, match="DemucsParams"):
        load_model(dataclasses.replace(context(tiny_dir / "tiny_a.yaml"), params={"shifts": 1}))


def test_stem_order_follows_reference() -> None:
    assert stem_order(["drums", "bass", "other", "vocals", "guitar", "piano"]) == [
        ("Bass", 1), ("Drums", 0), ("Other", 2), ("Vocals", 3), ("Guitar", 4), ("Piano", 5)]
    assert [n for n, _ in stem_order(["vocals", "no_vocals"])] == ["Vocals", "No Vocals"]


def test_plugin_module_does_not_import_torch() -> None:
    code = "import sys, vsep_demucs.plugin as p; p.vsep_architectures(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
