"""Moving from audio-separator: the reference's names and behaviours, called through vsep.

Most tests import the reference's module names through benchmarks/upstream/shim (a stand-in
``audio_separator`` package that only renames modules to vsep's), so they are the calls a
user makes after swapping the package, run on real files with the vsep-gain test models.
"""

from __future__ import annotations

import http.server
import importlib
import json
import logging
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, run_vsep

SHIM = ROOT / "benchmarks" / "upstream" / "shim"


@pytest.fixture
def ref(monkeypatch):
    """The reference's modules, by their names, through the renaming shim."""
    monkeypatch.syspath_prepend(str(SHIM))
    for name in [m for m in sys.modules if m == "audio_separator" or m.startswith("audio_separator.")]:
        monkeypatch.delitem(sys.modules, name)

    class Modules:
        separator = importlib.import_module("audio_separator.separator")
        separator_module = importlib.import_module("audio_separator.separator.separator")
        ensembler = importlib.import_module("audio_separator.separator.ensembler")
        cli = importlib.import_module("audio_separator.utils.cli")
        remote = importlib.import_module("audio_separator.remote")

    return Modules


def _separator(ref, gain_model_dir: Path, out: Path, **kwargs):
    return ref.separator.Separator(log_level=logging.WARNING, model_file_dir=str(gain_model_dir),
                                   output_dir=str(out), output_format="WAV", offline=True, **kwargs)


# --------------------------------------------------------------------------------------------- exceptions

def test_the_reference_exception_names_and_their_builtin_bases(ref):
    import vsep_core
    from vsep_core import errors

    assert issubclass(ref.separator.AudioExportError, RuntimeError)
    assert issubclass(ref.separator.BatchSeparationError, RuntimeError)
    assert issubclass(ref.separator.InvalidAudioDataError, ValueError)
    for name in ("AudioExportError", "BatchSeparationError", "InvalidAudioDataError"):
        assert getattr(vsep_core, name) is getattr(errors, name) is getattr(ref.separator, name)
        assert issubclass(getattr(errors, name), errors.VsepError)
    # vsep's own errors are the reference's where the reference raises them
    assert issubclass(errors.SeparationError, ref.separator.BatchSeparationError)
    assert issubclass(errors.AudioWriteError, ref.separator.AudioExportError)
    assert issubclass(errors.AudioReadError, ref.separator.InvalidAudioDataError)
    err = errors.AudioWriteError("cannot write x", path="x.wav", backend="soundfile")
    assert (err.path, err.backend, str(err)) == ("x.wav", "soundfile", "cannot write x")


@pytest.mark.parametrize("kwargs", [{"ensemble_preset": "no_such_preset"}, {"sample_rate": 0},
                                    {"normalization_threshold": 1.5}, {"ensemble_algorithm": "no_such_algo"}])
def test_bad_arguments_are_value_errors(ref, tmp_path, kwargs):
    with pytest.raises(ValueError) as info:
        ref.separator.Separator(model_file_dir=str(tmp_path), output_dir=str(tmp_path), info_only=True, **kwargs)
    assert str(next(iter(kwargs.values()))) in str(info.value)


def test_unknown_model_is_a_value_error(ref, tmp_path, gain_model_dir):
    sep = _separator(ref, gain_model_dir, tmp_path / "out")
    with pytest.raises(ValueError, match="no_such_model.ckpt"):
        sep.load_model("no_such_model.ckpt")


