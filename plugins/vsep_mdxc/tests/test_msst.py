"""MSST-style inference and the RoFormer variants chosen from the yaml and the checkpoint (tiny models)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mdxc_testlib import TINY_BS, TINY_MDX23C, TINY_MEL, make_ctx, tones, write_model
from vsep_mdxc.config import detect_kind
from vsep_mdxc.model import MDXCModel, _build_roformer_from, load_model

from vsep_core.chunking import DemixPlan, demix, standardize
from vsep_core.errors import ModelLoadError, UsageError


def _config(base: dict[str, Any], **model: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(base)
    cfg["model"]["depth"] = 2
    cfg["model"].update(model)
    cfg["audio"]["chunk_size"] = 6000
    return cfg


def _state(cfg: dict[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of the network the loader builds for `cfg` (constant-initialised tensors perturbed)."""
    torch.manual_seed(seed)
    build, _ = _build_roformer_from(cfg, detect_kind(cfg, []), {}, None)
    net = build()
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim <= 1 or p.dim() == 2 and p.shape[0] <= 8:  # gains, biases, hyper-connection weights
                p.add_(0.1 * torch.randn_like(p))
    return net.state_dict()


def _save(tmp: Path, cfg: dict[str, Any], name: str, state: dict[str, torch.Tensor] | None = None) -> tuple[Path, Path]:
    return write_model(tmp, cfg, name, state=state if state is not None else _state(cfg))


def _separate(ckpt: Path, yml: Path, audio: np.ndarray, **params: Any) -> dict[str, np.ndarray]:
    params.setdefault("inference", "msst")
    return load_model(make_ctx(ckpt, yml, **params)).separate(audio)


# -- every variant key matters -----------------------------------------------------------------

FLIPS = [
    # (network, key, value in the checkpoint's yaml, flipped value)
    ("bs", "use_pope", True, False),
    ("mel", "use_pope", True, False),
    ("bs", "skip_connection", True, False),
    ("mel", "skip_connection", True, False),
    ("bs", "linear_transformer_depth", 1, 0),
    ("bs", "mlp_expansion_factor", 2, 1),
    ("mel", "mlp_expansion_factor", 2, 1),
    ("bs", "num_residual_streams", 2, 1),
    ("mel", "num_residual_streams", 2, 1),
    ("bs", "use_value_residual_learning", True, False),
    ("bs", "zero_dc", True, False),
    ("mel", "zero_dc", True, False),
    ("bs", "stereo", False, True),
    ("mel", "mask_estimator_depth", 2, 1),
    ("bs", "time_transformer_depth", 2, 1),
    ("mel", "num_bands", 8, 6),
]


@pytest.mark.parametrize(("network", "key", "value", "flipped"), FLIPS)
def test_flipping_a_variant_key_changes_the_network(tmp_path: Path, network: str, key: str, value: Any,
                                                    flipped: Any) -> None:
    """With the same checkpoint, the yaml key flipped either no longer matches the checkpoint's tensors
    (the key shapes the network) or gives other stems (it changes what the network does)."""
    base = TINY_BS if network == "bs" else TINY_MEL
    cfg = _config(base, **{key: value})
    ckpt, yml = _save(tmp_path, cfg, "model")
    channels = 2 if cfg["model"].get("stereo", True) else 1
    audio = tones(0.3, channels=channels)
    ours = _separate(ckpt, yml, audio)["Vocals"]
    assert ours.shape == audio.shape and np.isfinite(ours).all()
    flipped_yml = tmp_path / "flipped.yaml"
    write_model(tmp_path, _config(base, **{key: flipped}), "flipped", state={})  # the yaml only
    try:
        other = _separate(ckpt, flipped_yml, audio)["Vocals"]
    except ModelLoadError as exc:
        assert "tensor" in str(exc)
        return
    assert not np.allclose(ours, other, atol=1e-6), f"{key} had no effect"


def test_experimental_variant_is_chosen_from_the_checkpoint_or_the_model_type(tmp_path: Path) -> None:
    """Hyper-connection tensors select MSST's experimental network without any yaml key; an explicit
    model type selects it too (its layers after the first add no residual of their own), and an
    explicit non-experimental type with experimental keys is refused."""
    cfg = _config(TINY_BS, num_residual_streams=2)
    state = _state(cfg)
    plain = _config(TINY_BS)
    ckpt, yml = _save(tmp_path, plain, "hc", state=state)  # yaml without the key
    audio = tones(0.3)
    from_tensors = _separate(ckpt, yml, audio)["Vocals"]
    ckpt2, yml2 = _save(tmp_path, cfg, "hc2", state=state)
    assert np.array_equal(from_tensors, _separate(ckpt2, yml2, audio)["Vocals"])

    ckpt3, yml3 = _save(tmp_path, plain, "std", state=_state(plain))
    standard = _separate(ckpt3, yml3, audio)["Vocals"]
    experimental = _separate(ckpt3, yml3, audio, model_type="bs_roformer_experimental")["Vocals"]
    assert not np.allclose(standard, experimental, atol=1e-6)
    with pytest.raises(ModelLoadError, match="num_residual_streams belong to MSST's bs_roformer_experimental"):
        _separate(ckpt2, yml2, audio, model_type="bs_roformer")


