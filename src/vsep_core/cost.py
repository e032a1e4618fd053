"""Counting what a model costs per second of audio, and the packaged cost tables of the catalogue.

An architecture says which network passes one second of audio takes (``Architecture.cost_passes``,
a list of :class:`vsep_core.api.CostPass`); :func:`count_cost` builds each network on torch's meta
device (no weights, no compute) and runs one pass under ``torch.utils.flop_counter.FlopCounterMode``
and a dispatch mode of its own that tallies the other ops' memory traffic, the operators dispatched
and the live activation memory. Plugins keep the result beside their catalogue (``data/costs.json``,
written by ``python -m vsep_core.cost``) and attach it to their records with :func:`attach_costs`;
models that are on disk but in no table are counted on demand (:func:`cost_of`) and cached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vsep_core.api import Architecture, CostPass, LoadContext, ModelCost, ModelRecord

log = logging.getLogger("vsep")

#: aten ops the flop counter counts as convolutions (all its other counted ops are matmuls/attention)
_CONV_OPS = ("convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
             "cudnn_convolution", "mkldnn_convolution")


def cost_to_dict(cost: ModelCost) -> dict[str, float]:
    """A cost as plain JSON numbers."""
    return dataclasses.asdict(cost)


def cost_from_dict(data: Mapping[str, Any]) -> ModelCost:
    """The inverse of :func:`cost_to_dict` (unknown keys are ignored)."""
    names = {f.name for f in dataclasses.fields(ModelCost)}
    return ModelCost(**{k: v for k, v in data.items() if k in names})


def attach_costs(records: Iterable[ModelRecord], table: Mapping[str, Mapping[str, Any]]) -> list[ModelRecord]:
    """Records with ``cost`` from `table` (file name -> :func:`cost_to_dict` output); a record's own wins."""
    out = []
    for record in records:
        entry = table.get(record.filename)
        out.append(dataclasses.replace(record, cost=cost_from_dict(entry)) if entry and record.cost is None
                   else record)
    return out