def test_failed_loads_and_runs_are_runtime_errors(ref, tmp_path, gain_model_dir, audio_file, monkeypatch):
    (gain_model_dir / "broken.gain").write_text(json.dumps({"stems": {"Vocals": "loud"}}))
    song = audio_file("r.wav", seconds=0.2)
    sep = _separator(ref, gain_model_dir, tmp_path / "out")
    with pytest.raises(RuntimeError, match="broken.gain"):
        sep.load_model("broken.gain")
    sep.load_model(["vocal_split.gain", "broken.gain"])
    with pytest.raises(RuntimeError, match="broken.gain"):
        sep.separate(str(song))

    import vsep_gain.plugin

    def fail(self, audio, progress=None):
        raise ZeroDivisionError("the network broke")

    monkeypatch.setattr(vsep_gain.plugin.GainModel, "separate", fail)
    sep.load_model(["vocal_split.gain", "local_trio.gain"])
    with pytest.raises(RuntimeError, match="vocal_split.gain.*the network broke"):
        sep.separate(str(song))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_missing_single_input_is_a_file_not_found_error(ref, tmp_path, gain_model_dir):
    sep = _separator(ref, gain_model_dir, tmp_path / "out")
    sep.load_model("vocal_split.gain")
    with pytest.raises(FileNotFoundError, match="nothing_here.wav"):
        sep.separate(str(tmp_path / "nothing_here.wav"))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_get_model_hash_of_a_missing_file_is_a_file_not_found_error(ref, tmp_path):
    sep = ref.separator.Separator(model_file_dir=str(tmp_path), output_dir=str(tmp_path), info_only=True)
    with pytest.raises(FileNotFoundError, match="absent.onnx"):
        sep.get_model_hash(str(tmp_path / "absent.onnx"))
    model = tmp_path / "present.onnx"
    model.write_bytes(bytes(range(256)) * 10)
    import hashlib

    assert sep.get_model_hash(str(model)) == hashlib.md5(model.read_bytes()).hexdigest()


def test_missing_model_yaml_is_a_file_not_found_error(ref, tmp_path):
    sep = ref.separator.Separator(model_file_dir=str(tmp_path), output_dir=str(tmp_path), info_only=True)
    with pytest.raises(FileNotFoundError, match="absent.yaml"):
        sep.load_model_data_from_yaml("absent.yaml")


# --------------------------------------------------------------------------------------------- batches

def test_several_inputs_with_one_missing_separates_the_others_then_raises(ref, tmp_path, gain_model_dir,
                                                                          audio_file):
    first, second = audio_file("one.wav", seconds=0.3), audio_file("two.wav", seconds=0.3)
    missing = tmp_path / "gone.wav"
    out = tmp_path / "out"
    sep = _separator(ref, gain_model_dir, out)
    sep.load_model("vocal_split.gain")
    with pytest.raises(ref.separator.BatchSeparationError) as info:
        sep.separate([str(first), str(missing), str(second)])
    err = info.value
    assert isinstance(err, RuntimeError)
    assert [path for path, _ in err.failures] == [str(missing)]
    assert isinstance(err.failures[0][1], FileNotFoundError)
    assert "gone.wav" in str(err) and "1 input" in str(err)
    written = sorted(p.name for p in out.iterdir())
    assert written == ["one_(Instrumental)_vocal_split.wav", "one_(Vocals)_vocal_split.wav",
                       "two_(Instrumental)_vocal_split.wav", "two_(Vocals)_vocal_split.wav"]
    assert sorted(Path(p).name for p in err.successful_files) == written


@pytest.mark.slow
def test_cli_with_one_missing_input_separates_the_rest_and_exits_1(tmp_path, gain_model_dir, audio_file):
    song = audio_file("here.wav", seconds=0.3)
    out = tmp_path / "out"
    proc = run_vsep(song, tmp_path / "gone.wav", "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir,
                    "--output_dir", out, "--output_format", "WAV")
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "gone.wav" in errors[0] and "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["here_(Instrumental)_vocal_split.wav",
                                                     "here_(Vocals)_vocal_split.wav"]
    assert "here_(Vocals)_vocal_split.wav" in proc.stdout  # what was written is still listed

    proc = run_vsep(tmp_path / "gone.wav", "-m", "vocal_split.gain", "--model_file_dir", gain_model_dir,
                    "--output_dir", tmp_path / "out2")
    assert proc.returncode == 1 and "input not found" in proc.stderr and not (tmp_path / "out2").exists()


# --------------------------------------------------------------------------------------------- single stem

def test_single_stem_the_model_lacks_writes_nothing_and_returns_empty(ref, tmp_path, gain_model_dir, audio_file,
                                                                      caplog):
    song = audio_file("s.wav", seconds=0.3)
    out = tmp_path / "out"
    names = []
    for model in ("local_trio.gain", "vocal_split.gain"):  # a loop over models goes on after a miss
        sep = _separator(ref, gain_model_dir, out, output_single_stem="vocals")
        sep.load_model(model)
        with caplog.at_level(logging.WARNING, logger="vsep"):
            names.append([Path(p).name for p in sep.separate(str(song))])
    assert names == [[], ["s_(Vocals)_vocal_split.wav"]]
    assert "vocals" in caplog.text and "Drums, Bass, Other" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["s_(Vocals)_vocal_split.wav"]