def test_an_unknown_model_key_is_an_error_naming_it(tmp_path: Path) -> None:
    cfg = _config(TINY_MEL, fno_mask_head=True)
    ckpt, yml = write_model(tmp_path, cfg, "unknown", state=_state(_config(TINY_MEL)))
    with pytest.raises(ModelLoadError, match="unknown model key.*'fno_mask_head'"):
        _separate(ckpt, yml, tones(0.1))


def test_model_type_must_be_one_msst_name(tmp_path: Path) -> None:
    ckpt, yml = _save(tmp_path, _config(TINY_BS), "m")
    cfg = _config(TINY_BS)
    cfg["training"]["model_type"] = "scnet"
    write_model(tmp_path, cfg, "typed", state={})
    with pytest.raises(UsageError, match="'scnet' is not one vsep-mdxc runs"):
        _separate(ckpt, tmp_path / "typed.yaml", tones(0.1))


# -- the msst inference style ---------------------------------------------------------------------


def test_msst_style_is_core_demix_over_the_network(tmp_path: Path) -> None:
    """msst = core's demix with the yaml's chunk/overlap/batch over the bare network: no peak
    normalisation, MSST's stems (the target only)."""
    cfg = _config(TINY_BS)
    cfg["inference"].update(num_overlap=3, batch_size=2)
    ckpt, yml = _save(tmp_path, cfg, "m")
    audio = tones(0.5, peak=1.5)  # above the 0.9 normalisation threshold: MSST does not touch it
    model = load_model(make_ctx(ckpt, yml, inference="msst"))
    out = model.separate(audio)
    assert list(out) == model.stems == ["Vocals"]

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.net(torch.from_numpy(batch)).numpy()

    expected = demix(audio, run, DemixPlan.generic(6000, 3), batch_size=2)
    np.testing.assert_allclose(out["Vocals"], expected, atol=1e-6)


def test_msst_normalize_standardises_and_restores(tmp_path: Path) -> None:
    """inference.normalize: the network sees the mix standardised by its mono downmix's mean and std, and
    the stems get both back, so the stems of 3 * mix + 0.2 are 3 * stems + 0.2; without it they are not."""
    cfg = _config(TINY_MEL)
    ckpt, yml = _save(tmp_path, cfg, "plain")
    cfg["inference"]["normalize"] = True
    ckpt_n, yml_n = _save(tmp_path, cfg, "norm", state=torch.load(ckpt, weights_only=True))
    audio = tones(0.3, peak=0.3)
    moved = 3 * audio + np.float32(0.2)
    a, b = _separate(ckpt_n, yml_n, audio)["Vocals"], _separate(ckpt_n, yml_n, moved)["Vocals"]
    np.testing.assert_allclose(b, 3 * a + 0.2, rtol=1e-4, atol=1e-4)
    plain_a, plain_b = _separate(ckpt, yml, audio)["Vocals"], _separate(ckpt, yml, moved)["Vocals"]
    assert not np.allclose(plain_b, 3 * plain_a + 0.2, rtol=1e-3, atol=1e-3)
    work, mean, std = standardize(audio + np.float32(0.1))
    assert abs(float(work.mean())) < 1e-5 and abs(mean - 0.1) < 1e-3 and std != 1


def test_default_style_follows_audio_separators_model_list(tmp_path: Path) -> None:
    """A file of audio-separator's list runs as audio-separator does (residual stem, Hamming
    windows); any other file as its MSST authors do (the target only)."""
    cfg = _config(TINY_BS)
    state = _state(cfg)
    listed = _save(tmp_path, cfg, "model_bs_roformer_ep_317_sdr_12.9755", state=state)
    other = _save(tmp_path, cfg, "my_finetune", state=state)
    as_listed = load_model(make_ctx(*listed, inference=None))
    as_other = load_model(make_ctx(*other, inference=None))
    assert as_listed.settings.inference == "audio_separator" and as_listed.stems == ["Instrumental", "Vocals"]
    assert as_other.settings.inference == "msst" and as_other.stems == ["Vocals"]
    audio = tones(0.4)
    assert not np.allclose(as_listed.separate(audio)["Vocals"], as_other.separate(audio)["Vocals"], atol=1e-5)


