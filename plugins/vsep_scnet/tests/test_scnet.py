"""vsep-scnet: networks, separation as MSST runs it, the claim rule, bad files, catalogue."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from scnet_testlib import REFERENCE, load, tiny_yaml
from vsep_scnet.catalog import catalogue_data, model_records, packaged_config
from vsep_scnet.claim import yaml_beside_is_scnet
from vsep_scnet.model import model_type_of, scnet_config
from vsep_scnet.network import SCNet
from vsep_scnet.plugin import claims

from vsep_core.errors import ModelDataError, ModelLoadError, UsageError
from vsep_core.msst import read_msst_yaml


def _signal(channels: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t)
    return (tone[None] + 0.05 * rng.standard_normal((channels, n))).astype(np.float32)


# -- networks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_type,sources", [("scnet", 4), ("scnet_masked", 3), ("scnet_tran", 2)])
@pytest.mark.parametrize("length", [5000, 6143])
def test_network_output_shape_and_length(model_type: str, sources: int, length: int) -> None:
    names = ("a", "b", "c", "d")[:sources]
    net = SCNet(scnet_config(tiny_yaml(sources=names, tran=model_type == "scnet_tran")), model_type).eval()
    with torch.no_grad():
        y = net(torch.randn(2, 2, length))
    assert y.shape == (2, sources, 2, length)
    assert torch.isfinite(y).all()


def test_masked_network_outputs_masked_mixture() -> None:
    """scnet_masked multiplies the mixture's STFT by a tanh mask: a silent input gives silent stems."""
    net = SCNet(scnet_config(tiny_yaml()), "scnet_masked").eval()
    with torch.no_grad():
        y = net(torch.zeros(1, 2, 4096))
    assert float(y.abs().max()) == 0.0


def test_state_dict_names_follow_msst() -> None:
    names = set(SCNet(scnet_config(tiny_yaml(tran=True)), "scnet_tran").state_dict())
    assert "encoder.0.SDlayer.convs.0.weight" in names
    assert "decoder.0.1.convtrs.2.weight" in names
    assert "separation_net.dp_modules.1.time_layer.layers.0.0.rotary_embed.freqs" in names
    assert "first_conv.weight" in names
    masked = set(SCNet(scnet_config(tiny_yaml()), "scnet_masked").state_dict())
    assert {"pos_embed_f", "mask_layer.0.weight", "mask_layer.2.bias"} <= masked
    assert "window" not in masked  # not persistent, as in MSST


# -- separation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["scnet", "scnet_masked", "scnet_tran"])
def test_separate_stems_and_exact_length(tiny_models: dict[str, Path], kind: str) -> None:
    model = load(tiny_models[kind])
    assert model.model_type == kind
    n = 8192 * 3 + 17  # longer than 2 * border (the chunk is 8192): reflect border, several windows, fades
    stems = model.separate(_signal(2, n))
    expected = ["Vocals", "Other"] if kind == "scnet_tran" else ["Drums", "Bass", "Other", "Vocals"]
    assert list(stems) == expected == model.stems
    for wave in stems.values():
        assert wave.shape == (2, n) and wave.dtype == np.float32 and np.isfinite(wave).all()
    assert len({float(np.abs(w).sum()) for w in stems.values()}) == len(stems)  # stems really differ


def test_short_and_mono_input(tiny_models: dict[str, Path]) -> None:
    model = load(tiny_models["scnet"])
    short = model.separate(_signal(2, 3000))  # shorter than half a chunk: one zero-padded window
    assert all(w.shape == (2, 3000) for w in short.values())
    assert model.separate(_signal(2, 1))["Bass"].shape == (2, 1)
    mono = _signal(1, 9000)
    out = model.separate(mono)
    assert all(w.shape == (1, 9000) for w in out.values())
    stereo = model.separate(np.repeat(mono, 2, axis=0))
    np.testing.assert_allclose(out["Vocals"][0], stereo["Vocals"].mean(axis=0), atol=1e-6)


def test_normalize_makes_the_model_scale_equivariant(tiny_models: dict[str, Path]) -> None:
    """inference.normalize: mix standardised, stems de-standardised, so 3 x mix gives 3 x stems."""
    model = load(tiny_models["scnet_masked"])
    assert model.settings.normalize
    x = _signal(2, 20000)
    a, b = model.separate(x), model.separate(3 * x)
    for name in a:
        np.testing.assert_allclose(b[name], 3 * a[name], rtol=1e-3, atol=1e-4)
    plain = load(tiny_models["scnet"])
    assert not plain.settings.normalize


