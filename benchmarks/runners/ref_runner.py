"""One timed run of the reference implementation (audio-separator) in a fresh process.

Runs with the reference environment's python (benchmarks/.refenv): ``python ref_runner.py JOB.json``.
The job names the model, model directory, input, output directory and Separator keyword
arguments; the result JSON (written to ``job["result"]``) holds:

- ``load_s``: wall time of ``Separator(...)`` + ``load_model()``;
- ``separate_s``: wall time of ``separate()`` (the reference writes its stems inside it);
- ``peak_rss_mb``: the process's peak resident set (VmHWM) right after ``separate()``;
- ``stems``: {stem: npy path} of the float stems exactly as the reference handed them to its
  writer (``CommonSeparator.final_process``), saved after the timing when ``capture`` is set.

Two things are changed in the reference, neither of them on the compute path: its writer's
float stems are kept by reference (a dict entry, no copy) so they can be compared, and the
sha256-prefix check of Demucs ``<sig>-<checksum>.th`` files is off (the benchmark's random
htdemucs file carries the real model's file name; the oracle brute-forced a ZIP-comment nonce
instead, which takes many CPU minutes).
"""

import json
import logging
import sys
import time

from measure import save_stems, timed_separate, vm_hwm_mb, write_result


def stub_torchvision() -> bool:
    """Stand in for torchvision when its import fails.

    PyPI's torchvision wheels are built for the CUDA torch; on the CPU build of torch their
    compiled ops do not load and ``import torchvision`` raises (operator torchvision::nms does
    not exist). The reference imports onnx2torch, which imports torchvision only for its NMS
    converter (no MDX-Net graph has an NMS node), so an empty stand-in changes nothing it runs.
    """
    try:
        import torchvision  # noqa: F401
        return False
    except Exception:  # noqa: BLE001 - RuntimeError from the op registrations
        import types

        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        class _Ops(types.ModuleType):
            def __getattr__(self, name):
                if name.startswith("__"):
                    raise AttributeError(name)

                def missing(*args, **kwargs):
                    raise NotImplementedError(f"torchvision.ops.{name} (stand-in torchvision)")

                return missing

        stub = types.ModuleType("torchvision")
        stub.ops = _Ops("torchvision.ops")
        sys.modules["torchvision"] = stub
        sys.modules["torchvision.ops"] = stub.ops
        return True


def main() -> int:
    job = json.load(open(sys.argv[1]))
    result = {"tool": "reference", "ok": False}
    t_start = time.perf_counter()
    result["torchvision_stub"] = stub_torchvision()
    from audio_separator.separator import Separator, common_separator
    from audio_separator.separator.uvr_lib_v5.demucs import repo as demucs_repo

    demucs_repo.check_checksum = lambda path, checksum: None
    captured = {}
    original_final = common_separator.CommonSeparator.final_process

    def final_process(self, stem_path, source, stem_name):
        if job.get("capture"):
            captured[stem_name] = source
        return original_final(self, stem_path, source, stem_name)

    common_separator.CommonSeparator.final_process = final_process
    result["import_s"] = time.perf_counter() - t_start

    t0 = time.perf_counter()
    kwargs = dict(job.get("separator_kwargs") or {})
    sep = Separator(log_level=logging.WARNING, model_file_dir=job["model_dir"], output_dir=job["output_dir"],
                    **kwargs)
    sep.load_model(job["model"])
    result["load_s"] = time.perf_counter() - t0
    result["rss_after_load_mb"] = vm_hwm_mb()

    timed_separate(sep, job["input"], result)

    if job.get("capture"):
        result["stems"] = save_stems(captured, job["capture"], "ref", transpose_long=True)
    return write_result(job, result)


if __name__ == "__main__":
    sys.exit(main())