@pytest.mark.parametrize("network", ["bs", "mel"])
def test_six_stem_model_gives_every_stem(tmp_path: Path, network: str) -> None:
    stems = ["bass", "drums", "other", "vocals", "guitar", "piano"]
    cfg = _config(TINY_BS if network == "bs" else TINY_MEL, num_stems=6)
    cfg["training"] = {"instruments": stems, "target_instrument": None}
    ckpt, yml = _save(tmp_path, cfg, "sw")
    audio = tones(0.2)
    for style in ("msst", "audio_separator"):
        out = _separate(ckpt, yml, audio, inference=style)
        assert list(out) == stems
        assert all(v.shape == audio.shape for v in out.values())
        assert not np.allclose(out["bass"], out["piano"])


def test_mono_model_mono_in_mono_out_and_stereo_one_channel_at_a_time(tmp_path: Path) -> None:
    cfg = _config(TINY_MEL, stereo=False)
    cfg["audio"]["num_channels"] = 1
    ckpt, yml = _save(tmp_path, cfg, "mono")
    model = load_model(make_ctx(ckpt, yml, inference="msst"))
    assert isinstance(model, MDXCModel) and model.channels == 1
    stereo = tones(0.3)
    left = model.separate(stereo[:1])["Vocals"]
    assert left.shape == (1, stereo.shape[1])
    both = model.separate(stereo)["Vocals"]
    assert both.shape == stereo.shape
    np.testing.assert_allclose(both[:1], left, atol=1e-6)
    np.testing.assert_allclose(both[1:], model.separate(stereo[1:])["Vocals"], atol=1e-6)


def test_msst_chunk_size_param_and_yaml_order(tmp_path: Path) -> None:
    """chunk: --mdxc_chunk_size, else inference.chunk_size, else audio.chunk_size."""
    cfg = _config(TINY_BS)
    ckpt, yml = _save(tmp_path, cfg, "a")
    assert load_model(make_ctx(ckpt, yml, inference="msst")).settings.chunk_size == 6000
    cfg["inference"]["chunk_size"] = 4000
    ckpt2, yml2 = _save(tmp_path, cfg, "b", state=torch.load(ckpt, weights_only=True))
    assert load_model(make_ctx(ckpt2, yml2, inference="msst")).settings.chunk_size == 4000
    assert load_model(make_ctx(ckpt2, yml2, inference="msst", chunk_size=3000)).settings.chunk_size == 3000
    audio = tones(0.3)
    assert not np.allclose(_separate(ckpt, yml, audio)["Vocals"], _separate(ckpt2, yml2, audio)["Vocals"])


def test_mdx23c_runs_in_the_msst_style(tmp_path: Path) -> None:
    ckpt, yml = write_model(tmp_path, TINY_MDX23C, "mdx", seed=1)
    audio = tones(0.2)
    out = _separate(ckpt, yml, audio)
    assert list(out) == ["Vocals", "Instrumental"]
    assert all(v.shape == audio.shape and np.isfinite(v).all() for v in out.values())


def test_msst_catalogue_records() -> None:
    """MSST's RoFormers: new records with their authors' URLs, scores that keep their dataset, licence and
    provenance; the packaged configs build without an unknown key; records of files audio-separator lists
    keep its download sources and gain MSST's scores beside the measured medians."""
    from vsep_mdxc.catalog import model_records, packaged_config
    from vsep_mdxc.config import load_yaml

    records = {r.filename: r for r in model_records()}
    kj = records["MelBandRoformer.ckpt"]
    assert kj.files[0].url.startswith("https://huggingface.co/KimberleyJSN/")
    assert kj.scores["vocals (Multisong)"] == {"SDR": 10.98}
    assert kj.license == "unknown" and "Kimberley Jensen" in kj.provenance
    musdb = records["model_bs_roformer_ep_17_sdr_9.6568.ckpt"]
    assert musdb.scores["Vocals (MUSDB18-HQ test)"] == {"SDR": 11.08}
    assert musdb.scores["Vocals (Multisong)"] == {"SDR": 9.19}
    ep317 = records["model_bs_roformer_ep_317_sdr_12.9755.ckpt"]
    assert ep317.scores["vocals (Multisong)"] == {"SDR": 10.87} and "SDR" in ep317.scores["vocals"]  # MUSDB medians
    assert ep317.provenance and "viperx" in ep317.provenance
    for record in (kj, musdb):
        config = load_yaml(packaged_config(record.config))
        with torch.device("meta"):
            build, rcfg = _build_roformer_from(config, detect_kind(config, [record.filename]), {}, None)
            build()
        assert rcfg.dim >= 384
