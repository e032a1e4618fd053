"""Ensemble algorithms against the reference oracle, their properties, weights, plugins, and multi-model runs."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import registered_plugin
from vsep_core import ensemble as E
from vsep_core.ensemble_run import canonical_stem, output_label
from vsep_core.errors import UsageError, VsepError
from vsep_core.hookspecs import hookimpl
from vsep_core.plugins import get_plugin_manager

ORACLE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "ensemble"
needs_oracle = pytest.mark.skipif(not (ORACLE / "manifest.json").exists(), reason="reference oracle not present")
EXACT = {"avg_wave", "avg_wave_weighted", "median_wave", "min_wave", "max_wave"}


def parity_db(ref: np.ndarray, est: np.ndarray) -> float:
    """10·log10(|ref|² / |ref - est|²), the check_reference.py measure."""
    ref = ref.astype(np.float64)
    err = np.sum((ref - est.astype(np.float64)) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(np.sum(ref**2) / err))


@pytest.fixture(scope="module")
def oracle():
    manifest = json.loads((ORACLE / "manifest.json").read_text())
    inputs = [np.load(ORACLE / spec["file"]) for spec in manifest["inputs"]]
    return manifest, inputs


def signal(rng: np.random.Generator, n: int, channels: int = 2) -> np.ndarray:
    return (0.3 * rng.standard_normal((channels, n))).astype(np.float32)


# --------------------------------------------------------------------------------------------- oracle


@needs_oracle
@pytest.mark.parametrize("run", ["avg_wave", "avg_wave_weighted", "median_wave", "min_wave", "max_wave", "avg_fft",
                                 "avg_fft_weighted", "median_fft", "min_fft", "max_fft"])
def test_matches_reference(oracle, run):
    manifest, inputs = oracle
    spec = manifest["runs"][run]
    ref = np.load(ORACLE / f"{run}.npy")
    out = E.ensemble(inputs, spec["algorithm"], spec["weights"])
    assert out.dtype == np.float32 and out.shape == tuple(spec["shape"])
    if run in EXACT:
        np.testing.assert_array_equal(out, ref)
    else:
        assert parity_db(ref, out) > 100


@needs_oracle
@pytest.mark.parametrize("run", ["uvr_max_spec", "uvr_min_spec"])
def test_uvr_spec_keeps_full_length(oracle, run):
    """Reference bug (section 8 item 4): its iSTFT has no length, so it drops N mod 1024 samples."""
    manifest, inputs = oracle
    longest = max(x.shape[1] for x in inputs)
    ref = np.load(ORACLE / f"{run}.npy")
    assert ref.shape[1] == 1024 * (longest // 1024) < longest
    out = E.ensemble(inputs, run)
    assert out.shape == (2, longest)
    assert parity_db(ref, out[:, : ref.shape[1]]) > 100
    # the samples the reference drops are those its *_fft twin keeps (silent for min: two inputs end earlier)
    twin = E.ensemble(inputs, run.replace("uvr_", "").replace("_spec", "_fft"))
    tail = out[:, ref.shape[1]:]
    np.testing.assert_allclose(tail, twin[:, ref.shape[1]:], atol=1e-6)
    assert (np.abs(tail).max() > 1e-3) == (run == "uvr_max_spec")


@needs_oracle
def test_ensemble_wav_selects_per_chunk_not_per_channel(oracle):
    """Reference bug (section 8 item 3): it splits the channel axis, so it picks whole channels."""
    manifest, inputs = oracle
    n = max(x.shape[1] for x in inputs)
    padded = np.stack([np.pad(x, ((0, 0), (0, n - x.shape[1]))) for x in inputs])
    ref = np.load(ORACLE / "ensemble_wav.npy")
    # what the reference really does: per channel, the whole channel of the quietest model
    per_channel = np.stack([padded[np.argmin(np.abs(padded[:, c]).mean(axis=1)), c] for c in range(2)])
    np.testing.assert_array_equal(ref, per_channel)
    # what it means to do, and vsep does: in each of 240 time chunks, the quietest model
    out = E.ensemble(inputs, "ensemble_wav")
    assert out.shape == (2, n)
    chosen = []
    for chunk in np.array_split(np.arange(n), 240):
        means = np.abs(padded[:, :, chunk]).mean(axis=(1, 2))
        best = int(np.argmin(means))
        np.testing.assert_array_equal(out[:, chunk], padded[best][:, chunk])
        chosen.append(best)
    assert len(set(chosen)) > 1  # the oracle's inputs really exercise the selection
    assert not np.array_equal(out, ref)


@needs_oracle
def test_block_size_does_not_change_results(oracle, monkeypatch):
    _, inputs = oracle
    whole = {name: E.ensemble(inputs, name) for name in ("avg_fft", "min_fft", "uvr_max_spec", "median_wave")}
    monkeypatch.setattr(E, "FRAME_BLOCK", 3)
    monkeypatch.setattr(E, "WAVE_BLOCK", 1001)
    for name, expected in whole.items():
        np.testing.assert_allclose(E.ensemble(inputs, name), expected, atol=1e-6, err_msg=name)


# --------------------------------------------------------------------------------------------- properties

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # only the property tests need it (requirements-dev.txt installs it)
    class _NoStrategies:
        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    def given(**kwargs):
        return pytest.mark.skip(reason="hypothesis is not installed")

    def settings(**kwargs):
        return lambda f: f

    st = _NoStrategies()

fast = settings(max_examples=25, deadline=None)


@fast
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 5000), copies=st.integers(2, 4),
       channels=st.integers(1, 2), algorithm=st.sampled_from(E.VALID_ENSEMBLE_ALGORITHMS))
def test_copies_of_one_signal_give_the_signal(seed, n, copies, channels, algorithm):
    x = signal(np.random.default_rng(seed), n, channels)
    out = E.ensemble([x] * copies, algorithm)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, x, atol=1e-5)


@fast
@given(seed=st.integers(0, 2**32 - 1), lengths=st.lists(st.integers(1, 4000), min_size=2, max_size=4),
       algorithm=st.sampled_from(E.VALID_ENSEMBLE_ALGORITHMS))
def test_result_has_the_longest_length(seed, lengths, algorithm):
    rng = np.random.default_rng(seed)
    waves = [signal(rng, n) for n in lengths]
    out = E.ensemble(waves, algorithm)
    assert out.shape == (2, max(lengths)) and out.dtype == np.float32
    assert np.all(np.isfinite(out))


@fast
@given(seed=st.integers(0, 2**32 - 1), weights=st.lists(st.floats(0.1, 10), min_size=3, max_size=3))
def test_avg_wave_is_the_weighted_mean(seed, weights):
    rng = np.random.default_rng(seed)
    waves = [signal(rng, 300), signal(rng, 200), signal(rng, 100)]
    padded = np.stack([np.pad(w, ((0, 0), (0, 300 - w.shape[1]))) for w in waves]).astype(np.float64)
    expected = np.tensordot(np.array(weights), padded, axes=1) / sum(weights)
    np.testing.assert_allclose(E.ensemble(waves, "avg_wave", weights), expected, rtol=1e-5, atol=1e-6)


@fast
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(2, 4))
def test_min_and_max_wave_pick_by_absolute_value(seed, count):
    rng = np.random.default_rng(seed)
    waves = [signal(rng, 500) for _ in range(count)]
    stack = np.stack(waves)
    lo, hi = E.ensemble(waves, "min_wave"), E.ensemble(waves, "max_wave")
    np.testing.assert_array_equal(np.abs(lo), np.abs(stack).min(axis=0))
    np.testing.assert_array_equal(np.abs(hi), np.abs(stack).max(axis=0))
    assert np.all(np.any(stack == lo, axis=0)) and np.all(np.any(stack == hi, axis=0))  # signs kept
    assert (lo < 0).any() and (hi < 0).any()


@fast
@given(bad=st.sampled_from([[1.0], [1.0, 2.0, 3.0], [1.0, float("nan")], [1.0, float("inf")], [1.0, -1.0],
                            [0.0, 0.0]]))
def test_bad_weights_fall_back_to_equal_with_a_warning(bad):
    a, b = np.ones((2, 10), np.float32), 3 * np.ones((2, 10), np.float32)
    logger = logging.getLogger("vsep.ensemble")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        out = E.ensemble([a, b], "avg_wave", bad)
    finally:
        logger.removeHandler(handler)
    np.testing.assert_allclose(out, 2.0)
    assert any(r.levelno == logging.WARNING and "equal weights" in r.getMessage() for r in records)


# --------------------------------------------------------------------------------------------- weights, errors


def test_weights_apply_to_avg_fft():
    rng = np.random.default_rng(1)
    a, b = signal(rng, 8000), signal(rng, 8000)
    out = E.ensemble([a, b], "avg_fft", [3, 1])
    np.testing.assert_allclose(out, (3 * a + b) / 4, atol=1e-5)


def test_weights_for_other_algorithms_are_ignored_with_a_warning(caplog):
    rng = np.random.default_rng(2)
    waves = [signal(rng, 1000) for _ in range(3)]
    with caplog.at_level(logging.WARNING, logger="vsep.ensemble"):
        out = E.ensemble(waves, "median_wave", [5, 1, 1])
    np.testing.assert_array_equal(out, np.median(np.stack(waves), axis=0))
    assert "does not use weights" in caplog.text and "median_wave" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vsep.ensemble"):
        E.ensemble(waves, "median_wave", [2, 2, 2])
    assert caplog.text == ""


def test_resolve_weights():
    assert E.resolve_weights(None, 3) is None
    np.testing.assert_array_equal(E.resolve_weights([1, 2], 2), [1.0, 2.0])
    assert E.resolve_weights(["x", 1], 2) is None


def test_errors_name_the_problem():
    a = np.zeros((2, 10), np.float32)
    with pytest.raises(UsageError, match="avg_wave"):
        E.ensemble([a, a], "avg_wav")
    with pytest.raises(UsageError, match="no waveforms"):
        E.ensemble([], "avg_wave")
    with pytest.raises(VsepError, match="channel"):
        E.ensemble([a, np.zeros((1, 10), np.float32)], "avg_wave")


def test_one_wave_is_returned_unchanged():
    x = signal(np.random.default_rng(3), 77)
    np.testing.assert_array_equal(E.ensemble([x], "max_fft"), x)


def test_silent_and_tiny_inputs():
    z = np.zeros((2, 5), np.float32)
    for name in E.VALID_ENSEMBLE_ALGORITHMS:
        out = E.ensemble([z, np.zeros((2, 3), np.float32)], name)
        assert out.shape == (2, 5) and not out.any(), name


# --------------------------------------------------------------------------------------------- plugins


def test_builtin_hook_gives_the_reference_algorithms():
    from vsep_core.separator import Separator

    assert tuple(E.vsep_ensemble_algorithms()) == E.VALID_ENSEMBLE_ALGORITHMS == Separator.VALID_ENSEMBLE_ALGORITHMS
    assert E.DEFAULT_ALGORITHM == "avg_wave"
    assert {n for n, a in E.BUILTIN_ALGORITHMS.items() if a.uses_weights} == {"avg_wave", "avg_fft"}


class _AlgoPlugin:
    seen: list = []

    @hookimpl
    def vsep_ensemble_algorithms(self):
        def first_only(waves, weights):
            _AlgoPlugin.seen.append(weights)
            n = max(w.shape[-1] for w in waves)
            return np.pad(waves[0], ((0, 0), (0, n - waves[0].shape[-1])))

        return {"first_only": first_only, "too_short": lambda waves, weights: waves[0][:, :1]}


@pytest.fixture
def algo_plugin():
    with registered_plugin(_AlgoPlugin(), "test-algorithms") as plugin:
        yield plugin


def test_plugin_algorithms_are_used_and_get_weights(algo_plugin):
    assert "first_only" in E.algorithms() and "avg_wave" in E.algorithms()
    a, b = np.ones((2, 4), np.float32), np.zeros((2, 6), np.float32)
    out = E.ensemble([a, b], "first_only", [1, 3])
    assert out.shape == (2, 6) and out[:, :4].all() and not out[:, 4:].any()
    np.testing.assert_array_equal(_AlgoPlugin.seen[-1], [1.0, 3.0])
    with pytest.raises(VsepError, match="too_short.*longest"):
        E.ensemble([a, b], "too_short")


def test_a_clashing_algorithm_name_is_an_error():
    class Clash:
        @hookimpl
        def vsep_ensemble_algorithms(self):
            return {"avg_wave": lambda waves, weights: waves[0]}

    with registered_plugin(Clash(), "test-clash"), \
            pytest.raises(VsepError, match="two plugins add the ensemble algorithm 'avg_wave'"):
        E.algorithms()


# --------------------------------------------------------------------------------------------- stem names


@pytest.mark.parametrize(("stem", "stems", "expected"), [
    ("vocals", ["vocals", "other"], "Vocals"),
    ("other", ["vocals", "other"], "Instrumental"),
    ("other", ["drums", "bass", "other", "vocals"], "Other"),
    ("no_vocals", None, "Instrumental"),
    ("No Vocals", None, "Instrumental"),
    ("Instrumental", None, "Instrumental"),
    ("karaoke", None, "Instrumental"),
    ("Lead Vocals", None, "Lead Vocals"),
    ("backing vocals", None, "Backing Vocals"),
    ("Vocals_dereverb", None, "Vocals"),
    ("Drum-Bass", None, "Drum-Bass"),
    ("No Woodwinds", None, "No Woodwinds"),
    ("wind inst", None, "Wind Inst"),
])
def test_canonical_stem(stem, stems, expected):
    assert canonical_stem(stem, stems) == expected


def test_output_label():
    assert output_label("karaoke") == "preset_karaoke"
    assert output_label(None, ["vocal_split.gain", "lead.flip"]) == "custom_ensemble_vocal_split_lead"


# --------------------------------------------------------------------------------------------- multi-model runs


class _FlipModel:
    """A second architecture: stems are -gain · input (so max_wave/min_wave must keep signs)."""

    sample_rate = 44100

    def __init__(self, gains: dict[str, float]):
        self.gains = gains
        self.stems = list(gains)

    def separate(self, audio, progress=None):
        return {k: -np.float32(g) * audio for k, g in self.gains.items()}


class _FlipPlugin:
    loads: list[str] = []

    @hookimpl
    def vsep_architectures(self):
        from dataclasses import dataclass

        from vsep_core.api import Architecture

        @dataclass
        class FlipParams:
            pass

        def load(ctx):
            data = json.loads(ctx.model_path.read_text())
            _FlipPlugin.loads.append(ctx.model_path.name)
            if "boom" in data:
                raise RuntimeError("this flip model is broken")
            return _FlipModel(data["stems"])

        return [Architecture(name="Flip", flag_prefix="flip", params=FlipParams, load=load, package="vsep-flip",
                             extensions=(".flip",), claims=lambda p: Path(p).suffix == ".flip")]

    @hookimpl
    def vsep_presets(self):
        return [{"id": "test_duo", "name": "Test duo", "description": "a gain and a flip model",
                 "models": ["vocal_split.gain", "lead.flip"], "algorithm": "max_wave"}]


@pytest.fixture
def flip_plugin(gain_model_dir):
    pm = get_plugin_manager()
    plugin = _FlipPlugin()
    pm.register(plugin, name="test-flip")
    (gain_model_dir / "lead.flip").write_text(json.dumps({"stems": {"other": 0.3, "vocals": 0.5}}))
    (gain_model_dir / "broken.flip").write_text(json.dumps({"boom": 1}))
    yield gain_model_dir
    pm.unregister(plugin)


def _separator(model_dir: Path, out: Path, **kw):
    from vsep_core.separator import Separator

    return Separator(model_file_dir=model_dir, output_dir=out, output_format="WAV", output_bit_depth=32,
                     offline=True, device="cpu", **kw)


def _read(path) -> np.ndarray:
    return sf.read(str(path), dtype="float32", always_2d=True)[0].T


@pytest.mark.parametrize("algorithm", ["max_wave", "avg_fft"])
def test_two_architectures_ensemble_equals_the_algorithm_on_single_outputs(flip_plugin, audio_file, tmp_path,
                                                                          algorithm):
    song = audio_file("song.wav", seconds=1.0, amplitude=0.5)
    singles = []
    for model in ("vocal_split.gain", "lead.flip"):
        sep = _separator(flip_plugin, tmp_path / "single")
        sep.load_model(model)
        singles.append({Path(p).name.split("_(")[1].split(")")[0]: _read(p) for p in sep.separate(str(song))})
    assert set(singles[0]) == {"Vocals", "Instrumental"} and set(singles[1]) == {"vocals", "other"}

    sep = _separator(flip_plugin, tmp_path / "ens", ensemble_algorithm=algorithm)
    sep.load_model(["vocal_split.gain", "lead.flip"])
    outputs = sep.separate(str(song))
    assert [Path(p).name for p in outputs] == ["song_(Vocals)_custom_ensemble_vocal_split_lead.wav",
                                                 "song_(Instrumental)_custom_ensemble_vocal_split_lead.wav"]
    vocals = _read(outputs[0])
    inst = _read(outputs[1])
    assert vocals.shape == inst.shape == _read(song).shape
    expected_vocals = E.ensemble([singles[0]["Vocals"], singles[1]["vocals"]], algorithm)
    expected_inst = E.ensemble([singles[0]["Instrumental"], singles[1]["other"]], algorithm)
    np.testing.assert_allclose(vocals, expected_vocals, atol=1e-5)
    np.testing.assert_allclose(inst, expected_inst, atol=1e-5)
    if algorithm == "max_wave":  # the flip model's vocals (-0.5x) beat the gain model's (0.25x)
        np.testing.assert_allclose(vocals, -0.5 * _read(song), atol=1e-5)


def test_preset_from_a_plugin_names_outputs_and_weights_override(flip_plugin, audio_file, tmp_path, caplog):
    song = audio_file("tune.wav", seconds=0.5, amplitude=0.5)
    sep = _separator(flip_plugin, tmp_path / "out", ensemble_preset="test_duo")
    sep.load_model()
    assert sep.model_filenames == ["vocal_split.gain", "lead.flip"]
    outputs = sep.separate(str(song), custom_output_names={"instrumental": "backing"})
    assert [Path(p).name for p in outputs] == ["tune_(Vocals)_preset_test_duo.wav", "backing.wav"]
    np.testing.assert_allclose(_read(outputs[0]), -0.5 * _read(song), atol=1e-5)

    sep = _separator(flip_plugin, tmp_path / "out2", ensemble_preset="test_duo", ensemble_algorithm="avg_wave",
                     ensemble_weights=[3, 1])
    sep.load_model()
    vocals = _read(sep.separate(str(song))[0])
    np.testing.assert_allclose(vocals, (3 * 0.25 - 0.5) / 4 * _read(song), atol=1e-5)


def test_single_stem_and_temporary_files(flip_plugin, audio_file, tmp_path, monkeypatch, caplog):
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    song = audio_file("a.wav", seconds=0.3)
    sep = _separator(flip_plugin, tmp_path / "out", output_single_stem="instrumental")
    sep.load_model(["vocal_split.gain", "lead.flip"])
    outputs = sep.separate(str(song))
    assert [Path(p).name for p in outputs] == ["a_(Instrumental)_custom_ensemble_vocal_split_lead.wav"]
    assert list(scratch.iterdir()) == []  # the memory-mapped intermediates are gone
    sep = _separator(flip_plugin, tmp_path / "out", output_single_stem="Drums")
    sep.load_model(["vocal_split.gain", "lead.flip"])
    with caplog.at_level(logging.WARNING, logger="vsep"):
        assert sep.separate(str(song)) == []  # as the reference: nothing written, a warning
    assert re.search("Drums.*Vocals, Instrumental", caplog.text)


def test_a_failing_model_fails_the_run_with_its_name(flip_plugin, audio_file, tmp_path):
    song = audio_file("b.wav", seconds=0.3)
    sep = _separator(flip_plugin, tmp_path / "out")
    sep.load_model(["vocal_split.gain", "broken.flip"])
    with pytest.raises(VsepError, match=r"broken\.flip \(2 of 2\).*broken"):
        sep.separate(str(song))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_an_ensemble_over_many_files_loads_each_model_once(flip_plugin, audio_file, tmp_path):
    songs = [str(audio_file(f"s{i}.wav", seconds=0.2)) for i in range(4)]
    _FlipPlugin.loads.clear()
    sep = _separator(flip_plugin, tmp_path / "out")
    sep.load_model(["vocal_split.gain", "lead.flip"])
    outputs = sep.separate(songs)
    assert len(outputs) == 4 * 2
    assert _FlipPlugin.loads == ["lead.flip"]
    assert sep._loader.loads == 2  # 2 models, 4 files: each built once


def test_progress_says_model_i_of_n(flip_plugin, audio_file, tmp_path, caplog):
    song = audio_file("c.wav", seconds=0.3)
    sep = _separator(flip_plugin, tmp_path / "out")
    labels: list[str] = []
    sep.progress_factory = lambda label: labels.append(label) or None
    sep.load_model(["vocal_split.gain", "lead.flip"])
    with caplog.at_level(logging.INFO, logger="vsep"):
        sep.separate([str(song), str(song)])
    assert "c.wav · model 1 of 2 · vocal_split.gain" in labels
    assert "c.wav · model 2 of 2 · lead.flip" in labels
    # every model stays loaded: the second input runs them in the same order
    assert labels[2:] == labels[:2]
    assert "model 2 of 2" in caplog.text
    # the same output order for both inputs, whatever model ran first
    outputs = sep.separate([str(song)])
    assert [Path(p).name for p in outputs] == ["c_(Vocals)_custom_ensemble_vocal_split_lead.wav",
                                                 "c_(Instrumental)_custom_ensemble_vocal_split_lead.wav"]


def test_cli_extra_models_algorithm_and_weights(gain_model_dir, audio_file, tmp_path):
    from vsep_core.cli import main

    (gain_model_dir / "loud_split.gain").write_text(json.dumps({"stems": {"vocals": 0.5, "no_vocals": 0.1}}))
    song = audio_file("cli.wav", seconds=0.3, amplitude=0.5)
    out = tmp_path / "cli-out"
    code = main(["separate", str(song), "-m", "vocal_split.gain", "--extra_models", "loud_split.gain",
                 "--ensemble_weights", "1", "3", "--ensemble_algorithm", "avg_wave", "--model_file_dir",
                 str(gain_model_dir), "--output_dir", str(out), "--output_format", "WAV", "--output_bit_depth",
                 "32", "--offline"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["cli_(Instrumental)_custom_ensemble_vocal_split_loud_split.wav",
                                                   "cli_(Vocals)_custom_ensemble_vocal_split_loud_split.wav"]
    mix = _read(song)
    label = "custom_ensemble_vocal_split_loud_split"
    np.testing.assert_allclose(_read(out / f"cli_(Vocals)_{label}.wav"), (0.25 + 3 * 0.5) / 4 * mix, atol=1e-5)
    np.testing.assert_allclose(_read(out / f"cli_(Instrumental)_{label}.wav"), (0.75 + 3 * 0.1) / 4 * mix, atol=1e-5)


# --------------------------------------------------------------------------------------------- oracle models

REFERENCE_MODELS = ORACLE.parent / "models"
ORACLE_PAIR = ["UVR-MDX-NET-Inst_HQ_3.onnx", "model_bs_roformer_ep_317_sdr_12.9755.ckpt"]  # MDX + MDXC


class _OraclePresetPlugin:
    @hookimpl
    def vsep_presets(self):
        return [{"id": "oracle_pair", "name": "Oracle pair", "description": "MDX-Net and BS-Roformer oracle models",
                 "models": ORACLE_PAIR, "algorithm": "avg_fft", "weights": [1, 3]}]


@pytest.mark.slow
@pytest.mark.skipif(not REFERENCE_MODELS.is_dir(), reason="reference oracle models not present")
def test_oracle_models_of_two_architectures_with_a_plugin_preset(tmp_path):
    from vsep_core import plugins

    if not {"MDX", "MDXC"} <= set(plugins.architectures()):
        pytest.skip("needs the vsep-mdx and vsep-mdxc plugins")
    clip, rate = sf.read(str(ORACLE.parent / "input" / "mardy20s_6s_16bit.flac"), dtype="float32", frames=66150)
    clip *= 0.5  # quiet enough that no single model's stem is peak-normalised by the writer (vsep normalises
    #              only the ensembled stem, so the single files equal the stems that are ensembled)
    song = tmp_path / "clip.wav"
    sf.write(str(song), clip, rate, subtype="PCM_16")
    opts = {"normalization_threshold": 1.0}
    singles = []
    for model in ORACLE_PAIR:
        sep = _separator(REFERENCE_MODELS, tmp_path / "single", **opts)
        sep.load_model(model)
        singles.append({Path(p).name.split("_(")[1].split(")")[0]: _read(p) for p in sep.separate(str(song))})
        assert all(np.abs(w).max() < 1.0 for w in singles[-1].values())

    pm = get_plugin_manager()
    plugin = _OraclePresetPlugin()
    pm.register(plugin, name="test-oracle-preset")
    try:
        sep = _separator(REFERENCE_MODELS, tmp_path / "ens", ensemble_preset="oracle_pair", **opts)
        sep.load_model()
        outputs = sep.separate(str(song))
    finally:
        pm.unregister(plugin)
    names = sorted(Path(p).name for p in outputs)
    assert names == ["clip_(Instrumental)_preset_oracle_pair.wav", "clip_(Vocals)_preset_oracle_pair.wav"]
    for path in outputs:
        stem = Path(path).name.split("_(")[1].split(")")[0]
        got = _read(path)
        assert got.shape == (2, clip.shape[0])
        expected = E.ensemble([singles[0][stem], singles[1][stem]], "avg_fft", [1, 3])
        assert np.abs(expected).max() < 1.0  # so the writer applied no gain
        assert parity_db(expected, got) > 100, stem
