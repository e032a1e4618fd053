"""NI Stems files (--output_format STEM): written for real, read back with PyAV and checked as readers check them.

`reader_checks` walks a file the way Mixxx's stem reader does (StemInfoImporter: the
``moov/udta/stem`` box found by 32-bit box headers from the top of the file, its JSON with a
positive integer version and four {name, color} stems; SoundSourceSTEM: the first audio stream
is the mix, exactly four audio streams after it, every stream stereo, the stems with one codec
and one sample rate, every stream with a known duration) and as NI's spec and Stem Creator
lay it out (only the mix track enabled, AAC or ALAC, 44.1/48 kHz, one length for all tracks).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.conftest import REFERENCE, make_tone
from vsep_core import mp4boxes, stemfile
from vsep_core.audio import write_audio
from vsep_core.errors import UsageError
from vsep_core.separator import Separator

GAINS = {"Bass": 0.3, "Drums": 0.4, "Other": 0.2, "Vocals": 0.1}  # not in track order, on purpose
TRACK_GAINS = [1.0, 0.4, 0.3, 0.2, 0.1]  # mix, Drums, Bass, Melody (= Other), Vocals


# -- a reader's checks ----------------------------------------------------------------------------------------


def _mixxx_find_stem_box(data: bytes) -> bytes | None:
    """Mixxx's seekTillAtom(moov/udta/stem): walk boxes by their 32-bit headers, descend on a name match."""
    offset, end = 0, len(data)
    for name in (b"moov", b"udta", b"stem"):
        while offset + 8 <= end:
            size, kind = struct.unpack_from(">I4s", data, offset)
            if kind == name:
                end, offset = offset + size, offset + 8
                break
            offset += size
        else:
            return None
    return data[offset:end]


def _tkhd_flags(data: bytes) -> list[int]:
    moov = mp4boxes.find(mp4boxes.parse(data), b"moov")
    traks = [b for b in mp4boxes.children(moov) if b.kind == b"trak"]
    return [int.from_bytes(mp4boxes.find(mp4boxes.children(t), b"tkhd").payload[1:4], "big") for t in traks]


def _ilst(data: bytes) -> dict[bytes, list[mp4boxes.Box]]:
    moov = mp4boxes.find(mp4boxes.parse(data), b"moov")
    udta = mp4boxes.find(mp4boxes.children(moov), b"udta")
    meta = mp4boxes.find(mp4boxes.children(udta), b"meta")
    ilst = mp4boxes.find(mp4boxes.children(meta), b"ilst")
    items: dict[bytes, list[mp4boxes.Box]] = {}
    for item in mp4boxes.children(ilst):
        items.setdefault(item.kind, []).append(item)
    return items


def _data_of(item: mp4boxes.Box) -> tuple[int, bytes]:
    data = mp4boxes.find(mp4boxes.children(item), b"data")
    return struct.unpack(">I", data.payload[:4])[0], data.payload[8:]


def decode(path: Path) -> list[np.ndarray]:
    """Every audio stream decoded on its own, float32 [2, n] as FFmpeg gives it (priming already skipped)."""
    out = []
    with av.open(str(path)) as container:
        count = len(container.streams.audio)
    for index in range(count):
        with av.open(str(path)) as container:
            frames = [f.to_ndarray() for f in container.decode(container.streams.audio[index])]
        data = np.concatenate(frames, axis=1)
        if data.dtype == np.int16:
            data = data / np.float32(32768)
        elif data.dtype == np.int32:
            data = data / np.float32(2**31)
        out.append(data.astype(np.float32))
    return out


