"""vsep-demucs keeps the SeparationModel contract (core's conformance kit) for a bag of tiny models."""

from __future__ import annotations

from demucs_testlib import context, write_bag
from vsep_demucs.model import load_model

from vsep_core.testing import check_model


def test_tiny_demucs_bag_conforms(tiny_dir):
    path = write_bag(tiny_dir, "tiny_conformance", ["aaaa0001", "bbbb0002"])
    check_model(load_model(context(path, shifts=0)), lengths_seconds=(0.37, 1.6))