def test_batch_size_and_overlap_params(tiny_models: dict[str, Path]) -> None:
    x = _signal(2, 8192 * 4)
    one = load(tiny_models["scnet"], batch_size=1).separate(x)
    four = load(tiny_models["scnet"], batch_size=4)
    assert four.settings.batch_size == 4
    out = four.separate(x)
    # MSST decides the edge fades per batch: middle samples agree whatever the batch size
    mid = slice(10000, 22000)
    np.testing.assert_allclose(out["Drums"][:, mid], one["Drums"][:, mid], atol=1e-5)
    assert load(tiny_models["scnet"], overlap=3).settings.num_overlap == 3


def test_separator_writes_stems(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """Through core: a local .ckpt with its yaml is claimed by this plugin and separated into files."""
    from vsep_core.separator import Separator

    song = tmp_path / "song.flac"
    sf.write(song, _signal(2, 30000).T, 44100)
    sep = Separator(model_file_dir=tiny_models["scnet_tran"].parent, output_dir=tmp_path / "out",
                    output_format="WAV")
    sep.load_model(tiny_models["scnet_tran"].name)
    written = sep.separate(str(song))
    names = sorted(Path(p).name for p in written)
    assert len(names) == 2 and any("(Vocals)" in n for n in names) and any("(Other)" in n for n in names)
    data, rate = sf.read(tmp_path / "out" / names[0])
    assert rate == 44100 and data.shape == (30000, 2)


# -- which files this plugin claims ----------------------------------------------------------------


def test_claim_rule(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    for path in tiny_models.values():
        assert claims(path) and yaml_beside_is_scnet(path)
    other = tmp_path / "roformer.ckpt"
    other.write_bytes(b"")
    (tmp_path / "roformer.yaml").write_text(yaml.safe_dump({"model": {"dim": 384, "depth": 6}}))
    assert not claims(other)
    lonely = tmp_path / "no_yaml.ckpt"
    lonely.write_bytes(b"")
    assert not claims(lonely)
    assert not claims(tiny_models["scnet"].with_suffix(".yaml"))  # only checkpoints


def test_model_type_from_yaml_keys_then_tensor_names() -> None:
    plain, tran = tiny_yaml(), tiny_yaml(tran=True)
    assert model_type_of(tran, []) == "scnet_tran"
    assert model_type_of(plain, ["encoder.0.globalconv.weight"]) == "scnet"
    assert model_type_of(plain, ["pos_embed_f", "encoder.0.globalconv.weight"]) == "scnet_masked"


def test_model_type_override(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match="pos_embed_f.*missing from the checkpoint"):
        load(tiny_models["scnet"], model_type="scnet_masked")
    assert load(tiny_models["scnet"], model_type="scnet").model_type == "scnet"
    with pytest.raises(UsageError, match="scnet_model_type"):
        load(tiny_models["scnet"], model_type="bs_roformer")


# -- bad files: one clear line -----------------------------------------------------------------------


def _copy_model(src: Path, dst_dir: Path, config: dict) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    ckpt = dst_dir / src.name
    ckpt.write_bytes(src.read_bytes())
    ckpt.with_suffix(".yaml").write_text(yaml.safe_dump(config))
    return ckpt


@pytest.mark.parametrize("section,key", [("model", "dims"), ("model", "num_dplayer"), ("audio", "chunk_size")])
def test_missing_yaml_key_is_named(tiny_models: dict[str, Path], tmp_path: Path, section: str, key: str) -> None:
    config = tiny_yaml()
    del config[section][key]
    ckpt = _copy_model(tiny_models["scnet"], tmp_path, config)
    with pytest.raises(ModelLoadError) as err:
        load(ckpt)
    message = str(err.value)
    assert f"{section}.{key}" in message and "\n" not in message


def test_wrong_shapes_name_the_tensor(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    config = tiny_yaml()
    config["model"]["dims"] = [4, 8, 24]
    ckpt = _copy_model(tiny_models["scnet"], tmp_path, config)
    with pytest.raises(ModelLoadError, match=r"tensor 'encoder\.1\.SDlayer\.convs\.0\.weight' has shape") as err:
        load(ckpt)
    assert "\n" not in str(err.value)


def test_wrong_types_and_counts_are_named(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    config = tiny_yaml()
    config["training"]["instruments"] = ["vocals", "other"]
    with pytest.raises(ModelLoadError, match="training.instruments"):
        load(_copy_model(tiny_models["scnet"], tmp_path / "a", config))
    config = tiny_yaml()
    config["model"]["band_SR"] = "low"
    with pytest.raises(ModelLoadError, match="model.band_SR"):
        load(_copy_model(tiny_models["scnet"], tmp_path / "b", config))


class _Evil:
    def __reduce__(self):
        return (print, ("ran code from a checkpoint",))


def test_checkpoint_with_code_is_refused(tiny_models: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    state = torch.load(tiny_models["scnet"], weights_only=True)
    state["payload"] = _Evil()
    ckpt = tmp_path / "evil.ckpt"
    torch.save(state, ckpt, pickle_module=pickle)
    ckpt.with_suffix(".yaml").write_text(yaml.safe_dump(tiny_yaml()))
    with pytest.raises(ModelLoadError, match="refused") as err:
        load(ckpt)
    assert "\n" not in str(err.value)
    assert "ran code" not in capsys.readouterr().out


def test_missing_yaml_and_bad_yaml(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    ckpt = tmp_path / "alone.ckpt"
    ckpt.write_bytes(tiny_models["scnet"].read_bytes())
    with pytest.raises(ModelDataError, match="alone.yaml"):
        load(ckpt)
    ckpt.with_suffix(".yaml").write_text("model: [unclosed\n")
    with pytest.raises(ModelDataError, match="cannot read the model yaml"):
        load(ckpt)


def test_msst_yaml_scalars(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("a: 1e-3\nb: !!python/tuple [1, 2]\nc: 7\nd: 2.5e+2\n")
    assert read_msst_yaml(p) == {"a": 0.001, "b": [1, 2], "c": 7, "d": 250.0}


# -- catalogue -----------------------------------------------------------------------------------------


def test_catalogue_records() -> None:
    records = model_records()
    names = {r.friendly_name for r in records}
    for wanted in ("Small (starrytong)", "Tran Small", "Masked Small", "Large", "XL", "XL IHF", "Masked XL IHF"):
        assert f"SCNet: SCNet {wanted}" in names
    datasets = set(catalogue_data()["datasets"])
    assert datasets == {"multisong", "musdb18hq_test"}
    for r in records:
        assert r.architecture == "SCNet" and r.package == "vsep-scnet" and r.license and r.provenance
        ckpt, config = r.files
        assert ckpt.name == r.filename and ckpt.url.startswith("https://github.com/ZFTurbo/")
        assert config.name == r.config and config.url.startswith(("https://", "file://"))
        assert r.stems == ["Drums", "Bass", "Other", "Vocals"]
        for stem in r.stems:
            for dataset in ("Multisong", "MUSDB18-HQ test"):
                assert isinstance(r.scores[f"{stem} ({dataset})"]["SDR"], float)
        assert len(r.scores) == 8
    xl_ihf = next(r for r in records if r.friendly_name == "SCNet: SCNet XL IHF")
    assert xl_ihf.scores["Bass (Multisong)"]["SDR"] == 11.94 and xl_ihf.scores["Drums (Multisong)"]["SDR"] == 11.58
    assert xl_ihf.scores["Drums (MUSDB18-HQ test)"]["SDR"] == 11.81


def test_packaged_configs_are_scnet_yamls_and_build(tmp_path: Path) -> None:
    packaged = [r for r in model_records() if packaged_config(r.config)]
    assert len(packaged) == 3
    for r in packaged:
        config = read_msst_yaml(packaged_config(r.config))
        cfg = scnet_config(config)
        assert list(cfg.sources) == [s.lower() for s in r.stems]
        ckpt = tmp_path / r.filename
        ckpt.write_bytes(b"")
        ckpt.with_suffix(".yaml").write_text(packaged_config(r.config).read_text())
        assert claims(ckpt)


def test_claim_rule_over_every_msst_config(tmp_path: Path) -> None:
    """Of all MSST's configs (../shared/msst-data), exactly the SCNet ones (not scnet_unofficial) are claimed."""
    configs = sorted((REFERENCE.parent / "msst-data" / "configs").rglob("*.yaml"))
    assert configs, "MSST configs not found in ../shared/msst-data (CI has them)"
    claimed = []
    for i, config in enumerate(configs):
        ckpt = tmp_path / f"m{i}.ckpt"
        ckpt.write_bytes(b"")
        ckpt.with_suffix(".yaml").write_text(config.read_text(encoding="utf-8"), encoding="utf-8")
        if claims(ckpt):
            claimed.append(config.name)
    expected = [c.name for c in configs if "scnet" in c.name and "unofficial" not in c.name]
    assert claimed == expected and len(expected) >= 5