def reader_checks(path: Path) -> dict:
    """Check `path` as a DJ application's reader does; returns what it found."""
    data = path.read_bytes()
    assert path.name.endswith(".stem.mp4")
    payload = _mixxx_find_stem_box(data)
    assert payload, "no moov/udta/stem box"
    doc = json.loads(payload.rstrip(b"\0").decode("utf-8"))
    assert isinstance(doc.get("version"), int) and doc["version"] >= 1
    assert isinstance(doc["stems"], list) and len(doc["stems"]) == 4
    for stem in doc["stems"]:
        assert stem["name"] and re.fullmatch(r"#[0-9A-Fa-f]{6}", stem["color"])
    for effect in ("compressor", "limiter"):
        assert isinstance(doc["mastering_dsp"][effect]["enabled"], bool)
    with av.open(str(path)) as container:
        streams = container.streams.audio
        assert len(streams) == 5, "the mix and exactly four stems"
        others = [s for s in container.streams if s.type != "audio"]
        assert all(int(s.disposition) & 0x400 for s in others), "besides audio, only cover art"
        info = [(s.codec_context.name, s.rate, s.codec_context.layout.nb_channels, s.duration, s.time_base)
                for s in streams]
        smpb = container.metadata.get("iTunSMPB")
    codecs, rates, channels, durations, bases = zip(*info, strict=True)
    assert set(codecs) <= {"aac", "alac"} and len(set(codecs)) == 1
    assert set(rates) <= {44100, 48000} and len(set(rates)) == 1
    assert set(channels) == {2}
    assert None not in durations and len(set(durations)) == 1
    length = durations[0] * bases[0] * rates[0]
    assert length.denominator == 1
    assert _tkhd_flags(data)[0] & 1 and not any(f & 1 for f in _tkhd_flags(data)[1:]), "only the mix is enabled"
    return {"manifest": doc, "codec": codecs[0], "rate": rates[0], "length": int(length), "smpb": smpb,
            "ilst": _ilst(data)}


def check_lengths(path: Path, found: dict) -> list[np.ndarray]:
    """Decoded tracks: equal lengths, each the declared length plus at most the declared padding."""
    tracks = decode(path)
    assert len({t.shape for t in tracks}) == 1
    extra = tracks[0].shape[1] - found["length"]
    if found["codec"] == "aac":
        fields = found["smpb"].split()
        priming, padding, total = int(fields[1], 16), int(fields[2], 16), int(fields[3], 16)
        assert (priming, total) == (1024, found["length"]) and extra == padding and 0 <= padding < 1024
    else:
        assert extra == 0 and found["smpb"] is None
    return [t[:, :found["length"]] for t in tracks]


def snr_db(got: np.ndarray, want: np.ndarray) -> float:
    """Signal-to-error ratio of `got` against `want`, in dB."""
    return float(10 * np.log10(np.sum(want.astype(np.float64) ** 2) / np.sum((got - want).astype(np.float64) ** 2)))


# -- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture
def four_stem_dir(gain_model_dir: Path) -> Path:
    """gain_model_dir plus a 4-stem and a 6-stem gain model."""
    (gain_model_dir / "four.gain").write_text(json.dumps({"stems": GAINS}))
    six = {"Drums": 0.3, "Bass": 0.2, "Other": 0.1, "Vocals": 0.2, "Guitar": 0.1, "Piano": 0.1}
    (gain_model_dir / "six.gain").write_text(json.dumps({"stems": six}))
    return gain_model_dir


def separator(model_dir: Path, out: Path, **kw) -> Separator:
    """A Separator writing stem files."""
    return Separator(model_file_dir=model_dir, output_dir=out, output_format="STEM", offline=True, device="cpu", **kw)


# -- layouts and options --------------------------------------------------------------------------------------


def test_layouts_parse_by_name_and_by_text():
    default = stemfile.parse_layout(None)
    assert [s.name for s in default] == ["Drums", "Bass", "Melody", "Vocals"]
    assert [s.sources for s in default] == [("drums",), ("bass",), ("*",), ("vocals",)]
    assert [s.color for s in default] == list(stemfile.SLOT_COLORS)
    assert stemfile.parse_layout("Vocals-Instrumental")[0].sources == ("*",)
    custom = stemfile.parse_layout("Kick=drums#00ff00, Low=bass, Keys=piano+guitar#123abc, Silence=")
    assert [(s.name, s.sources, s.color) for s in custom] == [
        ("Kick", ("drums",), "#00FF00"), ("Low", ("bass",), "#AD65FF"), ("Keys", ("piano", "guitar"), "#123ABC"),
        ("Silence", (), "#FA8D29")]
    for bad, words in [("Drums=drums,Bass=bass,Vocals=vocals", "exactly 4"), ("a=b,c=d,e=f,g", "NAME=STEMS"),
                       ("a=b#12345,c=d,e=f,g=h", "#RRGGBB"), ("a=*,b=*,c=,d=", "only one"),
                       ("a=*+drums,b=,c=,d=", "stands alone")]:
        with pytest.raises(UsageError, match=words):
            stemfile.parse_layout(bad)


