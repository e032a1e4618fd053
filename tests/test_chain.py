"""Chains (vsep_core.chain, chain_run, stemcache, cli/chain): validation, stem operations, the cache, the CLI.

Fast tests use the vsep-gain test plugin (a model returns its input times a gain per stem, so every
expected result is computed from the input); the parity test runs the oracle's tiny MDX and Demucs models.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REFERENCE, run_vsep
from vsep_core.chain import ChainError, chain_presets, load_chain, parse_chain
from vsep_core.chain_run import ChainRunner
from vsep_core.options import Settings
from vsep_core.stemcache import StemCache

FORK = {"name": "fork", "steps": {
    "split": {"model": "vocal_split.gain"},
    "trio": {"model": "local_trio.gain", "input": "split.Instrumental", "params": {"gain_scale": 1.0}},
    "rest": {"subtract": ["split.Instrumental", "trio.Drums"]}},
    "outputs": {"vocals": "split.Vocals", "drums": "trio.Drums", "no_drums": "rest"}}


def _runner(model_dir: Path, cache: StemCache | None, **options) -> ChainRunner:
    options = {"output_format": "WAV", "output_bit_depth": 32, **options}
    st = Settings.create(model_file_dir=str(model_dir), **options)
    return ChainRunner(st, cache=cache)


def _read(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="float32", always_2d=True)[0].T


def _with(doc: dict, step: str, **params) -> dict:
    out = json.loads(json.dumps(doc))
    out["steps"][step]["params"] = {**out["steps"][step].get("params", {}), **params}
    return out


def _song(audio_file) -> tuple[Path, np.ndarray]:
    path = audio_file("song.wav", seconds=1.0, subtype="FLOAT", amplitude=0.3)
    return path, _read(path)


# -- the document and its validation -----------------------------------------------------------------


@pytest.mark.parametrize(("change", "step", "words"), [
    (lambda d: d["steps"]["trio"].update(input="nothere.Vocals"), "trio", "no step 'nothere'"),
    (lambda d: d["steps"]["rest"].update(subtract=["split.Instrumental", "split.Drums"]), "rest", "no stem 'Drums'"),
    (lambda d: d["steps"]["split"].update(input="rest"), "", "cycle"),
    (lambda d: d["steps"]["trio"].update(params={"gain_nonsense": 1}), "trio", "unknown gain_params key(s) nonsense"),
    (lambda d: d["steps"]["trio"].update(params={"nonsense": 1}), "trio", "unknown param 'nonsense'"),
    (lambda d: d["steps"]["trio"].update(params={"sample_rate": 22050}), "trio", "whole chain"),
    (lambda d: d["steps"]["split"].update(model="no_such_model.ckpt"), "split", "no_such_model"),
    (lambda d: d["steps"]["trio"].update(input="split"), "trio", "name one"),
    (lambda d: d["steps"]["rest"].update(frobnicate=1), "rest", "unknown key 'frobnicate'"),
    (lambda d: d["outputs"].update(x="split.Bass"), "", "no stem 'Bass'"),
])
def test_a_bad_chain_is_one_line_naming_the_step_and_runs_nothing(gain_model_dir, audio_file, tmp_path,
                                                                   change, step, words):
    doc = json.loads(json.dumps(FORK))
    change(doc)
    runner = _runner(gain_model_dir, StemCache(tmp_path / "cache", 1 << 30))
    with pytest.raises(ChainError) as info:
        runner.run(parse_chain(doc), _song(audio_file)[0], tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message and words in message
    if step:
        assert f"'{step}'" in message
    assert runner.stats.model_loads == 0 and runner.stats.ran == []
    assert not (tmp_path / "out").exists()


def test_a_stem_the_catalogue_does_not_list_is_refused_from_the_catalogue_without_loading(tmp_path):
    models = REFERENCE / "models"
    doc = {"steps": {"inst": {"model": "UVR-MDX-NET-Inst_HQ_3.onnx"},
                     "drums": {"model": "htdemucs.yaml", "input": "inst.Guitar"}}, "outputs": {"d": "drums.Drums"}}
    runner = _runner(models, None)
    with pytest.raises(ChainError, match=r"chain step 'drums': step 'inst' gives no stem 'Guitar' \(it gives "
                                         r"instrumental, vocals\)"):
        runner.check(parse_chain(doc))
    assert runner.stats.model_loads == 0


def test_a_stem_missing_after_the_model_ran_names_the_reading_step(gain_model_dir, audio_file, tmp_path):
    doc = _with(FORK, "trio")
    doc["steps"]["rest"]["subtract"] = ["split.Instrumental", "trio.Piano"]  # local_trio: stems known only loaded
    with pytest.raises(ChainError, match=r"chain step 'rest': step 'trio' gives no stem 'Piano' \(it gives Drums, "
                                         r"Bass, Other\)"):
        _runner(gain_model_dir, None).run(parse_chain(doc), _song(audio_file)[0], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_order_needed_and_round_trip():
    doc = {"steps": {"late": {"subtract": ["early.Vocals", "mid"]}, "unused": {"model": "x.gain"},
                     "mid": {"rename": "early.Instrumental"}, "early": {"model": "vocal_split.gain"}},
           "outputs": {"o": "late"}}
    chain = parse_chain(doc)
    assert chain.order() == ["unused", "early", "mid", "late"]
    assert chain.needed() == ["early", "mid", "late"]
    assert parse_chain(chain.to_dict()).to_dict() == chain.to_dict()


# -- running -------------------------------------------------------------------------------------------


def test_fork_gives_the_stems_computed_by_hand(gain_model_dir, audio_file, tmp_path):
    path, song = _song(audio_file)
    runner = _runner(gain_model_dir, StemCache(tmp_path / "cache", 1 << 30))
    written = runner.run(parse_chain(FORK), path, tmp_path / "out")
    assert [p.name for p in written] == ["song_(vocals)_fork.wav", "song_(drums)_fork.wav",
                                         "song_(no_drums)_fork.wav"]
    split = json.loads((gain_model_dir / "vocal_split.gain").read_text())["stems"]
    trio = json.loads((gain_model_dir / "local_trio.gain").read_text())["stems"]
    inst = song * np.float32(split["Instrumental"])
    drums = inst * np.float32(trio["Drums"])
    np.testing.assert_array_equal(_read(written[0]), song * np.float32(split["Vocals"]))
    np.testing.assert_array_equal(_read(written[1]), drums)
    np.testing.assert_array_equal(_read(written[2]), inst - drums)
    assert runner.stats.ran == ["split", "trio", "rest"] and runner.stats.model_loads == 2


def test_changing_the_last_steps_params_runs_only_that_step_and_equals_a_cold_run(gain_model_dir, audio_file,
                                                                                   tmp_path):
    path, _ = _song(audio_file)
    doc = {"name": "two", "steps": {"split": FORK["steps"]["split"], "trio": FORK["steps"]["trio"]},
           "outputs": {"drums": "trio.Drums"}}
    runner = _runner(gain_model_dir, StemCache(tmp_path / "cache", 1 << 30))
    first = _read(runner.run(parse_chain(doc), path, tmp_path / "a")[0])
    assert runner.stats.ran == ["split", "trio"] and runner.stats.model_loads == 2
    changed = parse_chain(_with(doc, "trio", gain_scale=0.5))
    again = _read(runner.run(changed, path, tmp_path / "b")[0])
    assert runner.stats.ran == ["trio"] and runner.stats.cached == ["split"]
    assert runner.stats.model_loads == 1 and runner.stats.model_runs == 1
    cold_runner = _runner(gain_model_dir, None)
    cold = _read(cold_runner.run(changed, path, tmp_path / "c")[0])
    assert cold_runner.stats.ran == ["split", "trio"]
    np.testing.assert_array_equal(again, cold)
    assert not np.array_equal(again, first)  # the param changed the stem: the cache did not hand back the old one
    runner.run(changed, path, tmp_path / "d")
    assert runner.stats.ran == [] and runner.stats.model_loads == 0


def test_a_changed_input_or_core_option_reruns_every_step(gain_model_dir, audio_file, tmp_path):
    path, _ = _song(audio_file)
    cache = StemCache(tmp_path / "cache", 1 << 30)
    _runner(gain_model_dir, cache).run(parse_chain(FORK), path, tmp_path / "a")
    other = audio_file("other.wav", seconds=1.0, subtype="FLOAT", amplitude=0.2)
    runner = _runner(gain_model_dir, cache)
    runner.run(parse_chain(FORK), other, tmp_path / "b")
    assert runner.stats.ran == ["split", "trio", "rest"]
    runner = _runner(gain_model_dir, cache, use_tta=True)
    runner.run(parse_chain(FORK), path, tmp_path / "c")
    assert runner.stats.ran == ["split", "trio", "rest"]
    runner = _runner(gain_model_dir, cache, output_format="FLAC", output_bit_depth=24)  # output only: all cached
    runner.run(parse_chain(FORK), path, tmp_path / "d")
    assert runner.stats.ran == [] and runner.stats.cached == ["split", "trio", "rest"]


def test_mix_subtract_rename_and_phase_fix_on_the_song(audio_file, tmp_path, gain_model_dir):
    path, song = _song(audio_file)
    doc = {"name": "ops", "steps": {
        "m": {"mix": ["song", "song"], "weights": [0.5, 0.25]}, "s": {"subtract": ["song", "m"]},
        "r": {"rename": "s"}, "p": {"phase_fix": {"magnitude": "song", "phase": "song"}},
        "q": {"phase_fix": {"magnitude": "song", "phase": "m"}}, "n": {"phase_fix": {"magnitude": "m", "phase": "s"}}},
        "outputs": {"m": "m", "s": "s", "r": "r.r", "p": "p", "q": "q", "n": "n"}}
    out = {p.name.split("(")[1].split(")")[0]: _read(p)
           for p in _runner(gain_model_dir, None).run(parse_chain(doc), path, tmp_path / "out")}
    mixed = song * np.float32(0.5) + song * np.float32(0.25)
    np.testing.assert_array_equal(out["m"], mixed)
    np.testing.assert_array_equal(out["s"], song - mixed)
    np.testing.assert_array_equal(out["r"], out["s"])
    np.testing.assert_allclose(out["p"], song, atol=1e-5)  # |X| e^{i angle X} = X
    np.testing.assert_allclose(out["q"], song, atol=1e-5)  # m is song * 0.75: the same phase
    np.testing.assert_allclose(out["n"], mixed, atol=1e-5)  # s = 0.25 song: same phase, m's magnitude


def test_no_cache_leaves_nothing_and_the_cache_evicts_least_recently_used(gain_model_dir, audio_file, tmp_path,
                                                                          monkeypatch):
    path, _ = _song(audio_file)
    monkeypatch.setenv("VSEP_CACHE_DIR", str(tmp_path / "user-cache"))
    runner = _runner(gain_model_dir, None)
    runner.run(parse_chain(FORK), path, tmp_path / "out")
    assert not (tmp_path / "user-cache").exists()
    cache = StemCache(tmp_path / "cache", 1 << 40)
    runner = _runner(gain_model_dir, cache)
    runner.run(parse_chain(FORK), path, tmp_path / "out")
    entries = cache.entries()
    assert len(entries) == 3 and all(e.size > 0 for e in entries)
    sizes = {e.meta["step"]: e.size for e in entries}
    os.utime(next(e for e in entries if e.meta["step"] == "trio").path / "used", (1, 1))  # trio: least recent
    cache.max_bytes = sum(sizes.values()) - 1
    removed = cache.evict()
    assert len(removed) == 1 and {e.meta["step"] for e in cache.entries()} == {"split", "rest"}
    runner.run(parse_chain(FORK), path, tmp_path / "out")
    assert runner.stats.ran == ["trio"]
    assert cache.clear() == 3 and cache.entries() == []


def test_separator_separate_runs_a_chain(gain_model_dir, audio_file, tmp_path, monkeypatch):
    from vsep_core import Separator

    path, song = _song(audio_file)
    monkeypatch.setenv("VSEP_CACHE_DIR", str(tmp_path / "cache"))
    sep = Separator(model_file_dir=gain_model_dir, output_dir=tmp_path / "out", output_bit_depth=32)
    written = sep.separate(str(path), chain=FORK)
    assert [Path(p).name for p in written] == ["song_(vocals)_fork.wav", "song_(drums)_fork.wav",
                                               "song_(no_drums)_fork.wav"]
    assert len(StemCache(tmp_path / "cache", 1 << 30).entries()) == 3
    with pytest.raises(Exception, match="no model loaded"):
        sep.separate(str(path))  # the chain was for that call only


# -- presets and the CLI -----------------------------------------------------------------------------


def test_shipped_chain_presets_are_valid_and_name_catalogue_models():
    from vsep_core import catalog

    presets = chain_presets()
    assert {"karaoke_dereverb_lead", "instrumental_drum_parts"} <= set(presets)
    names = {r.filename for r in catalog.all_records()}
    for pid in presets:
        chain = load_chain(pid)
        runner = _runner(Path("/nonexistent"), None)
        runner.check(chain)  # the stems each step reads are ones the catalogue says its model gives
        for step in chain.steps.values():
            assert set(step.models) <= names, pid


@pytest.mark.slow
def test_cli_chain_run_show_and_cache(gain_model_dir, audio_file, tmp_path):
    path, _ = _song(audio_file)
    chain_file = tmp_path / "fork.yaml"
    chain_file.write_text(json.dumps(FORK))  # JSON is YAML
    common = ["--model_file_dir", gain_model_dir, "--cache_dir", tmp_path / "cache"]
    shown = run_vsep("chain", "show", chain_file, path, *common)
    assert shown.returncode == 0, shown.stderr
    assert "trio: local_trio.gain on split.Instrumental [gain_scale=1.0]  [will run]" in shown.stdout
    done = run_vsep("chain", "run", chain_file, path, *common, "--output_dir", tmp_path / "out", "--output_format",
                    "WAV")
    assert done.returncode == 0, done.stderr
    assert sorted(Path(p).name for p in done.stdout.split()) == ["song_(drums)_fork.wav", "song_(no_drums)_fork.wav",
                                                                 "song_(vocals)_fork.wav"]
    shown = run_vsep("chain", "show", chain_file, path, *common)
    assert shown.stdout.count("[cached]") == 3
    info = run_vsep("cache", "info", "--cache_dir", tmp_path / "cache")
    assert "entries: 3" in info.stdout
    assert run_vsep("cache", "clear", "--cache_dir", tmp_path / "cache").returncode == 0
    assert "entries: 0" in run_vsep("cache", "info", "--cache_dir", tmp_path / "cache").stdout
    bad = run_vsep("chain", "run", chain_file, path, *common, "--gain_scale", "0.5", "--no-cache",
                   "--single_stem", "Vocals")
    assert bad.returncode != 0
    chain_file.write_text(json.dumps(_with(FORK, "rest", gain_scale=2)))
    bad = run_vsep("chain", "run", chain_file, path, *common)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: chain step 'rest'")


# -- parity with running the steps by hand ------------------------------------------------------------


@pytest.mark.slow
def test_mdx_then_demucs_on_the_instrumental_then_subtract_equals_the_steps_by_hand(tmp_path):
    """The oracle's tiny MDX model, then its Demucs model on MDX's Instrumental, then Instrumental - Drums:
    the chain's stems equal `vsep separate` run by hand on the same files and subtracted."""
    models = REFERENCE / "models"
    data, rate = sf.read(str(REFERENCE / "input" / "mardy20s_6s_16bit.flac"), dtype="float32")
    song = tmp_path / "song.flac"
    sf.write(str(song), data[: int(2.5 * rate)] * np.float32(0.25), rate, subtype="PCM_16")
    exact = ["--output_format", "WAV", "--output_bit_depth", "32", "--model_file_dir", models]
    by_hand = run_vsep("separate", song, "-m", "UVR-MDX-NET-Inst_HQ_3.onnx", "--output_dir", tmp_path / "hand", *exact)
    assert by_hand.returncode == 0, by_hand.stderr
    inst_file = tmp_path / "hand" / "song_(Instrumental)_UVR-MDX-NET-Inst_HQ_3.wav"
    by_hand = run_vsep("separate", inst_file, "-m", "htdemucs.yaml", "--demucs_shifts", "0", "--output_dir",
                       tmp_path / "hand", *exact)
    assert by_hand.returncode == 0, by_hand.stderr
    inst = _read(inst_file)
    drums = _read(tmp_path / "hand" / "song_(Instrumental)_UVR-MDX-NET-Inst_HQ_3_(Drums)_htdemucs.wav")
    assert max(np.abs(inst).max(), np.abs(drums).max()) < 0.9  # by hand, the writer left them as they were

    doc = {"name": "nodrums", "steps": {
        "inst": {"model": "UVR-MDX-NET-Inst_HQ_3.onnx"},
        "drums": {"model": "htdemucs.yaml", "input": "inst.Instrumental", "params": {"demucs_shifts": 0}},
        "rest": {"subtract": ["inst.Instrumental", "drums.Drums"]}},
        "outputs": {"drums": "drums.Drums", "no_drums": "rest"}}
    done = run_vsep("chain", "run", _write(tmp_path / "c.json", doc), song, *exact,
                    "--output_dir", tmp_path / "chain", "--no-cache")
    assert done.returncode == 0, done.stderr
    chain_drums = _read(tmp_path / "chain" / "song_(drums)_nodrums.wav")
    chain_rest = _read(tmp_path / "chain" / "song_(no_drums)_nodrums.wav")
    np.testing.assert_array_equal(chain_drums, drums)
    np.testing.assert_array_equal(chain_rest, inst - drums)
    assert np.abs(drums).max() > 1e-4  # the models did give something


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_batch_runs_a_chain_on_every_file_and_its_fingerprint_follows_the_chain(gain_model_dir, tmp_path,
                                                                               monkeypatch):
    from tests.conftest import make_tone
    from vsep_core.batch import BatchSettings, run_batch

    monkeypatch.setenv("VSEP_CACHE_DIR", str(tmp_path / "cache"))
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(2):
        sf.write(str(inputs / f"s{i}.wav"), make_tone(0.3 + 0.1 * i), 44100, subtype="FLOAT")
    kwargs = {"model_file_dir": str(gain_model_dir), "output_format": "WAV", "output_bit_depth": 32,
              "device": "cpu", "offline": True}
    settings = BatchSettings(kwargs, (), json.dumps(FORK))
    report = run_batch(str(inputs), str(tmp_path / "out"), settings, workers=0)
    assert report.stats.done == 2 and not report.failures
    song = _read(inputs / "s1.wav")
    split = json.loads((gain_model_dir / "vocal_split.gain").read_text())["stems"]
    np.testing.assert_array_equal(_read(tmp_path / "out" / "s1_(vocals)_fork.wav"), song * np.float32(split["Vocals"]))
    assert len(list((tmp_path / "out").glob("*_fork.wav"))) == 6
    changed = BatchSettings(kwargs, (), json.dumps(_with(FORK, "trio", gain_scale=0.5)))
    assert changed.fingerprint() != settings.fingerprint()


