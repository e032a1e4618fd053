"""MSST-format HTDemucs (.ckpt state_dict + OmegaConf yaml): claim, load, demucs-mode demix, errors, parity."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from msst_htdemucs_testlib import MSST_REFERENCE, load_msst, msst_yaml_text, write_msst_model
from vsep_demucs.catalog import msst_records
from vsep_demucs.msst import MSSTHTDemucsModel, claims_checkpoint, read_msst_yaml
from vsep_demucs.plugin import _claims_msst

from vsep_core.chunking import DemixPlan, demix
from vsep_core.errors import ModelLoadError


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_msst_model(tmp_path_factory.mktemp("msst_ht"), "tiny_ht", msst_yaml_text(), seed=3)


def _signal(n: int, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.arange(n) / 8000
    return (0.3 * np.sin(2 * np.pi * 330 * t)[None] + 0.05 * rng.standard_normal((channels, n))).astype(np.float32)


def test_yaml_reads_omegaconf_floats(tiny: Path) -> None:
    config = read_msst_yaml(tiny.with_suffix(".yaml"))
    assert config["htdemucs"]["dconv_init"] == 0.001


def test_claims_only_htdemucs_yaml_checkpoints(tiny: Path, tmp_path: Path) -> None:
    assert claims_checkpoint(tiny) and _claims_msst(tiny)
    other = tmp_path / "scnet.ckpt"
    other.write_bytes(b"")
    other.with_suffix(".yaml").write_text("model:\n  dims: [4, 8]\n")
    assert not _claims_msst(other)
    assert not _claims_msst(tiny.with_suffix(".yaml"))


def test_separate_is_msst_demucs_mode(tiny: Path) -> None:
    model = load_msst(tiny)
    assert isinstance(model, MSSTHTDemucsModel)
    assert model.stems == ["Vocals", "Other"] and model.sample_rate == 8000
    x = _signal(8000 * 2 + 123)  # 1 s chunks, hop 0.5 s: several windows, a short zero-padded last one
    stems = model.separate(x)
    assert all(w.shape == x.shape and np.isfinite(w).all() for w in stems.values())
    # the same as running the network on core's plain demix by hand
    with torch.no_grad():
        expected = demix(x, lambda b: model.net(torch.from_numpy(b)).numpy(), DemixPlan.plain(8000, 2), 2)
    np.testing.assert_allclose(stems["Vocals"], expected[0], atol=1e-6)
    mono = model.separate(x[:1])
    assert mono["Other"].shape == (1, x.shape[1])
    assert load_msst(tiny, overlap=3, batch_size=1).plan == DemixPlan.plain(8000, 3)


def test_wrong_shapes_and_missing_keys_are_named(tiny: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "tiny_ht.ckpt").write_bytes(tiny.read_bytes())
    (wrong / "tiny_ht.yaml").write_text(msst_yaml_text().replace("channels: 4", "channels: 6"))
    with pytest.raises(ModelLoadError, match=r"tensor '[\w.]+' has shape .* in the checkpoint") as err:
        load_msst(wrong / "tiny_ht.ckpt")
    assert "\n" not in str(err.value)
    (wrong / "tiny_ht.yaml").write_text(msst_yaml_text().replace("  segment: 1.0\n", ""))
    with pytest.raises(ModelLoadError, match=r"training\.segment"):
        load_msst(wrong / "tiny_ht.ckpt")
    (wrong / "tiny_ht.yaml").write_text(msst_yaml_text().replace("num_subbands: 1", "num_subbands: 2"))
    with pytest.raises(ModelLoadError, match="num_subbands"):
        load_msst(wrong / "tiny_ht.ckpt")


class _Evil:
    def __reduce__(self):
        return (print, ("ran code",))


def test_checkpoint_with_code_is_refused(tiny: Path, tmp_path: Path) -> None:
    state = torch.load(tiny, weights_only=True)
    state["x"] = _Evil()
    torch.save(state, tmp_path / "evil.ckpt", pickle_module=pickle)
    (tmp_path / "evil.yaml").write_text(msst_yaml_text())
    with pytest.raises(ModelLoadError, match="refused"):
        load_msst(tmp_path / "evil.ckpt")


def test_catalogue_record() -> None:
    (record,) = msst_records()
    assert record.filename == "model_vocals_htdemucs_sdr_8.78.ckpt" and record.architecture == "HTDemucs-MSST"
    assert record.files[0].url.startswith("https://github.com/ZFTurbo/")
    assert record.files[1].url.startswith("file://") and record.config == "config_vocals_htdemucs.yaml"
    assert record.scores == {"Vocals (Multisong)": {"SDR": 8.78}}
    assert record.license and record.provenance.startswith("MSST htdemucs")


@pytest.mark.slow
def test_msst_oracle_parity() -> None:
    manifest = MSST_REFERENCE / "manifest.json"
    assert manifest.is_file(), f"MSST oracle not found at {MSST_REFERENCE} (CI has the oracles)"
    case = json.loads(manifest.read_text())["cases"]["htdemucs"]
    model = load_msst(MSST_REFERENCE / case["model_file_dir"] / case["checkpoint"]["file"])
    audio, _ = sf.read(MSST_REFERENCE / case["input"], dtype="float32", always_2d=True)
    stems = model.separate(audio.T)
    for st in case["stems"]:
        ref = np.load(MSST_REFERENCE / case["npy_dir"] / st["npy"])
        ours = stems[st["stem"].capitalize()]
        gain = float(np.sum(ours * ref) / np.sum(ref * ref))
        db = 10 * np.log10(np.sum((gain * ref) ** 2) / np.sum((ours - gain * ref) ** 2))
        assert ours.shape == ref.shape and db >= 50 and abs(gain - 1) < 1e-3


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_precision_runs_under_autocast(tiny: Path, precision: str) -> None:
    """--precision (LoadContext.precision) reaches the MSST path: close to fp32, not fp32's numbers."""
    import dataclasses

    from vsep_demucs.msst import load_msst_htdemucs
    from vsep_demucs.plugin import MSSTHTDemucsParams

    from vsep_core.testlib import checkpoint_context

    x = _signal(8000 + 321)
    fp32 = load_msst(tiny).separate(x)
    ctx = checkpoint_context(tiny, "HTDemucs-MSST", MSSTHTDemucsParams(), yaml_beside=False)
    model = load_msst_htdemucs(dataclasses.replace(ctx, precision=precision))
    assert model.precision == precision
    half = model.separate(x)
    for stem, wave in fp32.items():
        assert half[stem].dtype == np.float32 and half[stem].shape == wave.shape
        diff = np.sum((half[stem] - wave) ** 2)
        assert 0 < diff < 1e-3 * np.sum(wave**2)