def test_stems_are_assigned_by_name_rest_and_canonical_name():
    default = stemfile.parse_layout(None)
    assert stemfile.assign_stems(default, list(GAINS)) == [["Drums"], ["Bass"], ["Other"], ["Vocals"]]
    six = ["drums", "bass", "other", "vocals", "guitar", "piano"]
    assert stemfile.assign_stems(default, six)[2] == ["other", "guitar", "piano"]
    two = stemfile.parse_layout("vocals-instrumental")
    assert stemfile.assign_stems(two, ["Vocals", "No Vocals"]) == [["No Vocals"], [], [], ["Vocals"]]
    assert stemfile.assign_stems(two, list(GAINS)) == [["Bass", "Drums", "Other"], [], [], ["Vocals"]]
    summed = stemfile.parse_layout("Inst=instrumental,A=,B=,Vox=vocals")
    assert stemfile.assign_stems(summed, ["vocals", "other"])[0] == ["other"]  # a vocals model's "other"
    with pytest.raises(UsageError, match="4-stem model.*vocals-instrumental"):
        stemfile.assign_stems(default, ["Vocals", "Instrumental"])
    with pytest.raises(UsageError, match="'vocals' stem.*gives Echo, No Echo\\): use a 4-stem model.*or name"):
        stemfile.assign_stems(two, ["Echo", "No Echo"])
    with pytest.raises(UsageError, match="takes the 'drums' stem.*gives Echo, No Echo\\): use a 4-stem model.*or name"):
        stemfile.assign_stems(default, ["Echo", "No Echo"])


def test_encoding_is_aac_at_the_bitrate_or_alac_at_the_bit_depth():
    assert stemfile.encoding_for(None, None, 44100) == stemfile.StemEncoding("aac", 256000)
    assert stemfile.encoding_for("320k", None, 48000) == stemfile.StemEncoding("aac", 320000)
    assert stemfile.encoding_for(None, 24, 44100) == stemfile.StemEncoding("alac", 0, 24)
    for bitrate, depth, words in [("1000k", None, "529k"), ("8k", None, "32k to"), ("256k", 16, "not both"),
                                  (None, 32, "16 or 24"), ("fast", None, "bad --output_bitrate")]:
        with pytest.raises(UsageError, match=words):
            stemfile.encoding_for(bitrate, depth, 44100)


def test_bad_requests_fail_before_any_work_with_one_line(four_stem_dir, audio_file, tmp_path):
    song = audio_file("song.wav")
    for kwargs, words in [({"output_single_stem": "Vocals"}, "--single_stem"), ({"sample_rate": 22050}, "44100"),
                          ({"extract_instrumental": True}, "--extract_instrumental"),
                          ({"output_bitrate": "900k"}, "AAC can carry"), ({"stem_layout": "a=b"}, "exactly 4")]:
        with pytest.raises(UsageError, match=words) as err:
            separator(four_stem_dir, tmp_path / "out", **kwargs)
        assert "\n" not in str(err.value)
    sep = separator(four_stem_dir, tmp_path / "out")
    with pytest.raises(UsageError, match="4-stem model"):
        sep.load_model("vocal_split.gain")  # refused when the model is loaded
    sep.load_model("four.gain")
    with pytest.raises(UsageError, match="--custom_output_names"):
        sep.separate(str(song), custom_output_names={"Vocals": "lead"})
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    with pytest.raises(UsageError, match="stemfile"):
        write_audio(tmp_path / "x.stem.mp4", np.zeros((2, 10), np.float32), 44100, "STEM")