@pytest.mark.slow
def test_the_server_runs_a_chain_and_refuses_a_bad_one(gain_model_dir, audio_file, tmp_path):
    import sys

    from tests.conftest import cli_env
    from vsep_core.remote import AudioSeparatorAPIClient
    from vsep_core.remote.api_client import RemoteAPIError
    from vsep_core.remote.testing import LiveServer

    path, song = _song(audio_file)
    data = tmp_path / "data"
    command = [sys.executable, "-m", "vsep_core.cli", "serve", "--data-dir", str(data), "--model_file_dir",
               str(gain_model_dir), "--device", "cpu"]
    with LiveServer(data, token="t", command=command, env=cli_env(VSEP_CACHE_DIR=str(tmp_path / "cache")),
                    startup_timeout=60) as live, AudioSeparatorAPIClient(live.url, token="t") as client:
        result = client.separate_audio_and_wait(str(path), chain=json.dumps(FORK), output_format="wav",
                                                output_bit_depth=32, poll_interval=0.1, timeout=60,
                                                output_dir=str(tmp_path / "remote"))
        assert result["status"] == "completed", result
        got = {Path(p).name: _read(Path(p)) for p in result["downloaded_files"]}
        split = json.loads((gain_model_dir / "vocal_split.gain").read_text())["stems"]
        np.testing.assert_array_equal(got["song_(vocals)_fork.wav"], song * np.float32(split["Vocals"]))
        assert len(got) == 3
        with pytest.raises(RemoteAPIError, match="chain step 'trio'") as info:
            client.separate_audio(str(path), chain=json.dumps(_with(FORK, "trio", nonsense=1)))
        assert info.value.status_code == 400
        with pytest.raises(RemoteAPIError, match="unknown chain preset") as info:
            client.separate_audio(str(path), chain="/etc/passwd")
        assert info.value.status_code == 400


