"""One timed run of vsep in a fresh process: ``python vsep_runner.py JOB.json``.

Uses vsep's library facade (``vsep_core.Separator``) exactly as a user would. The result JSON
(``job["result"]``) holds ``load_s`` (Separator + load_model), ``separate_s`` (separate(), which
writes the stems), ``peak_rss_mb`` (VmHWM right after separate()), and, when asked:

- ``stems``: {stem: npy path}: the float stems as vsep handed them to its writer (kept by
  reference during the run, saved after the timing) for the parity check;
- ``calls``: how often each torch network (or ONNX Runtime session) ran, per input shape,
  recorded with a forward pre-hook (no measurable cost);
- ``flops``: model FLOPs of the whole separation, counted after the timing with
  ``torch.utils.flop_counter.FlopCounterMode`` on one forward per distinct input shape
  (under FakeTensorMode, so no real compute; a real forward when that fails) times the
  number of calls.

``precision`` ("fp32", "bf16", "fp16", "auto") is passed to the Separator (``--precision``); ``bf16: true``
is ``precision: "bf16"``. ``cpu_s`` is the process's CPU time over separate() (user + system, all
threads): on a shared machine the steadier figure.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
import types
from collections import Counter
from pathlib import Path
from typing import Any

from measure import save_stems, timed_separate, vm_hwm_mb, write_result

HERE = Path(__file__).resolve().parent


def find_modules(root: Any, depth: int = 5) -> list[Any]:
    """Top-level torch modules reachable from `root` (attributes, containers, closures)."""
    import torch

    found: list[Any] = []
    seen: set[int] = set()

    def visit(obj: Any, level: int) -> None:
        if id(obj) in seen or level > depth or obj is None:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.nn.Module):
            found.append(obj)
        elif isinstance(obj, dict):
            for v in obj.values():
                visit(v, level + 1)
        elif isinstance(obj, (list, tuple, set)):
            for v in obj:
                visit(v, level + 1)
        elif isinstance(obj, types.FunctionType):
            for cell in obj.__closure__ or ():
                try:
                    visit(cell.cell_contents, level + 1)
                except ValueError:  # empty cell
                    pass
        elif isinstance(obj, types.MethodType):
            visit(obj.__func__, level + 1)
            visit(obj.__self__, level + 1)
        elif isinstance(obj, functools.partial):
            visit(obj.func, level + 1)
            visit(obj.args, level + 1)
            visit(obj.keywords, level + 1)
        elif type(obj).__module__.split(".")[0].startswith("vsep") and isinstance(getattr(obj, "__dict__", None),
                                                                                   dict):
            for k, v in list(vars(obj).items()):
                if not k.startswith("__"):
                    visit(v, level + 1)

    visit(root, 0)
    inner = {id(sub) for m in found for sub in m.modules() if sub is not m}
    return [m for m in found if id(m) not in inner]


def _shape_key(args: tuple) -> tuple:
    import torch

    return tuple((tuple(a.shape), str(a.dtype)) for a in args if isinstance(a, torch.Tensor))


def record_calls(model: Any) -> tuple[dict[int, Any], Counter, Any]:
    """Count forward calls per (network, input shapes); also wraps an ONNX network callable."""
    modules = {id(m): m for m in find_modules(model)}
    calls: Counter = Counter()
    for key, module in modules.items():
        def hook(mod: Any, args: tuple, _key: int = key) -> None:
            calls[(_key, _shape_key(args))] += 1
        module.register_forward_pre_hook(hook)
    network = getattr(model, "network", None)
    onnx_wrapper = None
    if network is not None and not modules and callable(network):
        def wrapped(spec: Any, _net: Any = network) -> Any:
            calls[("onnx", _shape_key((spec,)))] += 1
            return _net(spec)
        model.network = wrapped
        onnx_wrapper = network
    return modules, calls, onnx_wrapper


def count_flops(modules: dict[int, Any], calls: Counter, onnx_factory: Any = None) -> dict[str, Any]:
    """FLOPs of every recorded call: one counted forward per distinct shape, times its count."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    total = 0
    per_shape = []
    for (key, shapes), n in calls.items():
        module = modules.get(key) if key != "onnx" else (onnx_factory() if onnx_factory else None)
        if module is None:
            continue
        inputs = [torch.zeros(s, dtype=getattr(torch, d.split(".")[-1])) for s, d in shapes]
        flops = None
        how = "fake"
        try:
            from torch._subclasses.fake_tensor import FakeTensorMode

            with torch.inference_mode(), FakeTensorMode(allow_non_fake_inputs=True) as fm, \
                    FlopCounterMode(display=False) as fc:
                module(*[fm.from_tensor(x) for x in inputs])
            flops = fc.get_total_flops()
        except Exception:  # noqa: BLE001 - some ops have no fake kernel: count a real pass
            how = "real"
            with torch.inference_mode(), FlopCounterMode(display=False) as fc:
                module(*inputs)
            flops = fc.get_total_flops()
        total += flops * n
        per_shape.append({"network": type(module).__name__, "shapes": [list(s) for s, _ in shapes], "calls": n,
                          "flops_per_call": flops, "counted": how})
    return {"total": total, "per_shape": per_shape}


def main() -> int:
    job = json.load(open(sys.argv[1]))
    result: dict[str, Any] = {"tool": "vsep", "ok": False}
    t_start = time.perf_counter()
    import torch  # noqa: F401 - imported first, so that import_s counts it

    from vsep_core import Separator, pipeline

    result["import_s"] = time.perf_counter() - t_start
    captured: dict[str, Any] = {}
    original_write = pipeline.write_stem

    def write_stem(data: Any, path: Path, *args: Any, **kwargs: Any) -> Path:
        if job.get("capture"):
            stem = str(path.name).split("_(", 1)[-1].split(")_", 1)[0]
            captured[stem] = data
        return original_write(data, path, *args, **kwargs)

    pipeline.write_stem = write_stem

    t0 = time.perf_counter()
    kwargs = dict(job.get("separator_kwargs") or {})
    precision = job.get("precision") or ("bf16" if job.get("bf16") else None)
    if precision:
        kwargs["precision"] = precision
    sep = Separator(log_level=logging.WARNING, model_file_dir=job["model_dir"], output_dir=job["output_dir"],
                    offline=True, device=job.get("device") or None, **kwargs)
    sep.load_model(job["model"])
    result["load_s"] = time.perf_counter() - t0
    result["rss_after_load_mb"] = vm_hwm_mb()
    model = sep.model_instance
    modules, calls, onnx_net = record_calls(model) if job.get("flops") else ({}, Counter(), None)
    timed_separate(sep, job["input"], result)

    if job.get("capture"):
        result["stems"] = save_stems(captured, job["capture"], "vsep")
    if job.get("flops"):
        factory = None
        if onnx_net is not None and job.get("onnx_torch_twin") == "mdxnet":
            sys.path.insert(0, str(HERE.parent))
            from checkpoints import mdxnet_module

            factory = mdxnet_module
        result["calls"] = [{"network": "onnx" if k == "onnx" else type(modules[k]).__name__,
                            "shapes": [list(s) for s, _ in shapes], "count": n}
                           for (k, shapes), n in calls.items()]
        result["flops"] = count_flops(modules, calls, factory)
    return write_result(job, result)


if __name__ == "__main__":
    sys.exit(main())
