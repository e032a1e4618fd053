"""The fault table: bad inputs, bad values, broken model files, odd environments and failing disks, each its own case.

Every case runs the real `vsep` command line (in this process through ``vsep_core.cli.run``; in a subprocess only
where the process itself must differ: a file-size limit) and checks what a user sees:

- the exit code;
- exactly one error line (``error: ...``), no traceback, no ERROR log record;
- the output directory as it was before the run, or, where some inputs succeed, with exactly the whole stem sets
  of those inputs added; and no temporary file or work folder of the run left in the output or temp directory.

Cases that succeed with a warning (truncated inputs, a custom name for a stem the model lacks) check that
there is no error line and that the warning is said once.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REFERENCE, cli_env, make_tone

GAIN = "vocal_split.gain"
GAIN_STEMS = ("Vocals", "Instrumental")
ROFORMER = "model_bs_roformer_ep_317_sdr_12.9755"
MODELS = REFERENCE / "models"


@dataclass
class Case:
    """One fault: the command line (``{in}``, ``{out}``, ``{models}``, ``{tmp}`` filled in), how it ends, and
    what it may write."""

    args: list[str]
    rc: int
    says: str = ""  # a piece of the one error line (or of the warning when rc == 0)
    setup: Callable[[Path], None] | None = None  # prepares the case's files in its tmp directory
    env: dict[str, str] = field(default_factory=dict)
    written: tuple[str, ...] = ()  # inputs (file stems) whose whole stem sets appear
    warns: str = ""  # a warning said exactly once (rc 0 cases)


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def _tone(path: Path, seconds: float = 0.3, channels: int = 2, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), make_tone(seconds, channels=channels), 44100, subtype=subtype)
    return path


def _truncated(fmt: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        full = _tone(tmp / f"full.{fmt}", seconds=2.0)
        data = full.read_bytes()
        _write(tmp / "in" / f"cut.{fmt}", data[: len(data) // 2])
        full.unlink()
    return setup


def _junk(name: str, data: bytes = b"this is not audio at all " * 40) -> Callable[[Path], None]:
    return lambda tmp: _write(tmp / "in" / name, data)


def _nan_wav(tmp: Path) -> None:
    audio = make_tone(0.3)
    audio[100] = np.nan
    (tmp / "in").mkdir(parents=True, exist_ok=True)
    sf.write(str(tmp / "in" / "nan.wav"), audio, 44100, subtype="FLOAT")


def _six_channels(tmp: Path) -> None:
    (tmp / "in").mkdir(parents=True, exist_ok=True)
    sf.write(str(tmp / "in" / "six.wav"), np.zeros((4410, 6), np.float32) + 0.1, 44100)


def _header_only(tmp: Path) -> None:
    good = _tone(tmp / "x.wav")
    _write(tmp / "in" / "header.wav", good.read_bytes()[:44])


def _zero_frames(tmp: Path) -> None:
    (tmp / "in").mkdir(parents=True, exist_ok=True)
    sf.write(str(tmp / "in" / "zero.wav"), np.zeros((0, 2), np.float32), 44100)


def _in_the_way(stem: str, name: str = "song", model: str = "vocal_split") -> Callable[[Path], None]:
    return lambda tmp: (tmp / "out" / f"{name}_({stem})_{model}.flac").mkdir(parents=True)


def _roformer(ckpt: bytes | None = None, yaml_text: str | None = None) -> Callable[[Path], None]:
    """The tiny BS-Roformer oracle in the case's model directory, its checkpoint or yaml replaced."""
    def setup(tmp: Path) -> None:
        d = tmp / "models"
        d.mkdir(exist_ok=True)
        config = yaml_text if yaml_text is not None else (MODELS / f"{ROFORMER}.yaml").read_text()
        _write(d / f"{ROFORMER}.yaml", config)
        real = (MODELS / f"{ROFORMER}.ckpt").read_bytes()
        _write(d / f"{ROFORMER}.ckpt", real if ckpt is None else ckpt)
    return setup


def _roformer_truncated(tmp: Path) -> None:
    _roformer((MODELS / f"{ROFORMER}.ckpt").read_bytes()[:100_000])(tmp)


