"""The catalogue: records from the plugins, scores, the reference's listings, resolution, `vsep models`."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import run_vsep
from vsep_core import catalog, modeldata
from vsep_core.errors import ModelDataError, ModelNotFoundError

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
MODELS = REFERENCE / "models"
MANIFEST = json.loads((REFERENCE / "manifest.json").read_text())
FIRST_PARTY = {"vsep-mdx", "vsep-vr", "vsep-mdxc", "vsep-demucs"}


def cli_app():
    """The Typer app with `vsep models` and `vsep download` registered, as the real CLI has them."""
    import importlib

    for name in ("models", "download"):
        importlib.import_module(f"vsep_core.cli.{name}")
    from vsep_core.cli.app import app

    return app


@pytest.fixture(autouse=True)
def fresh_catalogue():
    catalog.clear_cache()
    yield
    catalog.clear_cache()


def test_every_family_lists_the_reference_models() -> None:
    by_arch: dict[str, list] = {}
    for record in catalog.all_records():
        by_arch.setdefault(record.architecture, []).append(record)
    assert catalog.architecture_names()[:4] == ["VR", "MDX", "Demucs", "MDXC"]  # the plugins' catalogue ranks
    counts = {arch: len(by_arch.get(arch, [])) for arch in catalog.architecture_names()[:4]}
    # UVR lists + audio-separator 0.47.1 models.json (roformer_download_list has 84 entries)
    assert counts == {"VR": 29, "MDX": 39, "Demucs": 4, "MDXC": 100}  # + 3 RoFormers only MSST lists
    filenames = [r.filename for r in catalog.all_records()]
    assert len(filenames) == len(set(filenames))


@pytest.mark.parametrize("variant", ["mdx", "vr_nets", "vr_nets_new", "demucs", "mdxc", "bs_roformer", "mel_roformer"])
def test_listing_matches_what_the_reference_listed_for_the_oracle(variant: str) -> None:
    model = MANIFEST["models"][variant]
    listing = model["reference_listing"]
    entry = catalog.list_supported_model_files()[listing["type"]][listing["friendly_name"]]
    assert entry["filename"] == model["model_filename"]
    assert entry["download_files"] == listing["download_files"]
    assert set(entry) == {"filename", "scores", "stems", "target_stem", "download_files"}


def test_scores_stems_and_target_come_from_the_plugins_packaged_scores() -> None:
    record = catalog.resolve_model("model_bs_roformer_ep_317_sdr_12.9755.ckpt", MODELS)
    assert record.stems == ["vocals", "instrumental"] and record.target_stem == "vocals"
    assert record.scores["vocals"] == {"SDR": 11.7742, "SIR": 27.3991, "SAR": 12.6773, "ISR": 16.0782}


def test_simplified_list_filters_by_stem_sorted_by_sdr() -> None:
    listed = catalog.get_simplified_model_list("Drums")
    assert listed and all("drums" in v["SDR"] for v in listed.values())
    sdrs = [v["SDR"]["drums"] for v in listed.values()]
    scored = [s for s in sdrs if s is not None]
    assert scored == sorted(scored, reverse=True) and sdrs[:len(scored)] == scored  # unscored last
    entry = catalog.get_simplified_model_list()["model_bs_roformer_ep_317_sdr_12.9755.ckpt"]
    assert entry == {"Name": "Roformer Model: BS-Roformer-Viperx-1297", "Type": "MDXC",
                     "Stems": ["vocals* (11.8)", "instrumental (16.5)"], "SDR": {"vocals": 11.8, "instrumental": 16.5}}
    names = [v["Name"] for v in catalog.get_simplified_model_list("name").values()]
    assert names == sorted(names)
    assert list(catalog.get_simplified_model_list("filename")) == sorted(catalog.get_simplified_model_list())


def test_resolve_by_any_file_name_or_friendly_name() -> None:
    assert catalog.resolve_model("model_bs_roformer_ep_317_sdr_12.9755.yaml", MODELS).filename == (
        "model_bs_roformer_ep_317_sdr_12.9755.ckpt")
    assert catalog.resolve_model("955717e8-8726e21a.th", MODELS).filename == "htdemucs.yaml"
    assert catalog.resolve_model("Demucs v4: htdemucs_6s", MODELS).filename == "htdemucs_6s.yaml"


def test_unknown_name_suggests_close_names(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"did you mean model_bs_roformer_ep_317_sdr_12\.9755\.ckpt"):
        catalog.resolve_model("model_bs_roformer_ep_317_sdr_12.975.ckpt", tmp_path)


def test_local_files_claimed_by_hash_or_by_yaml(tmp_path: Path) -> None:
    shutil.copy(MODELS / "UVR-MDX-NET-Inst_HQ_3.onnx", tmp_path / "my_mdx.onnx")  # .onnx: MDX or VR, the hash decides
    shutil.copy(MODELS / "2_HP-UVR.pth", tmp_path / "my_vr.pth")
    shutil.copy(MODELS / "mdx_model_data.json", tmp_path)
    shutil.copy(MODELS / "vr_model_data.json", tmp_path)
    assert catalog.resolve_model("my_mdx.onnx", tmp_path).architecture == "MDX"
    assert catalog.resolve_model("my_vr.pth", tmp_path).architecture == "VR"

    shutil.copy(MODELS / "MDX23C-8KFFT-InstVoc_HQ.ckpt", tmp_path / "custom.ckpt")
    with pytest.raises(ModelNotFoundError, match=r"beside the file as custom\.yaml"):  # a .ckpt alone is nobody's
        catalog.resolve_model("custom.ckpt", tmp_path)
    bare = tmp_path / "bare"  # no hash tables here
    bare.mkdir()
    shutil.copy(MODELS / "UVR-De-Echo-Normal.pth", bare / "unknown.pth")
    unknown = catalog.resolve_model("unknown.pth", bare)  # the VR plugin recognises its keys
    with pytest.raises(ModelDataError, match=MANIFEST["models"]["vr_nets_new"]["model_hash"]):
        modeldata.model_data_for(unknown, {}, bare)
    (bare / "other.pth").write_bytes(b"not a VR checkpoint")
    with pytest.raises(ModelNotFoundError, match=hashlib.md5(b"not a VR checkpoint").hexdigest()):
        catalog.resolve_model("other.pth", bare)
    shutil.copy(MODELS / "model_2_stem_full_band_8k.yaml", tmp_path / "custom.yaml")
    record = catalog.resolve_model("custom.ckpt", tmp_path)
    assert (record.architecture, record.config) == ("MDXC", "custom.yaml")


@pytest.fixture
def without_vr(monkeypatch: pytest.MonkeyPatch):
    """Pretend the vsep-vr plugin is not installed."""
    archs = {k: v for k, v in catalog.installed_architectures().items() if k != "VR"}
    hook = [r for r in catalog._hook_records() if r.architecture != "VR"]
    monkeypatch.setattr(catalog, "installed_architectures", lambda: archs)
    monkeypatch.setattr(catalog, "_hook_records", lambda: hook)
    catalog.clear_cache()


def test_an_uninstalled_family_is_unknown_to_core(without_vr) -> None:
    assert not [r for r in catalog.all_records() if r.architecture == "VR"]
    assert "VR" not in catalog.list_supported_model_files()
    with pytest.raises(ModelNotFoundError, match="2_HP-UVR.pth"):
        catalog.resolve_model("2_HP-UVR.pth", MODELS)



def test_vsep_models_pretty_and_json_with_stem_filter_and_limit() -> None:
    expected = [r.filename for r in catalog.select_models("vocals", 4)]
    pretty = run_vsep("models", "--list_filter", "vocals", "--list_limit", "4", COLUMNS="250")
    assert pretty.returncode == 0, pretty.stderr
    text = pretty.stdout.replace("│", " ")
    positions = [text.find(f) for f in expected]
    assert -1 not in positions and positions == sorted(positions)  # the table keeps the ranking's order
    assert "Ranked by vocals SDR on Multisong" in pretty.stdout  # MSST's records carry Multisong scores

    flat = run_vsep("--list_models", "--list_format", "json", "--list_filter", "vocals", "--list_limit", "4")
    assert flat.returncode == 0, flat.stderr
    data = json.loads(flat.stdout)
    listed = [e["filename"] for group in data.values() for e in group.values()]
    assert sorted(listed) == sorted(expected) and set(catalog.architecture_names()) <= set(data)

    full = json.loads(CliRunner().invoke(cli_app(), ["models", "--list_format", "json"]).output)
    assert full["MDXC"]["Roformer Model: BS-Roformer-Viperx-1297"]["download_files"] == [
        "model_bs_roformer_ep_317_sdr_12.9755.ckpt", "model_bs_roformer_ep_317_sdr_12.9755.yaml"]
    assert sum(len(group) for group in full.values()) >= 169


def test_models_info_reports_files_urls_and_parameters(tmp_path: Path) -> None:
    app = cli_app()
    runner = CliRunner()
    on_disk = json.loads(runner.invoke(app, ["models", "info", "UVR-MDX-NET-Inst_HQ_3.onnx", "--model_file_dir",
                                             str(MODELS), "--list_format", "json"]).output)
    assert on_disk["architecture"] == "MDX" and on_disk["files"][0]["on_disk"]
    assert on_disk["parameters"] == MANIFEST["models"]["mdx"]["model_data"]
    missing = json.loads(runner.invoke(app, ["models", "info", "htdemucs_ft.yaml", "--model_file_dir",
                                             str(tmp_path), "--list_format", "json"]).output)
    assert not any(f["on_disk"] for f in missing["files"]) and len(missing["files"]) == 5
    assert missing["files"][0]["urls"][0].startswith("https://dl.fbaipublicfiles.com/demucs/")
    packaged = json.loads(runner.invoke(app, ["models", "info", "model_bs_roformer_ep_317_sdr_12.9755.ckpt",
                                              "--model_file_dir", str(tmp_path), "--list_format", "json"]).output)
    assert packaged["files"][1]["packaged"] and packaged["parameters"]["model"]["dim"] == 512  # the real yaml


def test_stem_listing_ranks_within_one_data_set_and_says_which() -> None:
    from vsep_core.api import ModelRecord

    def record(name: str, scores: dict) -> ModelRecord:
        return ModelRecord(name, "X", name, [], stems=["drums"], scores=scores)

    records = [record("musdb_high", {"drums": {"SDR": 12.0}}),
               record("multi_low", {"drums (Multisong)": {"SDR": 9.0}, "drums": {"SDR": 8.0}}),
               record("multi_high", {"Drums (Multisong)": {"SDR": 11.0}}),
               record("unscored", {})]
    ranked = [r.filename for r in catalog.sort_records(records, "drums")]
    # Multisong first (where any model has it), best first; then the reference's MUSDB18-HQ; then unscored
    assert ranked == ["multi_high", "multi_low", "musdb_high", "unscored"]
    assert catalog.ranking_dataset(records, "drums") == "Multisong"
    assert catalog.ranking_dataset(records[:1], "drums") == "MUSDB18-HQ"
    assert catalog.stem_scores(records[1], "Drums") == {"Multisong": 9.0, "MUSDB18-HQ": 8.0}


def test_model_info_and_prepare_models_are_library_calls(tmp_path: Path) -> None:
    from vsep_core import modelinfo
    from vsep_core.errors import DownloadError

    info = modelinfo.model_info("UVR-MDX-NET-Inst_HQ_3.onnx", MODELS)
    assert info["parameters"] == MANIFEST["models"]["mdx"]["model_data"] and info["files"][0]["on_disk"]
    [(record, files)] = modelinfo.prepare_models(["UVR-MDX-NET-Inst_HQ_3.onnx"], MODELS, offline=True,
                                                 show_progress=False)
    assert record.architecture == "MDX" and files[record.filename].is_file()
    with pytest.raises(DownloadError):
        modelinfo.prepare_models(["UVR-MDX-NET-Inst_HQ_3.onnx"], tmp_path, offline=True, show_progress=False)