def test_an_ensemble_step_and_a_preset_step(gain_model_dir, audio_file, tmp_path):
    from vsep_core.presets import get_preset

    path, song = _song(audio_file)
    (gain_model_dir / "other_split.gain").write_text(json.dumps({"stems": {"Vocals": 0.5, "Instrumental": 0.5}}))
    doc = {"name": "ens", "steps": {
        "both": {"ensemble": ["vocal_split.gain", "other_split.gain"], "algorithm": "avg_wave", "weights": [3, 1]},
        "rest": {"subtract": ["song", "both.Vocals"]}}, "outputs": {"v": "both.Vocals", "rest": "rest"}}
    runner = _runner(gain_model_dir, None)
    out = [_read(p) for p in runner.run(parse_chain(doc), path, tmp_path / "out")]
    vocals = (3 * song * np.float32(0.25) + song * np.float32(0.5)) / 4
    np.testing.assert_allclose(out[0], vocals, atol=1e-6)
    np.testing.assert_array_equal(out[1], song - out[0])
    assert runner.stats.model_loads == 2 and runner.stats.model_runs == 2
    chain = parse_chain({"steps": {"p": {"preset": "vocal_balanced", "weights": [2, 1]}}, "outputs": {"v": "p.Vocals"}})
    step = chain.steps["p"]
    preset = get_preset("vocal_balanced")
    assert step.models == preset.models and step.algorithm == preset.algorithm and step.weights == (2.0, 1.0)
    assert parse_chain(chain.to_dict()).steps["p"] == step
    _runner(tmp_path, None).check(chain)  # the preset's models' stems come from the catalogue: nothing downloaded
    with pytest.raises(ChainError, match="chain step 'p': unknown ensemble preset 'nope'"):
        parse_chain({"steps": {"p": {"preset": "nope"}}, "outputs": {"v": "p.Vocals"}})