def test_batch_single_stem_miss_fails_the_file(tmp_path, gain_model_dir, audio_file):
    from vsep_core.batch.worker import BatchSettings, Task, WorkerState

    song = audio_file("b.wav", seconds=0.2)
    settings = BatchSettings({"model_file_dir": str(gain_model_dir), "output_format": "WAV", "device": "cpu",
                              "offline": True, "output_single_stem": "Piano"}, ("vocal_split.gain",))
    result = WorkerState(settings, "w0").process(Task("b.wav", str(song), str(tmp_path / "out"), ""))
    assert not result.ok and "Piano" in result.error and result.outputs == []
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.wav"))


@pytest.mark.slow
def test_cli_single_stem_miss_is_one_line_and_non_zero(tmp_path, gain_model_dir, audio_file):
    song = audio_file("s.wav", seconds=0.3)
    proc = run_vsep(song, "-m", "local_trio.gain", "--single_stem", "Vocals", "--model_file_dir", gain_model_dir,
                    "--output_dir", tmp_path / "out")
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Vocals" in errors[0] and "Drums" in errors[0]
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------- output names

def test_single_model_output_names(ref, tmp_path, gain_model_dir, audio_file):
    song = audio_file("My Song.wav", seconds=0.3)
    sep = _separator(ref, gain_model_dir, tmp_path / "out")
    sep.load_model("vocal_split.gain")
    assert [Path(p).name for p in sep.separate(str(song))] == ["My Song_(Vocals)_vocal_split.wav",
                                                               "My Song_(Instrumental)_vocal_split.wav"]


def test_ensemble_output_names_as_the_reference(ref, tmp_path, gain_model_dir, audio_file):
    song = audio_file("mix.wav", seconds=0.3)
    sep = _separator(ref, gain_model_dir, tmp_path / "out")
    sep.load_model(["vocal_split.gain", "local_trio.gain"])
    names = [Path(p).name for p in sep.separate(str(song))]
    label = "custom_ensemble_vocal_split_local_trio"
    assert names == [f"mix_(Vocals)_{label}.wav", f"mix_(Instrumental)_{label}.wav", f"mix_(Drums)_{label}.wav",
                     f"mix_(Bass)_{label}.wav", f"mix_(Other)_{label}.wav"]


def test_short_model_names_follow_the_reference_and_stay_distinct():
    from vsep_core.ensemble_run import output_label, short_model_names

    # the reference's own example (its tests/unit/test_stem_naming.py)
    assert output_label(None, ["UVR-MDX-NET-Inst_HQ_5.onnx", "mel_band_roformer_karaoke_aufr33_viperx_sdr_10.1956.ckpt"]
                        ) == "custom_ensemble_Inst_HQ_5_karaoke_aufr"
    assert short_model_names(["model_bs_roformer_ep_317_sdr_12.9755.ckpt", "htdemucs_6s.yaml",
                              "/models/melband_roformer_inst_v1e_plus.ckpt"]) == ["ep_317_sdr_1", "htdemucs_6s",
                                                                                  "inst_v1e_plu"]
    # two models that the reference would both call "instrumental" keep distinct names
    assert short_model_names(["mel_band_roformer_instrumental_becruily.ckpt",
                              "bs_roformer_instrumental_fv7z.ckpt"]) == ["instrumental_b", "instrumental_f"]
    assert output_label("karaoke", ["a.ckpt", "b.ckpt"]) == "preset_karaoke"


# --------------------------------------------------------------------------------------------- Separator names

def test_the_reference_public_methods_and_attributes_exist(ref, tmp_path):
    sep = ref.separator.Separator(model_file_dir=str(tmp_path), output_dir=str(tmp_path), info_only=True)
    for name in ("setup_torch_device", "configure_cuda", "configure_mps", "configure_dml",
                 "download_file_if_not_exists", "preload_onnxruntime_dependencies",
                 "setup_accelerated_inferencing_device", "get_model_hash", "load_model_data_from_yaml",
                 "load_model_data_using_hash", "list_supported_model_files", "get_simplified_model_list",
                 "download_model_files", "download_model_and_data", "list_ensemble_presets", "load_model",
                 "separate"):
        assert callable(getattr(sep, name)), name
    assert sep.ensemble_algorithm == "avg_wave" and sep.model_friendly_name is None and sep.torch_device is None
    assert {"MDX", "VR", "Demucs", "MDXC"} <= set(sep.arch_specific_params)
    assert sep.arch_specific_params["MDX"] is sep.mdx_params
    assert ref.separator_module.STEM_NAME_MAP["no_vocals"] == "Instrumental"


