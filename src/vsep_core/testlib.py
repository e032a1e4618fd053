"""Shared fixtures and helpers of the plugins' tests (their conftest.py and testlib modules import them).

Import fixtures into a conftest to use them (``from vsep_core.testlib import manifest, one_torch_thread``);
``one_torch_thread`` is autouse there. Needs pytest (a dev dependency): never import this from library code.
The contract checks of a loaded model are in :mod:`vsep_core.testing`.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import sys
import types
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


@contextlib.contextmanager
def importable_class(qualified: str) -> Iterator[type]:
    """A stand-in class importable as `qualified` (``package.module.Class``) while the context lasts, so that
    pickle stores it by reference as a published checkpoint that pickles its class would."""
    package, module, name = qualified.split(".")
    fake_pkg, fake_mod = types.ModuleType(package), types.ModuleType(f"{package}.{module}")
    klass = type(name, (), {"__module__": fake_mod.__name__})
    setattr(fake_mod, name, klass)
    setattr(fake_pkg, module, fake_mod)
    saved = {n: sys.modules.get(n) for n in (package, fake_mod.__name__)}
    sys.modules.update({package: fake_pkg, fake_mod.__name__: fake_mod})
    try:
        yield klass
    finally:
        for n, mod in saved.items():
            if mod is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = mod


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


class NotATensor:
    """A class a pickle would have to import: what a checkpoint "holding code" looks like."""


def save_with_code(path: Path, state: dict[str, Any]) -> Path:
    """Save `state` as ``{"state_dict": state}`` plus an object whose class unpickling would import (a
    checkpoint that ``torch.load(weights_only=True)`` must refuse)."""
    import torch

    torch.save({"state_dict": state, "payload": NotATensor()}, path)
    return path


def write_checkpoint(directory: Path, name: str, config: dict[str, Any], checkpoint: Any,
                     suffix: str = ".ckpt") -> Path:
    """``name<suffix>`` holding `checkpoint` (torch.save) with its yaml ``name.yaml`` (`config`) beside it."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    write_yaml(directory / f"{name}.yaml", config)
    path = directory / f"{name}{suffix}"
    torch.save(checkpoint, path)
    return path


def checkpoint_context(model_path: Path, architecture: str, params: Any, config_path: Path | None = None,
                       yaml_beside: bool = True) -> Any:
    """A LoadContext for a local checkpoint on the CPU; its yaml is `config_path`, else (with `yaml_beside`)
    the one beside it, else None (the plugin finds it)."""
    from vsep_core.api import Device, LoadContext, ModelRecord

    if config_path is None and yaml_beside:
        config_path = model_path.with_suffix(".yaml")
    return LoadContext(record=ModelRecord(model_path.name, architecture, model_path.name, []), model_path=model_path,
                       model_dir=model_path.parent, config_path=config_path, params=params, device=Device("cpu", ()))


def separate_file_lower(model: Any, input_path: str | Path) -> dict[str, np.ndarray]:
    """`model`'s stems of an audio file, keyed by lower-case stem name (what MSST's oracle checker compares)."""
    import soundfile as sf

    audio, _ = sf.read(str(input_path), dtype="float32", always_2d=True)
    return {name.lower(): wave for name, wave in model.separate(audio.T).items()}


def assert_channels_independent(net: Any, samples: int, channel_axis: int) -> None:
    """Swapping the channels of a random [1, 2, samples] input swaps the channels (`channel_axis`) of `net`'s
    output: each channel is processed on its own."""
    import torch

    x = torch.randn(1, 2, samples)
    with torch.inference_mode():
        a, b = net(x), net(x.flip(1))
    torch.testing.assert_close(a.flip(channel_axis), b, rtol=1e-4, atol=1e-5)


def one_line_error(error: type[Exception], fn: Callable[..., Any], *args: Any) -> str:
    """The message of the `error` that ``fn(*args)`` must raise, checked to be a single line."""
    with pytest.raises(error) as info:
        fn(*args)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def yaml_load_error(load: Callable[[Path], Any], checkpoint: Path, config: dict[str, Any],
                    error: type[Exception]) -> str:
    """Write `config` as the yaml beside `checkpoint`, then ``load(checkpoint)``: the message of the `error` it
    must raise, checked to be a single line."""
    write_yaml(checkpoint.with_suffix(".yaml"), config)
    return one_line_error(error, load, checkpoint)


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


def check_msst_case(model: Any, reference: Path, name: str, checker: Path, shape: tuple[int, ...],
                    lower_names: bool = False, min_db: float = 50) -> None:
    """Separate the input of case `name` of the MSST oracle at `reference` (skips when it is not checked
    out) with `model`, resampled to the model's rate by core (soxr HQ), and compare: the stem names (in
    lower case with `lower_names`), `shape`, at least `min_db` by `checker`'s ``compare`` and a gain within
    0.01 dB for every stem."""
    from vsep_core import audio as audio_io

    case = msst_case(reference, name)
    compare = load_module(checker).compare
    mix, info = audio_io.read_audio(reference / case["input"])
    length = int(round(info.frames * model.sample_rate / info.sample_rate))
    out = model.separate(audio_io.resample(mix, info.sample_rate, model.sample_rate, length))
    assert [s.lower() if lower_names else s for s in out] == [s["stem"] for s in case["stems"]]
    for stem_info, (stem, ours) in zip(case["stems"], out.items(), strict=True):
        expected = np.load(reference / "expected" / name / stem_info["npy"])
        assert ours.shape == expected.shape == shape
        db, gain_db = compare(ours, expected)
        assert db >= min_db, f"{stem}: {db:.1f} dB"
        assert abs(gain_db) < 0.01


def msst_case(reference: Path, name: str) -> dict[str, Any]:
    """Case `name` of the MSST oracle's manifest (skips when the oracle is not checked out)."""
    manifest_path = reference / "manifest.json"
    if not manifest_path.is_file():
        pytest.skip(f"MSST oracle not found at {reference}")
    return json.loads(manifest_path.read_text())["cases"][name]