def _roformer_with_code(tmp: Path) -> None:
    from vsep_core.testlib import save_with_code

    _roformer()(tmp)
    save_with_code(tmp / "models" / f"{ROFORMER}.ckpt", {})


def _roformer_no_tensors(tmp: Path) -> None:
    import torch

    _roformer()(tmp)
    torch.save({"epoch": 3, "note": "no weights"}, tmp / "models" / f"{ROFORMER}.ckpt")


def _model_file(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda tmp: _write(tmp / "models" / name, data)


def _demucs_broken(tmp: Path) -> None:
    _write(tmp / "models" / "htdemucs.yaml", (MODELS / "htdemucs.yaml").read_text())
    _write(tmp / "models" / "955717e8-8726e21a.th", (MODELS / "955717e8-8726e21a.th").read_bytes()[:5000])


def _second_input_corrupt(tmp: Path) -> None:
    _tone(tmp / "in" / "good.wav")
    _write(tmp / "in" / "bad.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)


def _file_at(rel: str) -> Callable[[Path], None]:
    return lambda tmp: _write(tmp / rel, "a file, not a folder")


SEP = ["separate", "{in}/song.wav", "-m", GAIN, "--model_file_dir", "{models}", "--output_dir", "{out}"]
ROF = ["separate", "{in}/song.wav", "-m", f"{ROFORMER}.ckpt", "--model_file_dir", "{models}", "--output_dir", "{out}"]
BATCH = ["batch", "{in}", "-m", GAIN, "--model_file_dir", "{models}", "--output_dir", "{out}", "--workers", "0",
         "--max-retries", "0"]


def sep_input(name: str) -> list[str]:
    """`separate` on the file `name` of the case's input folder."""
    return [f"{{in}}/{name}" if a == "{in}/song.wav" else a for a in SEP]


CASES: dict[str, Case] = {
    # ---- inputs
    "input missing": Case(sep_input("nothing.wav"), 1, "input not found"),
    "input folder without audio": Case(["separate", "{tmp}/empty_dir", *SEP[2:]], 1, "no audio files",
                                       setup=lambda tmp: (tmp / "empty_dir").mkdir()),
    "input empty file": Case(sep_input("empty.wav"), 1, "empty (0 bytes)", setup=_junk("empty.wav", b"")),
    "input junk .wav": Case(sep_input("junk.wav"), 1, "cannot decode", setup=_junk("junk.wav")),
    "input junk .mp3": Case(sep_input("junk.mp3"), 1, "cannot decode", setup=_junk("junk.mp3")),
    "input junk .flac": Case(sep_input("junk.flac"), 1, "junk.flac", setup=_junk("junk.flac")),
    "input junk .ogg": Case(sep_input("junk.ogg"), 1, "cannot decode", setup=_junk("junk.ogg")),
    "input junk .m4a": Case(sep_input("junk.m4a"), 1, "cannot decode", setup=_junk("junk.m4a")),
    "input riff header, junk body": Case(sep_input("riff.wav"), 1, "riff.wav",
                                         setup=_junk("riff.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)),
    "input wav header only": Case(sep_input("header.wav"), 1, "no audio samples", setup=_header_only),
    "input zero frames": Case(sep_input("zero.wav"), 1, "no audio samples", setup=_zero_frames),
    "input with NaN": Case(sep_input("nan.wav") + ["--output_format", "WAV"], 1, "non-finite", setup=_nan_wav),
    "input with six channels": Case(sep_input("six.wav"), 1, "channels", setup=_six_channels),
    "input is the output folder's file": Case(sep_input("song.wav") + ["--output_dir", "{in}/song.wav"], 1,
                                              "output directory"),
    "one good, one corrupt input": Case(["separate", "{in}/good.wav", "{in}/bad.wav", *SEP[2:]], 1,
                                        "1 input(s) of 2 failed", setup=_second_input_corrupt, written=("good",)),
    # ---- values that can only be wrong
    "sample rate 1": Case(SEP + ["--sample_rate", "1"], 2, "8000"),
    "sample rate 0": Case(SEP + ["--sample_rate", "0"], 2, "8000"),
    "sample rate negative": Case(SEP + ["--sample_rate", "-5"], 2, "sample_rate"),
    "sample rate not a number": Case(SEP + ["--sample_rate", "fast"], 2, "sample_rate"),
    "mp3 bitrate 5k": Case(SEP + ["--output_format", "MP3", "--output_bitrate", "5k"], 2, "32k to 320k"),
    "mp3 bitrate 9999k": Case(SEP + ["--output_format", "MP3", "--output_bitrate", "9999k"], 2, "32k to 320k"),
    "opus bitrate 1k": Case(SEP + ["--output_format", "OPUS", "--output_bitrate", "1k"], 2, "OPUS"),
    "bitrate not a bitrate": Case(SEP + ["--output_format", "MP3", "--output_bitrate", "loud"], 2, "output_bitrate"),
    "output format unknown": Case(SEP + ["--output_format", "XYZ"], 2, "XYZ"),
    "output bit depth 12": Case(SEP + ["--output_bit_depth", "12"], 2, "output_bit_depth"),
    "normalization 0": Case(SEP + ["--normalization", "0"], 2, "normalization"),
    "normalization 2": Case(SEP + ["--normalization", "2"], 2, "normalization"),
    "amplification negative": Case(SEP + ["--amplification", "-1"], 2, "amplification"),
    "chunk duration 0": Case(SEP + ["--chunk_duration", "0"], 2, "chunk_duration"),
    "chunk duration negative": Case(SEP + ["--chunk_duration", "-3"], 2, "chunk_duration"),
    "custom name empty": Case(SEP + ["--custom_output_names", '{"Vocals": ""}'], 2, "leaves no file name"),
    "custom name only dots": Case(SEP + ["--custom_output_names", '{"Vocals": "..."}'], 2, "leaves no file name"),
    "custom names the same": Case(SEP + ["--custom_output_names", '{"Vocals": "a", "Instrumental": "a"}'], 2,
                                  "both named"),
    "custom names differ in case only": Case(SEP + ["--custom_output_names", '{"Vocals": "a", "Instrumental": "A"}'],
                                             2, "both named"),
    "custom name same as other stem's default": Case(
        SEP + ["--custom_output_names", '{"Vocals": "song_(Instrumental)_vocal_split"}'], 2, "both be written"),
    "custom names not json": Case(SEP + ["--custom_output_names", "{Vocals: a}"], 2, "not valid JSON"),
    "custom names a list": Case(SEP + ["--custom_output_names", '["a"]'], 2, "JSON object"),
    "custom name a number": Case(SEP + ["--custom_output_names", '{"Vocals": 3}'], 2, "JSON object"),
    "single stem the model lacks": Case(SEP + ["--single_stem", "piano"], 2, "piano"),
    "model unknown": Case(["separate", "{in}/song.wav", "-m", "vocal_splt.gain", *SEP[4:]], 1, "vocal_splt"),
    "flag unknown": Case(SEP + ["--frobnicate", "3"], 2, "frobnicate"),
    "plugin param out of range": Case(SEP + ["--gain_scale", "99"], 2, "gain_scale"),
    "ensemble algorithm unknown": Case(SEP + ["--extra_models", "local_trio.gain", "--ensemble_algorithm", "nope"], 2,
                                       "nope"),
    "ensemble preset unknown": Case(SEP + ["--ensemble_preset", "nope"], 2, "nope"),
    "extra model unknown": Case(SEP + ["--extra_models", "missing_model.gain"], 1, "missing_model"),
    "STEM format with a 2-stem model": Case(SEP + ["--output_format", "STEM"], 2, "STEM"),
    "device that is not there": Case(SEP + ["--device", "cuda:7"], 1, "cuda:7"),
    "VSEP_OFFLINE neither true nor false": Case(SEP, 2, "VSEP_OFFLINE", env={"VSEP_OFFLINE": "maybe"}),
    # ---- where things are written
    "output dir is a file": Case(SEP[:-1] + ["{tmp}/afile"], 1, "afile", setup=_file_at("afile")),
    "output dir under a file": Case(SEP[:-1] + ["{tmp}/afile/out"], 1, "afile", setup=_file_at("afile")),
    "directory in the way of the second stem": Case(SEP, 1, "in the way", setup=_in_the_way("Instrumental")),
    "directory in the way of the first stem": Case(SEP, 1, "in the way", setup=_in_the_way("Vocals")),
    "directory in the way of an ensemble stem": Case(
        SEP + ["--extra_models", "local_trio.gain"], 1, "in the way",
        setup=_in_the_way("Vocals", model="custom_ensemble_vocal_split_local_trio")),
    # ---- model directory and environment
    "XDG_CACHE_HOME is a file": Case(["separate", "{in}/song.wav", "-m", GAIN, "--output_dir", "{out}"], 1,
                                     "model directory", setup=_file_at("cachefile"),
                                     env={"XDG_CACHE_HOME": "{tmp}/cachefile"}),
    "HOME is a file": Case(["separate", "{in}/song.wav", "-m", GAIN, "--output_dir", "{out}"], 1, "model directory",
                           setup=_file_at("homefile"), env={"HOME": "{tmp}/homefile", "XDG_CACHE_HOME": ""}),
    "VSEP_MODEL_DIR is a file": Case(["separate", "{in}/song.wav", "-m", GAIN, "--output_dir", "{out}"], 1,
                                     "model directory", setup=_file_at("mfile"), env={"VSEP_MODEL_DIR": "{tmp}/mfile"}),
    "model_file_dir is a file": Case(SEP[:5] + ["{tmp}/mfile", *SEP[6:]], 1, "model directory",
                                     setup=_file_at("mfile")),
    "model missing while offline": Case(["separate", "{in}/song.wav", "-m", "UVR-MDX-NET-Inst_HQ_3.onnx",
                                         "--model_file_dir", "{tmp}/none", "--output_dir", "{out}"], 1, "offline"),
    # ---- broken model files (every loader: torch .ckpt/.pth/.th, onnx, yaml)
    "checkpoint corrupt": Case(ROF, 1, "not a valid checkpoint", setup=_roformer(b"\x00garbage" * 500)),
    "checkpoint truncated": Case(ROF, 1, "not a valid checkpoint", setup=_roformer_truncated),
    "checkpoint empty": Case(ROF, 1, "", setup=_roformer(b"")),
    "checkpoint holding code": Case(ROF, 1, "was refused, nothing in it ran", setup=_roformer_with_code),
    "checkpoint without tensors": Case(ROF, 1, "holds no state dict", setup=_roformer_no_tensors),
    "yaml not yaml": Case(ROF, 1, "not a valid yaml config", setup=_roformer(yaml_text="audio: [unclosed\n  - : :")),
    "yaml with a python object tag": Case(ROF, 1, "yaml", setup=_roformer(
        yaml_text="audio: !!python/object/apply:os.system ['echo hi']\n")),
    "yaml not a config": Case(ROF, 1, ROFORMER, setup=_roformer(yaml_text="just a string\n")),
    "vr pth corrupt": Case(["separate", "{in}/song.wav", "-m", "2_HP-UVR.pth", *SEP[4:]], 1, "2_HP-UVR",
                           setup=_model_file("2_HP-UVR.pth", b"\x80\x02junk" * 100)),
    "onnx corrupt": Case(["separate", "{in}/song.wav", "-m", "UVR-MDX-NET-Inst_HQ_3.onnx", *SEP[4:]], 1,
                         "UVR-MDX-NET-Inst_HQ_3", setup=_model_file("UVR-MDX-NET-Inst_HQ_3.onnx", b"not onnx" * 50)),
    "demucs th truncated": Case(["separate", "{in}/song.wav", "-m", "htdemucs.yaml", *SEP[4:]], 1, "955717e8",
                                setup=_demucs_broken),
    "plugin model file not its format": Case(["separate", "{in}/song.wav", "-m", "broken.gain", *SEP[4:]], 1,
                                             "broken.gain", setup=_model_file("broken.gain", b"{not json")),
    # ---- batch: only whole sets of the inputs that succeed
    "batch one corrupt input": Case(BATCH, 1, "1 of 3 file(s) failed", setup=_second_input_corrupt,
                                    written=("good", "song")),
    "batch directory in the way of a stem": Case(
        BATCH, 1, "in the way", written=("good", "song"),
        setup=lambda tmp: (_tone(tmp / "in" / "good.wav"), _tone(tmp / "in" / "other.wav"),
                           _in_the_way("Instrumental", name="other")(tmp))),
    "batch sample rate 1": Case(BATCH + ["--sample_rate", "1"], 2, "8000"),
    "batch custom bitrate too low": Case(BATCH + ["--output_format", "MP3", "--output_bitrate", "5k"], 2, "32k"),
    "batch max retries negative": Case(BATCH[:-1] + ["-1"], 2, "max-retries"),
    "batch workers negative": Case(BATCH[:-3] + ["-1", "--max-retries", "0"], 2, "workers"),
    "batch input folder without audio": Case(["batch", "{tmp}/empty_dir", *BATCH[2:]], 2, "no audio files",
                                             setup=lambda tmp: (tmp / "empty_dir").mkdir()),
    # ---- succeed with one warning
    "truncated wav": Case(sep_input("cut.wav"), 0, setup=_truncated("wav"), written=("cut",), warns="looks truncated"),
    "truncated flac": Case(sep_input("cut.flac"), 0, setup=_truncated("flac"), written=("cut",),
                           warns="looks truncated"),
    "truncated mp3": Case(sep_input("cut.mp3"), 0, setup=_truncated("mp3"), written=("cut",), warns="looks truncated"),
    "custom name for a stem the model lacks": Case(SEP + ["--custom_output_names", '{"Drums": "d"}'], 0,
                                                   written=("song",), warns="has no stem 'Drums'"),
}


def _fill(text: str, tmp: Path) -> str:
    return (text.replace("{in}", str(tmp / "in")).replace("{out}", str(tmp / "out"))
            .replace("{models}", str(tmp / "models")).replace("{tmp}", str(tmp)))


def _prepare(tmp: Path, case: Case) -> tuple[list[str], dict[str, str]]:
    models = tmp / "models"
    models.mkdir()
    (models / "vocal_split.gain").write_text(json.dumps({"stems": {"Vocals": 0.25, "Instrumental": 0.75}}))
    (models / "local_trio.gain").write_text(json.dumps({"stems": {"Drums": 0.5, "Bass": 0.3, "Other": 0.2}}))
    _tone(tmp / "in" / "song.wav")
    if case.setup:
        case.setup(tmp)
    return [_fill(a, tmp) for a in case.args], {k: _fill(v, tmp) for k, v in case.env.items()}


def snapshot(folder: Path) -> set[str]:
    """Every name under `folder` (hidden ones too), relative; folders end with '/'."""
    if not folder.exists():
        return set()
    return {str(p.relative_to(folder)) + ("/" if p.is_dir() else "") for p in folder.rglob("*")
            if ".vsep-batch" not in p.relative_to(folder).parts}


def owned_leftovers(folder: Path, pid: int) -> list[str]:
    """Temporary names of process `pid` in `folder` (vsep_core.publish's naming)."""
    from vsep_core.publish import owner_of

    return [p.name for p in folder.iterdir() if (owner_of(p.name) or (None,))[0] == pid] if folder.exists() else []


def expected_sets(stems: tuple[str, ...], model: str = "vocal_split") -> set[str]:
    """The names of the whole stem sets of the inputs `stems`."""
    return {f"{s}_({stem})_{model}.flac" for s in stems for stem in GAIN_STEMS}


def error_lines(text: str) -> list[str]:
    """The lines of `text` that report an error."""
    return [line for line in text.splitlines() if line.startswith("error:") or line.startswith("ERROR")]


@pytest.mark.parametrize("name", list(CASES))
def test_fault(name: str, tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture,
               monkeypatch: pytest.MonkeyPatch) -> None:
    from vsep_core.cli import run

    case = CASES[name]
    args, env = _prepare(tmp_path, case)
    for key, value in {"VSEP_OFFLINE": "1", **env}.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "out"
    before = snapshot(out)
    capsys.readouterr()
    with caplog.at_level("INFO", logger="vsep"):
        rc = run(args)
    printed = capsys.readouterr()
    errors = error_lines(printed.err) + [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "Traceback" not in printed.err, printed.err
    assert rc == case.rc, printed.err
    if case.rc:
        assert len(errors) == 1, printed.err
        assert case.says.lower() in errors[0].lower(), errors[0]
    else:
        assert errors == [], errors
        warned = [r.getMessage() for r in caplog.records if case.warns in r.getMessage()]
        assert len(warned) == 1, [r.getMessage() for r in caplog.records]
    after = snapshot(out)
    assert after - before == expected_sets(case.written), sorted(after ^ before)
    assert before <= after
    assert owned_leftovers(out, os.getpid()) == []
    assert owned_leftovers(Path(tempfile.gettempdir()), os.getpid()) == []


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 60


# ------------------------------------------------------------------------------- a full disk, for real

def _run_with_file_size_limit(args: list[str], limit: int) -> subprocess.CompletedProcess:
    """`vsep` in a subprocess that may write no file larger than `limit` bytes (RLIMIT_FSIZE: writes past it
    fail with EFBIG, as on a full disk; SIGXFSZ ignored so that the write fails instead of killing)."""
    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "vsep_core.cli", *args], capture_output=True, text=True,
                          env=cli_env(), timeout=300, preexec_fn=limit_files)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_disk_full_while_writing_the_second_stem_leaves_no_stem(tmp_path: Path) -> None:
    case = Case(SEP + ["--output_format", "WAV", "--output_bit_depth", "16"], 1)
    args, _ = _prepare(tmp_path, case)
    args = [a for a in args]
    free = subprocess.run([sys.executable, "-m", "vsep_core.cli", *args[:-4], "--output_dir", str(tmp_path / "free"),
                           "--output_format", "FLAC"], capture_output=True, text=True, env=cli_env(), timeout=300)
    assert free.returncode == 0, free.stderr
    sizes = {p.name.split("_(")[1].split(")")[0]: p.stat().st_size for p in (tmp_path / "free").iterdir()}
    assert sizes["Vocals"] < sizes["Instrumental"]  # the quieter stem compresses smaller, and is written first
    limit = (sizes["Vocals"] + sizes["Instrumental"]) // 2
    out = tmp_path / "out"
    proc = _run_with_file_size_limit([*args[:-4], "--output_dir", str(out), "--output_format", "FLAC"], limit)
    assert proc.returncode == 1, (sizes, limit, proc.stderr)
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "Instrumental" in lines[0] and "disk full" in lines[0], lines[0]
    assert snapshot(out) == set()  # not the first stem either, and no temporary file


@pytest.mark.slow
def test_onnx_runtime_says_nothing_where_home_is_not_writable(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("a file, not a folder")
    proc = subprocess.run([sys.executable, "-c", "from vsep_core.checkpoints import quiet_onnxruntime; "
                           "print(quiet_onnxruntime().get_available_providers())"],
                          capture_output=True, text=True, env=cli_env(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=""),
                          timeout=120)
    assert proc.returncode == 0 and "CPUExecutionProvider" in proc.stdout
    assert proc.stderr.strip() == "", proc.stderr


@pytest.mark.slow
def test_vr_on_a_ten_frame_input_writes_ten_frame_stems(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from vsep_core.cli import run

    models = tmp_path / "models"
    models.mkdir()
    for name in ("2_HP-UVR.pth", "vr_model_data.json"):
        (models / name).write_bytes((MODELS / name).read_bytes())
    song = tmp_path / "ten.wav"
    sf.write(str(song), make_tone(1.0)[:10], 44100)
    out = tmp_path / "out"
    rc = run(["separate", str(song), "-m", "2_HP-UVR.pth", "--model_file_dir", str(models), "--output_dir", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert sorted(sf.info(str(p)).frames for p in out.iterdir()) == [10, 10]


# ------------------------------------------------------------------------ every reader of model files, directly

def _garbage(path: Path) -> Path:
    path.write_bytes(b"\x00garbage" * 500)
    return path


def _truncated_copy(source: Path, path: Path) -> Path:
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    return path


def _with_code(path: Path) -> Path:
    from vsep_core.testlib import save_with_code

    return save_with_code(path, {})


def _read_torch(path: Path) -> object:
    from vsep_core.checkpoints import torch_load

    return torch_load(path)


def _read_state(path: Path) -> object:
    from vsep_core.checkpoints import read_state_dict

    return read_state_dict(path)


def _read_vr(path: Path) -> object:
    from vsep_vr.nets import load_state

    return load_state(str(path))


def _read_mdxc(path: Path) -> object:
    from vsep_mdxc.model import read_checkpoint

    return read_checkpoint(path)


def _read_demucs(path: Path) -> object:
    from vsep_demucs.checkpoint import read_package

    return read_package(path)


def _read_onnx(path: Path) -> object:
    from vsep_core.checkpoints import onnx_session

    return onnx_session(path, providers=["CPUExecutionProvider"])


def _read_yaml(path: Path) -> object:
    from vsep_core.helpers import load_yaml

    return load_yaml(path)


def _read_msst_yaml(path: Path) -> object:
    from vsep_core.msst import read_msst_yaml

    return read_msst_yaml(path)


def _bad_yaml(path: Path) -> Path:
    path.write_text("audio: [unclosed\n  - : :")
    return path


def _code_yaml(path: Path) -> Path:
    path.write_text("audio: !!python/object/apply:os.system ['echo hi']\n")
    return path


READERS = {
    "torch_load garbage": (_read_torch, lambda d: _garbage(d / "m.ckpt"), "not a valid checkpoint"),
    "torch_load truncated": (_read_torch, lambda d: _truncated_copy(MODELS / f"{ROFORMER}.ckpt", d / "m.ckpt"),
                             "not a valid checkpoint"),
    "torch_load empty": (_read_torch, lambda d: _write(d / "m.ckpt", b"") or d / "m.ckpt", "not a valid checkpoint"),
    "torch_load code": (_read_torch, lambda d: _with_code(d / "m.ckpt"), "was refused, nothing in it ran"),
    "state dict code": (_read_state, lambda d: _with_code(d / "m.pt"), "was refused"),
    "VR .pth garbage": (_read_vr, lambda d: _garbage(d / "m.pth"), "not a valid checkpoint"),
    "VR .pth truncated": (_read_vr, lambda d: _truncated_copy(MODELS / "2_HP-UVR.pth", d / "m.pth"),
                          "not a valid checkpoint"),
    "VR .pth code": (_read_vr, lambda d: _with_code(d / "m.pth"), "was refused"),
    "MDXC .ckpt truncated": (_read_mdxc, lambda d: _truncated_copy(MODELS / "MDX23C-8KFFT-InstVoc_HQ.ckpt",
                                                                   d / "m.ckpt"), "not a valid checkpoint"),
    "Demucs .th truncated": (_read_demucs, lambda d: _truncated_copy(MODELS / "955717e8-8726e21a.th",
                                                                     d / "955717e8-8726e21a.th"),
                             "not a valid checkpoint"),
    "Demucs .th code": (_read_demucs, lambda d: _with_code(d / "955717e8-8726e21a.th"), "was refused"),
    "ONNX garbage": (_read_onnx, lambda d: _garbage(d / "m.onnx"), "not a valid ONNX model"),
    "ONNX truncated": (_read_onnx, lambda d: _truncated_copy(MODELS / "UVR-MDX-NET-Inst_HQ_3.onnx", d / "m.onnx"),
                       "not a valid ONNX model"),
    "yaml invalid": (_read_yaml, lambda d: _bad_yaml(d / "m.yaml"), "not a valid yaml config"),
    "yaml with code": (_read_yaml, lambda d: _code_yaml(d / "m.yaml"), "not a valid yaml config"),
    "MSST yaml invalid": (_read_msst_yaml, lambda d: _bad_yaml(d / "m.yaml"), "not a valid yaml config"),
}


@pytest.mark.parametrize("name", list(READERS))
def test_model_file_reader(name: str, tmp_path: Path) -> None:
    from vsep_core.errors import VsepError

    read, make, says = READERS[name]
    path = make(tmp_path)
    with pytest.raises((VsepError, ValueError)) as info:
        read(path)
    message = str(info.value)
    assert "\n" not in message and says in message, message
    assert "delete" in message and str(path) in message, message