def test_torch_device_is_a_torch_device_and_setup_picks_one(ref, tmp_path, gain_model_dir):
    import torch

    sep = _separator(ref, gain_model_dir, tmp_path)
    assert isinstance(sep.torch_device, torch.device)
    sep.torch_device = None
    assert isinstance(sep.setup_torch_device(None), torch.device)
    assert sep.torch_device.type in ("cpu", "cuda", "mps") and sep.onnx_execution_provider
    if not torch.cuda.is_available():
        from vsep_core.errors import DeviceError

        with pytest.raises(DeviceError, match="cuda"):
            sep.configure_cuda(["CPUExecutionProvider"])
    sep.load_model("vocal_split.gain")
    assert sep.model_friendly_name == "Gain: vocal split"
    assert isinstance(sep.preload_onnxruntime_dependencies(), bool)


def test_importing_vsep_core_does_not_import_torch():
    code = ("import sys, vsep_core, vsep_core.errors, vsep_core.ensembler, vsep_core.separator_compat, "
            "vsep_core.cli; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("model, name, flagged", [
    ({"dim": 8, "freqs_per_bands": [2, 2]}, "config.yaml", True),
    ({"dim": 8, "num_bands": 4}, "config.yaml", True),
    ({"model_type": "mel_band_roformer"}, "config.yaml", True),
    ({"num_subbands": 4, "num_scales": 2, "num_channels": 8, "growth": 8}, "config_roformer_like.yaml", True),
    ({"num_subbands": 4, "num_scales": 2, "num_channels": 8, "growth": 8}, "model_2_stem_full_band.yaml", False),
])
def test_load_model_data_from_yaml_sets_is_roformer(ref, tmp_path, model, name, flagged):
    sub = tmp_path / "roformer_models"  # the directory name does not count, as in 0.47.1
    sub.mkdir()
    (sub / name).write_text(json.dumps({"model": model, "training": {"instruments": ["Vocals", "Other"]}}))
    sep = ref.separator.Separator(model_file_dir=str(sub), output_dir=str(tmp_path), info_only=True)
    data = sep.load_model_data_from_yaml(name)
    assert data.get("is_roformer", False) is flagged
    assert data["training"]["instruments"] == ["Vocals", "Other"]


class _Files(http.server.SimpleHTTPRequestHandler):
    hits: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).hits.append(self.path)
        if self.path == "/model.bin":
            body = b"weights" * 100
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/health":
            body = json.dumps({"status": "healthy"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)


@pytest.fixture
def file_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    _Files.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_file_if_not_exists(ref, tmp_path, file_server, monkeypatch):
    monkeypatch.delenv("VSEP_OFFLINE", raising=False)
    sep = ref.separator.Separator(model_file_dir=str(tmp_path), output_dir=str(tmp_path), info_only=True)
    target = tmp_path / "dl" / "model.bin"
    sep.download_file_if_not_exists(f"{file_server}/model.bin", str(target))
    assert target.read_bytes() == b"weights" * 100
    sep.download_file_if_not_exists(f"{file_server}/model.bin", str(target))  # there already: no request
    assert _Files.hits == ["/model.bin"]
    with pytest.raises(RuntimeError, match="missing.bin"):
        sep.download_file_if_not_exists(f"{file_server}/missing.bin", str(tmp_path / "dl" / "missing.bin"))
    assert not (tmp_path / "dl" / "missing.bin").exists()


# --------------------------------------------------------------------------------------------- remote, CLI

def test_get_server_version_reraises_when_health_is_unreachable(ref, file_server):
    from vsep_core.remote.api_client import RemoteAPIError

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ref.remote.AudioSeparatorAPIClient(f"http://127.0.0.1:{port}", logging.getLogger("test"), retries=0)
    with pytest.raises(RemoteAPIError):
        client.get_server_version()
    assert ref.remote.AudioSeparatorAPIClient(file_server, retries=0).get_server_version() == "unknown"


def test_cli_main_ends_with_system_exit(ref, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "argv", ["audio-separator", "--list_presets"])
    with pytest.raises(SystemExit) as info:
        ref.cli.main()
    assert info.value.code == 0 and "vocal_balanced" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["audio-separator", str(tmp_path / "gone.wav")])
    with pytest.raises(SystemExit) as info:
        ref.cli.main()
    assert info.value.code == 1 and "gone.wav" in capsys.readouterr().err
    assert ref.cli.main(["--list_presets"]) == 0  # with arguments it returns the status