@pytest.mark.slow
def test_cli_refuses_a_two_stem_model_in_one_line(gain_model_dir, audio_file, tmp_path, capsys):
    from vsep_core.cli import main

    rc = main([str(audio_file("song.wav")), "-m", "vocal_split.gain", "--model_file_dir", str(gain_model_dir),
               "--output_format", "STEM", "--output_dir", str(tmp_path / "out"), "--offline"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and err[0].startswith("error: ") and "4-stem model" in err[0], err
    assert not (tmp_path / "out").exists()
    rc = main(["batch", str(tmp_path), "--output_dir", str(tmp_path / "stems"), "-m", "vocal_split.gain",
               "--model_file_dir", str(gain_model_dir), "--output_format", "STEM", "--offline", "--workers", "0"])
    err = capsys.readouterr().err
    assert rc != 0 and "could not load the model" in err and "4-stem model" in err, err
    assert not list((tmp_path / "stems").glob("*.mp4"))


# -- written files --------------------------------------------------------------------------------------------


def test_stem_file_tracks_lengths_and_boxes(four_stem_dir, tmp_path):
    """A 48 kHz mono input, a 4-stem (gain) model, AAC at 44.1 kHz: every reader check, and what each track holds."""
    mono = make_tone(1.7, 48000, channels=1, amplitude=0.6)[:, 0]
    song = tmp_path / "My Song.flac"
    with sf.SoundFile(str(song), "w", 48000, 1, subtype="PCM_24") as f:
        f.title, f.artist, f.album = "A Title", "An Artist", "An Album"  # Vorbis comments
        f.write(mono)
    sep = separator(four_stem_dir, tmp_path / "out")
    sep.load_model("four.gain")
    [written] = sep.separate(str(song))
    assert Path(written) == tmp_path / "out" / "My Song.stem.mp4"
    found = reader_checks(Path(written))
    out_length = round(mono.size * 44100 / 48000)
    assert (found["codec"], found["rate"], found["length"]) == ("aac", 44100, out_length)
    assert [s["name"] for s in found["manifest"]["stems"]] == ["Drums", "Bass", "Melody", "Vocals"]
    assert _data_of(found["ilst"][b"TAUT"][0]) == (1, b"STEM")
    with av.open(written) as container:
        assert {k: container.metadata.get(k) for k in ("title", "artist", "album")} == {
            "title": "A Title", "artist": "An Artist", "album": "An Album"}
    tracks = check_lengths(Path(written), found)
    mix = soxr.resample(mono, 48000, 44100, quality="HQ")[:out_length]
    for track, gain in zip(tracks, TRACK_GAINS, strict=True):
        assert snr_db(track, np.stack([mix, mix]) * gain) > 20


def test_lossless_alac_mix_is_the_input_bit_for_bit(four_stem_dir, audio_file, tmp_path):
    song = audio_file("song.flac", seconds=1.1, subtype="PCM_16")
    sep = separator(four_stem_dir, tmp_path / "out", output_bit_depth=16, normalization_threshold=1.0)
    sep.load_model("four.gain")
    [written] = sep.separate(str(song))
    found = reader_checks(Path(written))
    assert (found["codec"], found["length"]) == ("alac", sf.info(str(song)).frames)
    tracks = check_lengths(Path(written), found)
    source = sf.read(str(song), dtype="int16")[0].T.astype(np.float32) / 32768
    np.testing.assert_array_equal(tracks[0], source)
    for track, gain in zip(tracks[1:], TRACK_GAINS[1:], strict=True):
        np.testing.assert_allclose(track, source * gain, atol=1.5 / 32768)


def test_tags_bpm_key_and_cover_art_are_carried_over(four_stem_dir, tmp_path):
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x1f\x15\xc4\x89" * 3
    song = tmp_path / "tagged.mp3"
    write_audio(song, make_tone(1.0).T.copy(), 44100, "MP3")
    song.write_bytes(_id3({"TIT2": "Déjà Vu", "TPE1": "The Band", "TBPM": "124", "TKEY": "8A"}, png)
                     + song.read_bytes())
    sep = separator(four_stem_dir, tmp_path / "out")
    sep.load_model("four.gain")
    [written] = sep.separate(str(song))
    found = reader_checks(Path(written))
    items = found["ilst"]
    assert _data_of(items["\xa9nam".encode("latin-1")][0]) == (1, "Déjà Vu".encode())
    assert _data_of(items["\xa9ART".encode("latin-1")][0]) == (1, b"The Band")
    assert _data_of(items[b"tmpo"][0]) == (21, struct.pack(">H", 124))
    assert _data_of(items[b"covr"][0]) == (14, png)
    freeform = {bytes(mp4boxes.find(mp4boxes.children(i), b"name").payload[4:]): _data_of(i)[1] for i in items[b"----"]}
    assert freeform[b"initialkey"] == b"8A" and b"iTunSMPB" in freeform
    with av.open(str(written)) as container:
        assert container.metadata["title"] == "Déjà Vu" and container.metadata["artist"] == "The Band"


def _id3(frames: dict[str, str], png: bytes) -> bytes:
    """An ID3v2.3 tag with text frames and a front-cover APIC frame."""
    body = b""
    for name, text in frames.items():
        payload = b"\x01" + text.encode("utf-16")
        body += name.encode() + struct.pack(">I", len(payload)) + b"\0\0" + payload
    apic = b"\x00image/png\x00\x03\x00" + png
    body += b"APIC" + struct.pack(">I", len(apic)) + b"\0\0" + apic
    size = len(body)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + body


def test_six_stem_model_and_custom_layout(four_stem_dir, audio_file, tmp_path):
    song = audio_file("song.wav", seconds=0.8)
    layout = "Beat=drums#112233,Guitar=guitar,Keys=piano+other,Voice=vocals"
    sep = separator(four_stem_dir, tmp_path / "out", stem_layout=layout, output_bit_depth=24)
    sep.load_model("six.gain")
    [written] = sep.separate(str(song))
    found = reader_checks(Path(written))
    assert [(s["name"], s["color"]) for s in found["manifest"]["stems"]] == [
        ("Beat", "#112233"), ("Guitar", "#AD65FF"), ("Keys", "#3F8BFE"), ("Voice", "#FA8D29")]
    tracks = check_lengths(Path(written), found)
    for track, gain in zip(tracks[1:], [0.3, 0.1, 0.2, 0.2], strict=True):
        np.testing.assert_allclose(track, tracks[0] * gain, atol=3e-4)


@pytest.mark.parametrize("length", [1, 1023, 1025, 44101])
@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("encoding", [stemfile.StemEncoding("aac", 192_000), stemfile.StemEncoding("alac", 0, 24)])
def test_every_track_declares_and_decodes_the_same_length(tmp_path, length, rate, encoding):
    """The writer alone, at awkward lengths: one declared length for all five tracks, sample-exact."""
    rng = np.random.default_rng(length)
    data = [(0.1 * rng.standard_normal((2, length))).astype(np.float32) for _ in range(5)]
    blocks = [iter(np.array_split(d, 3, axis=1)) for d in data]  # uneven blocks, as the resampler gives them
    path = stemfile.write_stem_file(tmp_path / "x.stem.mp4", blocks, rate, length, stemfile.parse_layout(None),
                                    encoding)
    found = reader_checks(path)
    assert (found["codec"], found["rate"], found["length"]) == (encoding.codec, rate, length)
    tracks = check_lengths(path, found)
    if encoding.codec == "alac":
        for got, want in zip(tracks, data, strict=True):
            np.testing.assert_allclose(got, want, atol=1 / 2**23)


def test_reader_checks_reject_files_that_break_the_format(four_stem_dir, audio_file, tmp_path):
    """The checks bite: a plain M4A, a stem file without its stem box, and one with a broken manifest fail them."""
    song = audio_file("song.wav", seconds=0.5)
    plain = tmp_path / "plain.stem.mp4"
    write_audio(plain, make_tone(0.5).T.copy(), 44100, "M4A")
    with pytest.raises(AssertionError):
        reader_checks(plain)
    sep = separator(four_stem_dir, tmp_path / "out")
    sep.load_model("four.gain")
    good = Path(sep.separate(str(song))[0])
    reader_checks(good)
    data = good.read_bytes()
    at = data.rindex(b"stem{")
    for name, broken in [("nobox.stem.mp4", data[:at] + b"stea" + data[at + 4:]),
                         ("badjson.stem.mp4", data[:at + 4] + b"[" + data[at + 5:])]:
        (tmp_path / name).write_bytes(broken)
        with pytest.raises((AssertionError, ValueError)):
            reader_checks(tmp_path / name)


# -- ensembles, batch, the oracle's Demucs model -------------------------------------------------------------


def test_ensemble_writes_one_stem_file(four_stem_dir, audio_file, tmp_path):
    other = {"Drums": 0.2, "Bass": 0.1, "Other": 0.4, "Vocals": 0.3}
    (four_stem_dir / "four_b.gain").write_text(json.dumps({"stems": other}))
    song = audio_file("song.wav", seconds=0.8)
    sep = separator(four_stem_dir, tmp_path / "out", output_bit_depth=24)
    sep.load_model(["four.gain", "four_b.gain"])
    [written] = sep.separate(str(song))
    assert Path(written).name == "song.stem.mp4"
    tracks = check_lengths(Path(written), reader_checks(Path(written)))
    for track, name in zip(tracks[1:], ["Drums", "Bass", "Other", "Vocals"], strict=True):
        np.testing.assert_allclose(track, tracks[0] * (GAINS[name] + other[name]) / 2, atol=3e-4)


def test_batch_makes_a_crate_of_stem_files(four_stem_dir, audio_file, tmp_path, capsys):
    from vsep_core.cli import main

    crate = tmp_path / "crate"
    crate.mkdir()
    for name in ("a.wav", "b.flac"):
        (crate / name).write_bytes(audio_file(name, seconds=0.6).read_bytes())
    rc = main(["batch", str(crate), "--output_dir", str(tmp_path / "stems"), "-m", "four.gain", "--model_file_dir",
               str(four_stem_dir), "--output_format", "STEM", "--device", "cpu", "--offline", "--workers", "0"])
    assert rc == 0, capsys.readouterr()
    written = sorted(p.name for p in (tmp_path / "stems").glob("*.mp4"))
    assert written == ["a.stem.mp4", "b.stem.mp4"]
    for name in written:
        check_lengths(tmp_path / "stems" / name, reader_checks(tmp_path / "stems" / name))


@pytest.mark.slow
@pytest.mark.skipif(not (REFERENCE / "models" / "htdemucs.yaml").exists(), reason="reference oracle not present")
def test_oracle_demucs_model_writes_a_stem_file(tmp_path):
    """The oracle's htdemucs (4 stems) on its 6 s clip: tracks in layout order hold the reference's stems."""
    from vsep_core import plugins

    if "Demucs" not in plugins.architectures():
        pytest.skip("needs the vsep-demucs plugin")
    clip = REFERENCE / "input" / "mardy20s_6s_16bit.flac"
    sep = separator(REFERENCE / "models", tmp_path / "out", demucs_params={"shifts": 0})
    sep.load_model("htdemucs.yaml")
    [written] = sep.separate(str(clip))
    found = reader_checks(Path(written))
    assert [s["name"] for s in found["manifest"]["stems"]] == ["Drums", "Bass", "Melody", "Vocals"]
    assert found["length"] == sf.info(str(clip)).frames
    tracks = check_lengths(Path(written), found)
    assert snr_db(tracks[0], sf.read(str(clip), dtype="float32")[0].T) > 20
    expected = REFERENCE / "expected" / "demucs_shifts0"
    for track, name in zip(tracks[1:], ["Drums", "Bass", "Other", "Vocals"], strict=True):
        assert snr_db(track, np.load(expected / f"{name}.npy")) > 15, name
