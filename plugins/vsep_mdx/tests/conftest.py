"""Fixtures of the vsep-mdx tests: the reference oracle (../shared/reference) and its stems."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mdx_testlib import CHECKER, ORACLE_MODEL, REFERENCE, make_ctx  # noqa: E402

from vsep_core.testlib import load_module, manifest, oracle_mix, reference_fixture  # noqa: E402, F401

reference = reference_fixture(REFERENCE)


@pytest.fixture(scope="session")
def oracle_data(manifest: dict[str, Any]) -> dict[str, Any]:  # noqa: F811 - the imported fixture
    """Hash parameters of the oracle's MDX file."""
    return manifest["models"]["mdx"]["model_data"]


@pytest.fixture(scope="session")
def checker(reference: Path) -> Any:
    """shared/tools/check_reference.py as a module (its expected_stems derives vsep's expected MDX stems)."""
    return load_module(CHECKER, "check_reference")


@pytest.fixture(scope="session")
def oracle_default(reference: Path, oracle_data: dict[str, Any],
                   oracle_mix: np.ndarray) -> dict[str, np.ndarray]:  # noqa: F811 - the imported fixture
    """vsep's stems of the oracle input at default settings, with core's steps around the model (computed once)."""
    from vsep_mdx.model import load_model

    from vsep_core.testing import separate_as_core

    return separate_as_core(load_model(make_ctx(reference / "models" / ORACLE_MODEL, oracle_data)), oracle_mix)