def packaged_costs(package: str) -> dict[str, Any]:
    """``data/costs.json`` of the installed package `package` (file name -> cost), or {} when it has none."""
    from importlib import resources

    path = resources.files(package).joinpath("data", "costs.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _tally_mode() -> Any:
    """A dispatch mode counting operators, other ops' bytes and the peak of live activation bytes."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    def nbytes(t: Any) -> int:
        return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0

    class Tally(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops = 0
            self.other_bytes = 0
            self.live = 0
            self.peak = 0

        def _free(self, n: int) -> None:
            self.live -= n

        def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            name = func._schema.name.split("::")[-1]
            # fake tensors run istft as a Python loop over frames (minutes for one real-size pass): its
            # output is made from its shape instead
            out = _istft_like(args, kwargs or {}) if name == "istft" else func(*args, **(kwargs or {}))
            self.ops += 1
            if func.is_view or name.endswith("_") and not name.startswith("_"):
                return out  # views and in-place ops allocate nothing
            written = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
            if name not in _CONV_OPS and name not in ("mm", "bmm", "addmm", "baddbmm", "matmul", "linear",
                                                      "_scaled_dot_product_flash_attention_for_cpu",
                                                      "_scaled_dot_product_efficient_attention",
                                                      "_scaled_dot_product_flash_attention",
                                                      "_scaled_dot_product_cudnn_attention"):
                read = sum(nbytes(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor))
                self.other_bytes += read + sum(nbytes(t) for t in written)
            for t in written:
                n = nbytes(t)
                self.live += n
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._free, n)
            return out

    return Tally()


def _istft_like(args: tuple, kwargs: dict) -> Any:
    """An empty tensor shaped like ``torch.istft``'s result for these arguments."""
    import torch

    names = ("input", "n_fft", "hop_length", "win_length", "window", "center", "normalized", "onesided", "length",
             "return_complex")
    a = dict(zip(names, args, strict=False), **kwargs)
    spec, n_fft = a["input"], int(a["n_fft"])
    hop = int(a.get("hop_length") or n_fft // 4)
    frames = spec.shape[-1]
    length = a.get("length")
    if length is None:
        length = hop * (frames - 1) + (0 if a.get("center", True) else n_fft)
    dtype = spec.dtype if a.get("return_complex") else spec.real.dtype
    return torch.empty((*spec.shape[:-2], int(length)), dtype=dtype, device=spec.device)


@contextlib.contextmanager
def _no_init() -> Any:
    """Make ``torch.nn.init``'s in-place initialisers no-ops (a real-size network is built in a blink)."""
    import torch

    saved = {n: f for n, f in vars(torch.nn.init).items() if n.endswith("_") and not n.startswith("_") and callable(f)}
    try:
        for n in saved:
            setattr(torch.nn.init, n, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)


def _count_pass(cost_pass: CostPass) -> tuple[float, float, int, int, int, int]:
    """(matmul FLOPs, conv FLOPs, other bytes, ops, weight bytes, peak activation bytes) of one pass.

    The network is built with its initialisers switched off (weights are never read) and run under
    FakeTensorMode: tensors have shapes, devices and dtypes but no data, so one real-size pass costs
    no compute (and, unlike the meta device, code that moves tensors to the host for an STFT runs).
    """
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    with _no_init():
        net = cost_pass.build()
    net.eval()
    weights = sum(t.numel() * t.element_size() for t in [*net.parameters(), *net.buffers()])
    tally = _tally_mode()
    with torch.inference_mode(), FakeTensorMode(allow_non_fake_inputs=True):
        inputs = [torch.zeros(shape) for shape in cost_pass.input_shapes]
        with FlopCounterMode(display=False) as counter, tally:
            out = net(*inputs)
        del out, inputs
    conv = sum(n for op, n in counter.get_flop_counts().get("Global", {}).items()
               if str(op).split(".")[1 if str(op).startswith("aten.") else 0] in _CONV_OPS)
    total = counter.get_total_flops()
    return float(total - conv), float(conv), tally.other_bytes, tally.ops, int(weights), int(tally.peak)


def count_cost(passes: list[CostPass]) -> ModelCost:
    """Count a model's cost per second of audio from its architecture's pass list (see the module docstring)."""
    if not passes:
        raise ValueError("no network passes to count")
    mm = conv = other = ops = n_passes = 0.0
    weights = activations = 0
    for cost_pass in passes:
        p_mm, p_conv, p_other, p_ops, p_weights, p_act = _count_pass(cost_pass)
        rate = float(cost_pass.passes_per_second)
        mm, conv, other, ops = mm + p_mm * rate, conv + p_conv * rate, other + p_other * rate, ops + p_ops * rate
        n_passes += rate
        weights += p_weights  # every network of a bag is held at once
        activations = max(activations, p_act)
    return ModelCost(matmul_flops=mm, conv_flops=conv, other_bytes=other, ops=ops, passes=n_passes,
                     weight_bytes=weights, activation_bytes=activations)


def load_context(record: ModelRecord, model_path: Path, config_path: Path | None, model_data: dict[str, Any],
                 arch: Architecture, params: Any = None) -> LoadContext:
    """A LoadContext for counting (CPU device; default params unless given)."""
    from vsep_core.api import Device

    return LoadContext(record=record, model_path=model_path, model_dir=model_path.parent, config_path=config_path,
                       params=params if params is not None else arch.default_params(), device=Device("cpu", ()),
                       model_data=model_data)


def cost_of_context(arch: Architecture, ctx: LoadContext) -> ModelCost | None:
    """The counted cost of the model `ctx` describes, or None when its architecture cannot say."""
    if arch.cost_passes is None:
        return None
    return count_cost(arch.cost_passes(ctx))


def _cache_file() -> Path:
    from vsep_core import config

    return config.user_cache_dir() / "model_costs.json"


def cost_of(record: ModelRecord, model_dir: str | Path | None = None, params: Any = None) -> ModelCost | None:
    """A record's cost (default params unless given): counted from its files when they are in `model_dir`
    (as loading would read them; cached in the user cache dir by path, size and time), else the one its
    plugin packaged with the record, else None (unknown)."""
    from vsep_core import modeldata, plugins
    from vsep_core.errors import VsepError

    arch = plugins.architectures().get(record.architecture)
    names = [f.name for f in record.files] or [record.filename]
    local = model_dir is not None and all((Path(model_dir) / n).is_file() for n in names)
    if not local or arch is None or arch.cost_passes is None:
        return record.cost if params is None else None
    model_dir = Path(model_dir)  # type: ignore[arg-type]
    stats = [(model_dir / n).stat() for n in names]
    key = f"{(model_dir / record.filename).resolve()}|{sum(s.st_size for s in stats)}|" \
          f"{int(max(s.st_mtime for s in stats))}"
    cache = _read_cache()
    if params is None and key in cache:
        return cost_from_dict(cache[key])
    try:
        model_path, config_path, model_data = modeldata.model_data_for(record, {}, model_dir)
        cost = cost_of_context(arch, load_context(record, model_path, config_path, model_data, arch, params))
    except (VsepError, ValueError, KeyError, TypeError, RuntimeError, NotImplementedError) as exc:
        log.info("cannot count the cost of %s: %s", record.filename, exc)
        return record.cost if params is None else None
    if cost is not None and params is None:
        cache[key] = cost_to_dict(cost)
        _write_cache(cache)
    return cost


def _read_cache() -> dict[str, Any]:
    try:
        return json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict[str, Any]) -> None:
    from vsep_core.helpers import publish_atomically

    path = _cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    publish_atomically(json.dumps(cache, indent=1, sort_keys=True).encode(), path)


def packaged_config_path(record: ModelRecord) -> Path | None:
    """The local (``file:``) copy of a record's config that its plugin packages, if any."""
    from urllib.parse import unquote, urlparse

    for f in record.files:
        if f.name == record.config:
            for source in f.sources:
                if source.startswith("file:"):
                    path = Path(unquote(urlparse(source).path))
                    if path.is_file():
                        return path
    return None


def count_catalogue(architecture: str, model_dir: Path | None = None) -> dict[str, dict[str, float]]:
    """Costs of every catalogue record of `architecture` whose config its plugin packages, or whose files are
    in `model_dir` (file name -> :func:`cost_to_dict`); the others are left out (unknown)."""
    from vsep_core import catalog, modeldata, plugins
    from vsep_core.modeldata import load_model_data_from_yaml

    arch = plugins.get_architecture(architecture)
    table: dict[str, dict[str, float]] = {}
    counted: dict[tuple, dict[str, float]] = {}  # records sharing a config and a pass plan cost the same
    for record in catalog.all_records():
        if record.architecture != architecture:
            continue
        config = packaged_config_path(record)
        names = [f.name for f in record.files] or [record.filename]
        on_disk = model_dir is not None and all((model_dir / n).is_file() for n in names)
        if config is None and not on_disk or arch.cost_passes is None:
            continue
        try:
            if on_disk:
                assert model_dir is not None
                ctx = load_context(record, *modeldata.model_data_for(record, {}, model_dir), arch)
                config = ctx.config_path or ctx.model_path
            else:
                ctx = load_context(record, Path(record.filename), config, load_model_data_from_yaml(config), arch)
            passes = arch.cost_passes(ctx)
            key = (str(config), tuple((p.input_shapes, p.passes_per_second) for p in passes))
            if key not in counted:
                counted[key] = cost_to_dict(count_cost(passes))
                log.info("%s: %.0f GFLOP per second of audio", record.filename,
                         (counted[key]["matmul_flops"] + counted[key]["conv_flops"]) / 1e9)
        except Exception as exc:  # noqa: BLE001 - a config this counter cannot build stays unknown
            log.warning("%s: not counted (%s)", record.filename, str(exc).splitlines()[0] if str(exc) else exc)
            continue
        table[record.filename] = counted[key]
    return table


def main(argv: list[str] | None = None) -> int:
    """``python -m vsep_core.cost ARCHITECTURE OUT.json [--model-dir DIR]``: write an architecture's cost table
    (its records with a packaged config, and those whose files are in DIR); OUT keeps entries not counted now."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("architecture")
    parser.add_argument("out", type=Path)
    parser.add_argument("--model-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    table.update(count_catalogue(args.architecture, args.model_dir))
    args.out.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(table)} {args.architecture} models counted -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