def test_invalid_log_level_is_refused_in_one_line(tmp_path, audio_file):
    proc = run_vsep(audio_file("a.wav", seconds=0.1), "--log_level=invalid")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")] and "invalid" in proc.stderr


# --------------------------------------------------------------------------------------------- Ensembler

@pytest.fixture
def waves():
    rng = np.random.default_rng(7)
    return [rng.standard_normal((2, 3000)), rng.standard_normal((2, 2500)), rng.standard_normal((2, 3000))]


def _padded(waves):
    n = max(w.shape[-1] for w in waves)
    return [np.pad(w, ((0, 0), (0, n - w.shape[-1]))) for w in waves]


def test_ensembler_weighted_average_with_padding(ref, waves):
    result = ref.ensembler.Ensembler(logging.getLogger("t"), "avg_wave", [1.0, 2.0, 5.0]).ensemble(waves)
    a, b, c = _padded(waves)
    np.testing.assert_allclose(result, (a + 2 * b + 5 * c) / 8, atol=1e-6)
    assert result.dtype == np.float64 and result.shape == (2, 3000)


@pytest.mark.parametrize("weights", [[1.0, 2.0], [1.0, float("nan"), 1.0], [1.0, float("inf"), 1.0],
                                     [1.0, -1.0, 0.0]])
def test_ensembler_bad_weights_warn_on_the_given_logger_and_use_equal_weights(ref, waves, weights, caplog):
    logger = logging.getLogger("my.app")
    with caplog.at_level(logging.WARNING, logger="my.app"):
        result = ref.ensembler.Ensembler(logger, "avg_wave", weights).ensemble(waves)
    assert [r.name for r in caplog.records if r.levelno == logging.WARNING] == ["my.app"]
    np.testing.assert_allclose(result, sum(_padded(waves)) / 3, atol=1e-6)


def test_ensembler_edge_cases(ref, waves):
    Ensembler = ref.ensembler.Ensembler
    assert Ensembler(None).ensemble([]) is None
    assert Ensembler(None).ensemble([waves[0]]) is waves[0]
    with pytest.raises(ValueError, match="channels"):
        Ensembler(None).ensemble([waves[0], waves[0][:1]])
    ensembler = Ensembler(None, "not_an_algorithm")  # accepted until it runs, as the reference
    with pytest.raises(ValueError, match="Unknown ensemble algorithm"):
        ensembler.ensemble(waves)
    mono = Ensembler(None, "max_wave").ensemble([waves[0][0], waves[1][0]])
    assert mono.ndim == 1 and mono.shape == (3000,)


@pytest.mark.parametrize("algorithm", ["median_wave", "min_wave", "max_wave", "avg_fft", "median_fft", "min_fft",
                                       "max_fft", "uvr_max_spec", "uvr_min_spec", "ensemble_wav"])
def test_ensembler_is_vsep_ensemble(ref, waves, algorithm):
    from vsep_core.ensemble import ensemble

    result = ref.ensembler.Ensembler(None, algorithm).ensemble(waves)
    np.testing.assert_allclose(result, ensemble(waves, algorithm), atol=1e-6)
    assert result.shape == (2, 3000)


def test_ensembler_stft_is_librosa_layout(ref):
    x = np.random.default_rng(1).standard_normal(5000)
    spec = ref.ensembler.Ensembler(None)._stft(x)
    assert spec.shape == (2, 1025, 1 + 5000 // 1024)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2048) / 2048)
    np.testing.assert_allclose(spec[0, :, 2], np.fft.rfft(window * x[2 * 1024 - 1024:2 * 1024 + 1024]), atol=1e-9)
    np.testing.assert_array_equal(spec[0], spec[1])
    assert ref.ensembler.Ensembler(None)._stft(x[None]).shape == spec.shape
