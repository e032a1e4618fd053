"""Shared fixtures and helpers of the plugins' tests (their conftest.py and testlib modules import them).

Import fixtures into a conftest to use them (``from vsep_core.testlib import manifest, one_torch_thread``);
``one_torch_thread`` is autouse there. Needs pytest (a dev dependency): never import this from library code.
The contract checks of a loaded model are in :mod:`vsep_core.testing`.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml

ORACLE_INPUT = Path("input") / "mardy20s_6s_16bit.flac"


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread per test (restored after): on a loaded 2-core machine OpenMP's second thread mostly
    waits for a time slice, and tiny networks gain nothing from it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def oracle_dir(path: Path) -> Path:
    """`path` when it holds a manifest.json, else skip the test (the oracle is not checked out)."""
    if not (path / "manifest.json").is_file():
        pytest.skip(f"reference oracle not found at {path}")
    return path


def reference_fixture(path: Path, name: str = "reference") -> Any:
    """A session fixture called `name` giving the oracle directory `path` (skips when it is absent)."""

    def fixture() -> Path:
        return oracle_dir(path)

    fixture.__doc__ = f"The oracle directory {path} (skips when it is not checked out)."
    return pytest.fixture(scope="session", name=name)(fixture)


@pytest.fixture(scope="session")
def manifest(reference: Path) -> dict[str, Any]:
    """The oracle's manifest.json."""
    return json.loads((reference / "manifest.json").read_text())


@pytest.fixture(scope="session")
def oracle_mix(reference: Path) -> np.ndarray:
    """The oracle's 6 s input, float32 [2, samples]."""
    import soundfile as sf

    data, _ = sf.read(str(reference / ORACLE_INPUT), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


def load_module(path: Path, name: str | None = None) -> ModuleType:
    """A Python file (such as shared/tools/check_reference.py) loaded as a module; skips when it is absent.
    Its folder goes on sys.path so that its own imports resolve."""
    if not path.is_file():
        pytest.skip(f"{path.name} not found at {path.parent}")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def changed_config(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of `base` with dotted keys changed (``{"model.layer": 2}``); a value None removes the key."""
    config = copy.deepcopy(base)
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        node = config
        for key in path:
            node = node[key]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return config


def write_yaml(path: Path, config: dict[str, Any]) -> Path:
    """Write `config` as MSST does (PyYAML, tuples as ``!!python/tuple``)."""
    path.write_text(yaml.dump(config, sort_keys=False), encoding="utf-8")
    return path


def perturbed_state(make_net: Callable[[], Any], seed: int, scale: float) -> dict[str, Any]:
    """The state dict of ``make_net()`` built after seeding torch with `seed`, every parameter moved by
    `scale` times Gaussian noise (so that norm gains are not all ones)."""
    import torch

    torch.manual_seed(seed)
    net = make_net()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn_like(p))
    return net.state_dict()


def msst_case(reference: Path, name: str) -> dict[str, Any]:
    """Case `name` of the MSST oracle's manifest (skips when the oracle is not checked out)."""
    manifest_path = reference / "manifest.json"
    if not manifest_path.is_file():
        pytest.skip(f"MSST oracle not found at {reference}")
    return json.loads(manifest_path.read_text())["cases"][name]


def assert_msst_parity(out: dict[str, np.ndarray], case: dict[str, Any], reference: Path, name: str,
                       compare: Callable[[np.ndarray, np.ndarray], tuple[float, float]], shape: tuple[int, ...],
                       min_db: float = 50) -> None:
    """Every stem of `out` against the MSST oracle's expected array of case `name`: `shape`, at least
    `min_db` by `compare`, and a gain within 0.01 dB."""
    for stem_info, (stem, ours) in zip(case["stems"], out.items(), strict=True):
        expected = np.load(reference / "expected" / name / stem_info["npy"])
        assert ours.shape == expected.shape == shape
        db, gain_db = compare(ours, expected)
        assert db >= min_db, f"{stem}: {db:.1f} dB"
        assert abs(gain_db) < 0.01
