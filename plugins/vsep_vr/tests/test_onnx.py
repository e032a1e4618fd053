"""VR nets exported to ONNX: same pre/post-processing on ONNX Runtime, outputs within 60 dB of torch."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from vr_testlib import SMALL_V5, SMALL_V51, TINY_V5, make_ctx, parity_db
from vsep_vr.model import ONNX_META_PREFIX, load_model
from vsep_vr.onnx_export import export_onnx
from vsep_vr.plugin import claims

from vsep_core.errors import ModelDataError, ModelLoadError

ONNX_DB = 60.0


@pytest.fixture(scope="module")
def exported(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("vr_onnx")
    return {"v5": export_onnx(tiny_dir / "small_v5.pth", out / "small_v5.onnx", SMALL_V5),
            "v51": export_onnx(tiny_dir / "small_v51.pth", out / "small_v51.onnx", SMALL_V51)}


@pytest.mark.parametrize(("gen", "pth", "data", "params"), [
    ("v5", "small_v5.pth", SMALL_V5, {"window_size": 320, "batch_size": 2}),
    ("v51", "small_v51.pth", SMALL_V51, {"enable_tta": True, "high_end_process": True, "window_size": 1024}),
])
def test_onnx_matches_torch(exported, tiny_dir, mix, gen, pth, data, params):
    torch_model = load_model(make_ctx(tiny_dir / pth, data, **params))
    onnx_model = load_model(make_ctx(exported[gen], data, **params))
    assert onnx_model.stems == torch_model.stems and onnx_model.offset == torch_model.offset
    assert "ONNX Runtime" in onnx_model.description
    ours, ref = onnx_model.separate(mix[:, :40000]), torch_model.separate(mix[:, :40000])
    for stem in ref:
        assert ours[stem].shape == ref[stem].shape
        db, gain = parity_db(ours[stem], ref[stem])
        assert db >= ONNX_DB and abs(gain) < 0.01, f"{gen}/{stem}: {db:.1f} dB"


def test_export_is_self_describing(exported, mix):
    proto = onnx.load(str(exported["v51"]), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta[ONNX_META_PREFIX + "offset"] == "64" and meta[ONNX_META_PREFIX + "generation"] == "v51"
    assert json.loads(meta[ONNX_META_PREFIX + "model_data"]) == SMALL_V51
    assert [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == \
        ["batch", 2, 257, "frames"]
    # no hash-table entry needed: band parameters and stems come from the file
    model = load_model(make_ctx(exported["v51"], {}))
    assert model.stems == ["No Reverb", "Reverb"] and model.band_params.name == "1band_sr44100_hl256" and model.v51
    assert claims(exported["v5"]) and claims(exported["v51"])


def test_export_errors(tiny_dir, tmp_path, reference):
    with pytest.raises(ModelDataError, match="vr_model_param"):
        export_onnx(tiny_dir / "tiny_v5.pth", tmp_path / "x.onnx", {"primary_stem": "Vocals"})
    assert not (tmp_path / "x.onnx").exists()
    mdx = reference / "models" / "UVR-MDX-NET-Inst_HQ_3.onnx"
    assert not claims(mdx)
    with pytest.raises(ModelLoadError, match="not a VR ONNX export"):
        load_model(make_ctx(mdx, TINY_V5))


def test_onnx_bins_must_match_band_params(exported):
    with pytest.raises(ModelDataError, match="bins"):
        load_model(make_ctx(exported["v5"], {"vr_model_param": "1band_sr44100_hl512"}))
