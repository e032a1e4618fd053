"""Fixtures of the vsep-mdx tests: the reference oracle (../shared/reference) and its stems."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mdx_testlib import CHECKER, ORACLE_MODEL, REFERENCE, make_ctx  # noqa: E402


@pytest.fixture(scope="session")
def reference() -> Path:
    """The oracle directory (skips when ../shared/reference is not checked out)."""
    if not (REFERENCE / "manifest.json").is_file():
        pytest.skip(f"reference oracle not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="session")
def manifest(reference: Path) -> dict[str, Any]:
    """The oracle's manifest.json."""
    return json.loads((reference / "manifest.json").read_text())


@pytest.fixture(scope="session")
def oracle_data(manifest: dict[str, Any]) -> dict[str, Any]:
    """Hash parameters of the oracle's MDX file."""
    return manifest["models"]["mdx"]["model_data"]


@pytest.fixture(scope="session")
def oracle_mix(reference: Path) -> np.ndarray:
    """The oracle's 6 s input, float32 [2, samples]."""
    import soundfile as sf

    data, _ = sf.read(str(reference / "input" / "mardy20s_6s_16bit.flac"), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


@pytest.fixture(scope="session")
def checker(reference: Path) -> Any:
    """shared/tools/check_reference.py as a module (its expected_stems derives vsep's expected MDX stems)."""
    spec = importlib.util.spec_from_file_location("check_reference", CHECKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def oracle_default(reference: Path, oracle_data: dict[str, Any], oracle_mix: np.ndarray) -> dict[str, np.ndarray]:
    """vsep's stems of the oracle input at default settings, with core's steps around the model (computed once)."""
    from vsep_mdx.model import load_model

    from vsep_core.testing import separate_as_core

    return separate_as_core(load_model(make_ctx(reference / "models" / ORACLE_MODEL, oracle_data)), oracle_mix)
