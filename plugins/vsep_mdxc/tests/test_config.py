"""Yaml reading, network detection, stem naming, chunk schedules; the plugin's hooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mdxc_testlib import UVR_CONFIGS
from vsep_mdxc.config import BS_ROFORMER, MDX23C, MEL_ROFORMER, detect_kind, load_yaml, plan_stems, secondary_stem
from vsep_mdxc.model import roformer_chunk_starts
from vsep_mdxc.roformer import build_roformer, roformer_config
from vsep_mdxc.tfc_tdf import TFCTDFConfig, TFCTDFNet


def test_load_yaml_reads_python_tuples_safely(tmp_path: Path) -> None:
    """`!!python/tuple` is read as a tuple; other Python tags are refused."""
    good = tmp_path / "good.yaml"
    good.write_text("model:\n  freqs_per_bands: !!python/tuple\n  - 2\n  - 4\n")
    assert load_yaml(good)["model"]["freqs_per_bands"] == (2, 4)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(Exception, match="python/object"):
        load_yaml(bad)


EXPECTED_KINDS = {
    "model_bs_roformer_ep_317_sdr_12.9755.yaml": BS_ROFORMER,
    "model_mel_band_roformer_ep_3005_sdr_11.4360.yaml": MEL_ROFORMER,
    "model_2_stem_full_band_8k.yaml": MDX23C,
    "config_bs_roformer_384_8_2_485100.yaml": BS_ROFORMER,
    "config_melbandroformer_instvoc_duality.yaml": MEL_ROFORMER,
}


def _uvr_yamls() -> list[Path]:
    return sorted(UVR_CONFIGS.glob("*.yaml")) if UVR_CONFIGS.is_dir() else []


@pytest.mark.slow
@pytest.mark.skipif(not _uvr_yamls(), reason="../shared/uvr-data not available")
def test_every_uvr_mdxc_yaml_builds_or_is_refused_clearly() -> None:
    """Each MDX23C/RoFormer yaml of UVR builds a network (on the meta device) with named stems.

    SCNet and BandIt yamls are refused with a clear reason."""
    built = refused = 0
    for path in _uvr_yamls():
        cfg = load_yaml(path)
        try:
            kind = detect_kind(cfg, [path.name])
        except ValueError as exc:
            assert "not supported" in str(exc)
            assert "scnet" in path.name or "bandit" in path.name
            refused += 1
            continue
        assert EXPECTED_KINDS.get(path.name, kind) == kind
        with torch.device("meta"):
            if kind == MDX23C:
                training = cfg["training"]
                stems = 1 if training.get("target_instrument") else len(training["instruments"])
                net = TFCTDFNet(TFCTDFConfig.from_yaml(cfg, stems))
            else:
                variant = "bs" if kind == BS_ROFORMER else "mel"
                rcfg = roformer_config(cfg["model"], variant)
                net, stems = build_roformer(rcfg, variant), rcfg.num_stems
        assert sum(p.numel() for p in net.parameters()) > 1_000_000
        plan = plan_stems(cfg, stems)
        assert len(plan.order) >= 2 and len(set(plan.order)) == len(plan.order)
        built += 1
    assert built >= 25 and refused >= 5


def test_detect_kind_by_name_and_refusal() -> None:
    """Without structural keys the checkpoint name decides; an unknown network is refused."""
    bare = {"model": {"dim": 8, "depth": 1}}
    assert detect_kind(bare, ["vocals_mel_band_roformer.ckpt"]) == MEL_ROFORMER
    assert detect_kind(bare, ["melband_roformer_inst_v1e.ckpt"]) == MEL_ROFORMER
    assert detect_kind(bare, ["deverb_bs_roformer_8_384dim_10depth.ckpt"]) == BS_ROFORMER
    assert detect_kind({"model": {"model_type": "mel_band_roformer"}}, []) == MEL_ROFORMER
    with pytest.raises(ValueError, match="both"):
        detect_kind({"model": {"freqs_per_bands": [1], "num_bands": 4}}, [])
    with pytest.raises(ValueError, match="not supported"):
        detect_kind({"model": {"nfft": 4096}}, ["scnet.ckpt"])


@pytest.mark.parametrize("instruments,target,stems,order,residual", [
    (["Vocals", "Instrumental"], "Vocals", 1, ("Instrumental", "Vocals"), "Instrumental"),
    (["Vocals", "Instrumental"], "Instrumental", 1, ("Vocals", "Instrumental"), "Vocals"),  # swapped primary
    (["Instrumental", "Vocals"], "Instrumental", 1, ("Vocals", "Instrumental"), "Vocals"),
    (["Vocals", "Instrumental"], None, 2, ("Instrumental", "Vocals"), None),
    (["Drums", "Bass", "Other", "Vocals"], None, 4, ("Drums", "Bass", "Other", "Vocals"), None),
    (["Vocals", "Drums", "Bass", "Other"], "Vocals", 1, ("Instrumental", "Vocals"), "Instrumental"),
    (["No Reverb", "Reverb"], None, 1, ("Reverb", "No Reverb"), "Reverb"),  # one output, no target
    (["vocals", "other"], "vocals", 1, ("other", "vocals"), "other"),  # yaml case is kept
])
def test_plan_stems(instruments: list[str], target: str | None, stems: int, order: tuple, residual: str | None) -> None:
    """Output order and residual naming (reference: secondary then primary for two stems)."""
    plan = plan_stems({"training": {"instruments": instruments, "target_instrument": target}}, stems)
    assert plan.order == order
    assert plan.residual == residual


def test_plan_stems_refuses_a_count_mismatch() -> None:
    """A 3-output network with 4 instruments and no target cannot be named."""
    with pytest.raises(ValueError, match="3 outputs"):
        plan_stems({"training": {"instruments": ["a", "b", "c", "d"]}}, 3)


def test_secondary_stem() -> None:
    """Vocals <-> Instrumental, X <-> No X."""
    assert secondary_stem("Vocals") == "Instrumental"
    assert secondary_stem("Reverb") == "No Reverb"
    assert secondary_stem("No Reverb") == "Reverb"


def test_roformer_chunk_starts() -> None:
    """The 0.47.1 schedule: the oracle clip's starts, a short input, and no repeated tail."""
    assert roformer_chunk_starts(264600, 112455, 28113) == [0, 28113, 56226, 84339, 112452, 140565, 152145]
    assert roformer_chunk_starts(1000, 4000, 1000) == [0]
    assert roformer_chunk_starts(4000, 4000, 1000) == [0]
    assert roformer_chunk_starts(8000, 4000, 4000) == [0, 4000]
    starts = roformer_chunk_starts(10_001, 4000, 1333)
    assert starts[-1] == 10_001 - 4000 and len(set(starts)) == len(starts)


def test_plugin_hooks_are_light() -> None:
    """Importing the plugin module does not import torch; the architecture exposes typed params."""
    code = ("import sys, vsep_mdxc.plugin as p; a = p.vsep_architectures()[0]; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "print(a.name, a.flag_prefix, [f.name for f in a.param_fields()])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[:2] == ["MDXC", "mdxc"]
    for name in ("segment_size", "override_model_segment_size", "overlap", "batch_size", "pitch_shift"):
        assert name in out
