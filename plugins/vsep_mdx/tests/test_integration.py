"""vsep-mdx inside core: hash parameters of the oracle file, the Separator facade on mono and 48 kHz inputs."""

from __future__ import annotations

import logging

import numpy as np
import soundfile as sf
from mdx_testlib import ORACLE_MODEL, parity_db

from vsep_core import modeldata


def test_hash_lookup_of_the_oracle_file(reference, oracle_data):
    path = reference / "models" / ORACLE_MODEL
    assert modeldata.get_model_hash(path) == "8570e6f15734ebff0cc447cc5dd78a59"
    arch, params = modeldata.lookup_hash(path, reference / "models")
    assert arch == "MDX"
    assert {k: params[k] for k in oracle_data} == oracle_data


def test_separator_on_mono_and_48k_inputs(reference, oracle_mix, tmp_path):
    from vsep_core.separator import Separator

    mono = tmp_path / "mono.wav"
    sf.write(str(mono), oracle_mix[0, :66150] * 0.5, 44100, subtype="PCM_16")
    hi = tmp_path / "hi.flac"
    sf.write(str(hi), oracle_mix[:, :72000].T, 48000, subtype="PCM_24")
    sep = Separator(log_level=logging.WARNING, model_file_dir=str(reference / "models"),
                    output_dir=str(tmp_path / "out"), output_format="WAV", output_bit_depth=32, offline=True)
    sep.load_model(ORACLE_MODEL)
    assert sep.model_type == "MDX"
    assert sep.model_instance.onnx_providers == ["CPUExecutionProvider"]

    outputs = sep.separate([str(mono), str(hi)])
    assert len(outputs) == 4
    by_name = {p.split("/")[-1]: p for p in outputs}
    vocals, _ = sf.read(by_name["mono_(Vocals)_UVR-MDX-NET-Inst_HQ_3.wav"], dtype="float32", always_2d=True)
    inst, _ = sf.read(by_name["mono_(Instrumental)_UVR-MDX-NET-Inst_HQ_3.wav"], dtype="float32", always_2d=True)
    assert vocals.shape == inst.shape == (66150, 2)
    # quiet input (peak 0.5): stems at the input's level, primary x compensate + secondary = mix
    mix = np.repeat(sf.read(str(mono), dtype="float32", always_2d=True)[0], 2, axis=1)
    db, gain = parity_db(vocals + 1.022 * inst, mix)
    assert db > 80 and abs(gain) < 0.01
    for stem in ("Vocals", "Instrumental"):
        info = sf.info(by_name[f"hi_({stem})_UVR-MDX-NET-Inst_HQ_3.wav"])
        assert (info.samplerate, info.channels, info.frames) == (44100, 2, 66150)  # 72000 * 44.1 / 48
