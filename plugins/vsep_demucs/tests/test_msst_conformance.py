"""The plugin conformance kit (vsep_core.testing.check_model) on an MSST-format HTDemucs."""

from __future__ import annotations

from pathlib import Path

from msst_htdemucs_testlib import load_msst, msst_yaml_text, write_msst_model

from vsep_core.testing import check_model


def test_msst_htdemucs_conformance(tmp_path: Path) -> None:
    check_model(load_msst(write_msst_model(tmp_path, "tiny_ht", msst_yaml_text(), seed=4)),
                lengths_seconds=(0.3, 1.7))