def test_a_damaged_cache_entry_is_not_used(gain_model_dir, audio_file, tmp_path):
    path, _ = _song(audio_file)
    cache = StemCache(tmp_path / "cache", 1 << 30)
    runner = _runner(gain_model_dir, cache)
    first = [_read(p) for p in runner.run(parse_chain(FORK), path, tmp_path / "a")]
    trio = next(e for e in cache.entries() if e.meta["step"] == "trio")
    next(iter(trio.stems.values())).unlink()
    again = [_read(p) for p in runner.run(parse_chain(FORK), path, tmp_path / "b")]
    assert runner.stats.ran == ["trio"] and runner.stats.cached == ["split", "rest"]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_on_the_oracle_models_a_changed_last_step_reruns_alone_and_equals_a_cold_run(tmp_path):
    models = REFERENCE / "models"
    data, rate = sf.read(str(REFERENCE / "input" / "mardy20s_6s_16bit.flac"), dtype="float32")
    song = tmp_path / "song.flac"
    sf.write(str(song), data[:rate] * np.float32(0.25), rate, subtype="PCM_16")
    doc = {"name": "rv", "steps": {
        "inst": {"model": "UVR-MDX-NET-Inst_HQ_3.onnx"},
        "vocals": {"model": "model_bs_roformer_ep_317_sdr_12.9755.ckpt", "input": "inst.Vocals",
                   "params": {"mdxc_overlap": 2}}}, "outputs": {"v": "vocals.Vocals"}}
    runner = _runner(models, StemCache(tmp_path / "cache", 1 << 30), device="cpu")
    first = _read(runner.run(parse_chain(doc), song, tmp_path / "a")[0])
    assert runner.stats.ran == ["inst", "vocals"] and runner.stats.model_loads == 2
    changed = parse_chain(_with(doc, "vocals", mdxc_overlap=3, use_tta=True))
    again = _read(runner.run(changed, song, tmp_path / "b")[0])
    assert runner.stats.ran == ["vocals"] and runner.stats.model_loads == 1 and runner.stats.model_runs == 1
    cold = _read(_runner(models, None, device="cpu").run(changed, song, tmp_path / "c")[0])
    np.testing.assert_array_equal(again, cold)
    assert not np.array_equal(again, first)
