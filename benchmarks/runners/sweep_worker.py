"""Run a list of parity-sweep cases in ONE process, with either tool: ``python sweep_worker.py JOBS.json``.

The same file runs in the reference's environment (``"tool": "reference"``: audio-separator's
``Separator``) and in vsep's (``"tool": "vsep"``: ``vsep_core.Separator``), so both get exactly the
same keyword arguments per case. For every case it writes ``<case dir>/<tool>/result.json``:
``{"ok", "error", "stems": {stem: npy path}, "lengths": {stem: samples}, "mix_peak", "seconds"}``.

- reference: the float stems exactly as it handed them to its writer (``CommonSeparator.final_process``),
  or, for runs that the reference chunks itself (``chunk_duration``), its written merged files;
  ``mix_peak`` is the peak of the mix as it loads it (librosa, at ``sample_rate``), which the MDX-Net
  level correction (docs/upstream-behaviour.md 8.1) needs.
- vsep: its written stems (``output_bit_depth`` 32: float WAV, so nothing is quantised).
"""

import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path


def _read(path):
    import numpy as np
    import soundfile as sf

    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


def _stem_of(name: str) -> str:
    import re

    m = re.search(r"_\(([^)]+)\)", name)
    return m.group(1) if m else Path(name).stem


def _setup_reference():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ref_runner import stub_torchvision

    stub_torchvision()
    from audio_separator.separator import Separator, common_separator
    from audio_separator.separator.uvr_lib_v5.demucs import repo as demucs_repo

    demucs_repo.check_checksum = lambda path, checksum: None
    captured = {}
    original_final = common_separator.CommonSeparator.final_process

    def final_process(self, stem_path, source, stem_name):
        captured[stem_name] = source
        return original_final(self, stem_path, source, stem_name)

    common_separator.CommonSeparator.final_process = final_process
    return Separator, captured


def run_case(tool, case, Separator, captured):
    import numpy as np

    out_dir = Path(case["dir"]) / tool
    out_dir.mkdir(parents=True, exist_ok=True)
    kwargs = dict(case["kwargs"])
    result = {"ok": False, "error": None, "stems": {}, "lengths": {}}
    t0 = time.perf_counter()
    try:
        if tool == "vsep":
            kwargs.setdefault("output_bit_depth", 32)
        sep = Separator(log_level=logging.ERROR, model_file_dir=case["model_dir"], output_dir=str(out_dir / "files"),
                        **kwargs)
        sep.load_model(case["model"])
        captured.clear()
        if tool == "reference" and case.get("ref_seed") is not None:
            import random

            random.seed(case["ref_seed"])  # the reference draws Demucs shifts from the global RNG (8.9)
        outputs = sep.separate(case["input"])
        files = {}
        for o in outputs:
            p = Path(o)
            p = p if p.is_absolute() else out_dir / "files" / p
            files[_stem_of(p.name)] = p
        if tool == "reference" and not kwargs.get("chunk_duration"):
            arrays = {}
            for name, source in captured.items():
                arr = np.asarray(source, dtype=np.float32)
                if arr.ndim == 1:
                    arr = arr[None]
                elif arr.shape[0] > arr.shape[1]:
                    arr = arr.T
                arrays[name] = arr
        else:
            arrays = {name: _read(p) for name, p in files.items()}
        for name, arr in arrays.items():
            path = out_dir / f"{name}.npy"
            np.save(path, np.ascontiguousarray(arr))
            result["stems"][name] = str(path)
            result["lengths"][name] = int(arr.shape[-1])
        if tool == "reference":
            import librosa

            mix, _ = librosa.load(case["input"], sr=kwargs.get("sample_rate", 44100), mono=False)
            result["mix_peak"] = float(np.max(np.abs(mix))) if mix.size else 0.0
        result["ok"] = True
    except BaseException as exc:  # noqa: BLE001 - a case's failure is a result, the worker goes on
        result["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        result["traceback"] = traceback.format_exc()[-2000:]
    result["seconds"] = round(time.perf_counter() - t0, 2)
    (out_dir / "result.json").write_text(json.dumps(result))
    return result


def main() -> int:
    jobs = json.loads(Path(sys.argv[1]).read_text())
    tool = jobs["tool"]
    if tool == "reference":
        Separator, captured = _setup_reference()
    else:
        from vsep_core import Separator

        captured = {}
    logging.disable(logging.WARNING)
    for case in jobs["cases"]:
        res = run_case(tool, case, Separator, captured)
        print(f"{tool} {case['name']}: {'ok' if res['ok'] else res['error']} ({res['seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
