"""Model parameters: UVR hashes (packaged tables + the model directory's JSON) and yaml configs."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from vsep_core import catalog, modeldata
from vsep_core.errors import ModelDataError

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
MODELS = REFERENCE / "models"
MANIFEST = json.loads((REFERENCE / "manifest.json").read_text())


@pytest.mark.parametrize("variant", ["mdx", "vr_nets", "vr_nets_new"])
def test_oracle_random_files_found_through_the_model_dir_json(variant: str) -> None:
    model = MANIFEST["models"][variant]
    path = MODELS / model["model_filename"]

    assert modeldata.get_model_hash(path) == model["model_hash"]
    assert modeldata.load_model_data_using_hash(path, MODELS) == model["model_data"]
    assert modeldata.lookup_hash(path, MODELS)[0] == model["reference_listing"]["type"]


def test_hash_covers_the_last_10240000_bytes(tmp_path: Path) -> None:
    small = tmp_path / "small.onnx"
    small.write_bytes(b"abc" * 1000)
    assert modeldata.get_model_hash(small) == hashlib.md5(b"abc" * 1000).hexdigest()
    big = tmp_path / "big.pth"
    tail = bytes(range(256)) * 40000  # exactly 10,240,000 bytes
    big.write_bytes(b"HEAD" * 1000 + tail)
    assert modeldata.get_model_hash(big) == hashlib.md5(tail).hexdigest()


def test_unknown_hash_names_file_hash_and_remedy(tmp_path: Path) -> None:
    path = tmp_path / "UVR-MDX-NET-Inst_HQ_3.onnx"
    shutil.copy(MODELS / path.name, path)  # the random file, without the oracle's JSON beside it
    with pytest.raises(ModelDataError) as err:
        modeldata.load_model_data_using_hash(path, tmp_path)
    message = str(err.value)
    assert path.name in message and MANIFEST["models"]["mdx"]["model_hash"] in message
    assert "mdx_model_data.json" in message and "vr_model_data.json" in message


def test_packaged_tables_mdx_first_with_audio_separator_additions(tmp_path: Path) -> None:
    tables = modeldata.hash_tables()
    assert [t.architecture for t in tables][:2] == ["MDX", "VR"]
    mdx, vr = tables[0].entries, tables[1].entries
    assert mdx["0ddfc0eb5792638ad5dc27850236c246"]["mdx_n_fft_scale_set"] == 6144
    assert vr["97dc361a7a88b2c4542f68364b32c7f6"]["primary_stem"] == "Dry"  # from audio-separator's model-data.json
    (tmp_path / "vr_model_data.json").write_text(json.dumps({"f" * 32: {"vr_model_param": "4band_v3"}}))
    merged = {t.architecture: t.entries for t in modeldata.hash_tables(tmp_path)}
    assert "f" * 32 in merged["VR"] and "97dc361a7a88b2c4542f68364b32c7f6" in merged["VR"]
    assert "f" * 32 not in merged["MDX"]


def test_broken_model_dir_json_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "mdx_model_data.json").write_text("{not json")
    with pytest.raises(ModelDataError, match="mdx_model_data.json"):
        modeldata.hash_tables(tmp_path)


def test_yaml_loader_accepts_python_tuple_and_nothing_unsafe(tmp_path: Path) -> None:
    data = modeldata.load_model_data_from_yaml(MODELS / "model_bs_roformer_ep_317_sdr_12.9755.yaml")
    assert isinstance(data["model"]["freqs_per_bands"], tuple) and data["audio"]["hop_length"] == 441
    evil = tmp_path / "evil.yaml"
    evil.write_text("x: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ModelDataError, match="evil.yaml"):
        modeldata.load_model_data_from_yaml(evil)
    with pytest.raises(ModelDataError, match="not found"):
        modeldata.load_model_data_from_yaml(tmp_path / "missing.yaml")


def test_model_data_for_each_kind_of_record() -> None:
    def files(record):
        return {f.name: MODELS / f.name for f in record.files}

    mdxc = catalog.resolve_model("MDX23C-8KFFT-InstVoc_HQ.ckpt", MODELS)
    model_path, config_path, data = modeldata.model_data_for(mdxc, files(mdxc), MODELS)
    assert (model_path.name, config_path.name) == ("MDX23C-8KFFT-InstVoc_HQ.ckpt", "model_2_stem_full_band_8k.yaml")
    assert data["model"]["num_channels"] == 8  # the oracle's tiny yaml in the model dir, not the packaged one

    demucs = catalog.resolve_model("htdemucs.yaml", MODELS)
    model_path, config_path, data = modeldata.model_data_for(demucs, files(demucs), MODELS)
    assert model_path == config_path == MODELS / "htdemucs.yaml" and data == {"models": ["955717e8"]}

    vr = catalog.resolve_model("UVR-De-Echo-Normal.pth", MODELS)
    model_path, config_path, data = modeldata.model_data_for(vr, files(vr), MODELS)
    assert config_path is None and data == MANIFEST["models"]["vr_nets_new"]["model_data"]
