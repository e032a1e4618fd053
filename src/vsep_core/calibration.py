"""How fast this machine runs models: a short calibration (`vsep bench --quick`) and the time model.

The calibration measures, per device and precision, the throughput of the four kinds of work a
model's cost is counted in (:class:`vsep_core.api.ModelCost`): matmul FLOP/s, convolution FLOP/s,
bytes/s of the memory-bound ops (elementwise, norms, softmax), and the fixed time of one operator
dispatch. A model's time per second of audio is then

    matmul_flops / matmul_rate + conv_flops / conv_rate + other_bytes / memory_rate + ops * op_time

Every figure is the median of several short repeats (the machine may be busy with other work). Each
installed family's small calibration network is run for real and set against this estimate: a check
that is saved and shown, not a correction (a small network's overheads do not scale to a real one).
The result is saved as JSON in the user cache directory, one file per device.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsep_core.api import ModelCost
from vsep_core.errors import DeviceError, UsageError

REPEATS = 7
PRECISIONS = ("float32", "bfloat16", "float16")


@dataclass
class Rates:
    """Measured throughputs of one device at one precision."""

    matmul_gflops: float
    conv_gflops: float
    memory_gbps: float
    op_us: float


@dataclass
class Calibration:
    """A device's calibration: rates per precision, the family checks, and when and where it was made."""

    device: str
    description: str
    threads: int
    rates: dict[str, Rates]
    families: dict[str, dict[str, float]] = field(default_factory=dict)
    base_memory_mb: float = 0.0
    created: str = ""
    torch_version: str = ""

    def seconds_per_audio_second(self, cost: ModelCost, precision: str = "float32") -> float:
        """Estimated compute seconds per second of audio of a model of this `cost` on this device."""
        r = self.rates.get(precision) or self.rates["float32"]
        return (cost.matmul_flops / (r.matmul_gflops * 1e9) + cost.conv_flops / (r.conv_gflops * 1e9)
                + cost.other_bytes / (r.memory_gbps * 1e9) + cost.ops * r.op_us * 1e-6)

    def peak_memory_mb(self, cost: ModelCost) -> float:
        """Estimated peak memory of a separation: runtime base + weights + one pass's activations."""
        return self.base_memory_mb + (cost.weight_bytes + cost.activation_bytes) / 2**20

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Read :meth:`to_dict`'s output; a clear error when it is not a calibration."""
        try:
            rates = {k: Rates(**v) for k, v in data["rates"].items()}
            if "float32" not in rates:
                raise KeyError("rates.float32")
            return cls(device=str(data["device"]), description=str(data.get("description", "")),
                       threads=int(data.get("threads", 0)), rates=rates, families=dict(data.get("families", {})),
                       base_memory_mb=float(data.get("base_memory_mb", 0.0)), created=str(data.get("created", "")),
                       torch_version=str(data.get("torch_version", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"not a vsep calibration file (missing or bad {exc}); make one with vsep bench "
                             f"--quick") from exc


def device_kind(device: str) -> str:
    """``cuda:1`` -> ``cuda``: calibrations are kept per kind of device."""
    return device.split(":")[0]


def calibration_path(device: str) -> Path:
    """The calibration file of `device`."""
    from vsep_core import config

    return config.calibration_dir() / f"{device_kind(device)}.json"


def load_calibration(device: str | None = None, path: str | Path | None = None) -> Calibration:
    """The saved calibration of `device` (default cpu) or of the file `path`; a clear error when there is none."""
    target = Path(path) if path else calibration_path(device or "cpu")
    try:
        return Calibration.from_dict(json.loads(target.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise UsageError(f"no calibration for {device or 'cpu'} at {target}: run vsep bench --quick"
                         f"{' --device ' + device if device and device != 'cpu' else ''} first") from exc
    except ValueError as exc:
        raise UsageError(f"{target} is not valid JSON ({exc}); run vsep bench --quick again") from exc


def save_calibration(cal: Calibration, path: str | Path | None = None) -> Path:
    """Write `cal` (atomically) to `path` or its device's file; returns the path."""
    from vsep_core.helpers import publish_atomically

    target = Path(path) if path else calibration_path(cal.device)
    target.parent.mkdir(parents=True, exist_ok=True)
    return publish_atomically(json.dumps(cal.to_dict(), indent=1).encode(), target)


# ---------------------------------------------------------------------------------------------
# measuring


def cpu_clock() -> float:
    """This process's CPU seconds (all threads) divided by torch's thread count: on a machine busy with
    other work this is the wall time the work would take alone, where the wall clock is not."""
    import torch

    return time.process_time() / max(1, torch.get_num_threads())


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": cpu_clock}


def _median_time(fn: Callable[[], Any], sync: Callable[[], None], repeats: int = REPEATS,
                 clock: str = "wall") -> float:
    """Median time of `fn` on `clock` over `repeats` runs after one warm-up run."""
    now = CLOCKS[clock]
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = now()
        fn()
        sync()
        times.append(now() - t0)
    return statistics.median(times)


def _sync_for(device: str) -> Callable[[], None]:
    import torch

    if device.startswith("cuda"):
        return lambda: torch.cuda.synchronize()
    if device.startswith("mps"):
        return lambda: torch.mps.synchronize()
    return lambda: None


def measure_rates(device: str, dtype_name: str, scale: float = 1.0, clock: str = "wall") -> Rates:
    """Matmul, convolution, memory-bound and per-op rates of `device` at `dtype_name` (median of repeats).

    `scale` < 1 shrinks the problems (tests); sizes are chosen so that each repeat is a few tens of
    milliseconds on a laptop CPU. `clock`: "wall", or "cpu" (:func:`cpu_clock`, on a shared CPU).
    """
    import torch
    import torch.nn.functional as F

    dtype = getattr(torch, dtype_name)
    sync = _sync_for(device)
    big = device_kind(device) != "cpu"
    n = max(64, int((4096 if big else 1024) * scale))
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    with torch.inference_mode():
        mm_s = _median_time(lambda: torch.mm(a, b), sync, clock=clock)
        channels, side = (256, 128) if big else (64, int(max(16, 128 * scale)))
        x = torch.randn(1, channels, side, side * 2, device=device, dtype=dtype)
        w = torch.randn(channels, channels, 3, 3, device=device, dtype=dtype)
        conv_s = _median_time(lambda: F.conv2d(x, w, padding=1), sync, clock=clock)
        conv_flops = 2 * channels * channels * 9 * side * side * 2
        m = max(4096, int((1 << 24 if big else 1 << 21) * scale))
        u = torch.randn(m // 512, 512, device=device, dtype=dtype)
        v = torch.randn(m // 512, 512, device=device, dtype=dtype)
        ln = torch.nn.LayerNorm(512, device=device, dtype=dtype)

        def memory_mix() -> None:
            torch.add(u, v)
            F.gelu(u)
            torch.softmax(u, dim=-1)
            ln(u)

        mem_s = _median_time(memory_mix, sync, clock=clock)
        mem_bytes = (3 + 2 + 2 + 2) * u.numel() * u.element_size()  # read + written, as cost.py counts them
        tiny = torch.ones(4, device=device, dtype=dtype)

        def many_ops() -> None:
            for _ in range(200):
                torch.add(tiny, tiny)

        op_s = _median_time(many_ops, sync, clock=clock)
    return Rates(matmul_gflops=2 * n**3 / mm_s / 1e9, conv_gflops=conv_flops / conv_s / 1e9,
                 memory_gbps=mem_bytes / mem_s / 1e9, op_us=op_s / 200 * 1e6)


def precisions_for(device: str) -> list[str]:
    """Precisions worth calibrating on `device`: float32 always; bfloat16/float16 where they are native."""
    if device_kind(device) == "cuda":
        return list(PRECISIONS)
    if device_kind(device) == "cpu":
        from vsep_core.devices import cpu_has_native_bf16

        return ["float32", "bfloat16"] if cpu_has_native_bf16() else ["float32"]
    return ["float32"]


def _base_memory_mb() -> float:
    """This process's resident memory now (torch imported): the floor every separation starts from."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def describe_device(device: str) -> str:
    """A short human description of `device`."""
    import torch

    if device_kind(device) == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def check_family(name: str, passes: list, cal: Calibration, clock: str = "wall") -> dict[str, float]:
    """Run an architecture's small calibration network for real and set it against the time model
    (``estimated_s``, ``measured_s``, their ``ratio``; ``op_us``: the time per operator that would explain
    the difference, for the record)."""
    import torch

    from vsep_core.cost import count_cost

    cost = count_cost(passes)
    sync = _sync_for(cal.device)
    measured = 0.0
    for p in passes:
        torch.manual_seed(0)
        net = p.build().to(cal.device).eval()
        inputs = [torch.randn(s, device=cal.device) * 0.1 for s in p.input_shapes]
        with torch.inference_mode():
            measured += _median_time(lambda net=net, inputs=inputs: net(*inputs), sync, repeats=3, clock=clock)
    r = cal.rates["float32"]
    per_pass = len(passes) / cost.passes
    compute = (cost.matmul_flops / (r.matmul_gflops * 1e9) + cost.conv_flops / (r.conv_gflops * 1e9)
               + cost.other_bytes / (r.memory_gbps * 1e9)) * per_pass
    ops = cost.ops * per_pass
    op_us = max(r.op_us, (measured - compute) / ops * 1e6) if ops else r.op_us
    estimated = compute + ops * r.op_us * 1e-6
    return {"estimated_s": estimated, "measured_s": measured, "ratio": measured / estimated if estimated else 0.0,
            "op_us": op_us}


def calibrate(device: str = "cpu", families: bool = True, scale: float = 1.0, clock: str = "wall",
              log: Callable[[str], None] | None = None) -> Calibration:
    """Measure `device` (see the module docstring). `families`: also run each installed family's check;
    `clock`: "wall" (an idle machine) or "cpu" (a shared CPU, see :func:`cpu_clock`)."""
    import datetime

    import torch

    from vsep_core import plugins

    say = log or (lambda _msg: None)
    kind = device_kind(device)
    if kind not in ("cpu", "cuda", "mps"):
        raise UsageError(f"cannot calibrate device {device!r}: use cpu, cuda, cuda:N or mps")
    if kind == "cuda" and not torch.cuda.is_available() or kind == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"{device} was asked for but this machine has none; calibrate cpu, or run vsep bench "
                          f"--quick --device {kind} on a machine that has one")
    rates = {}
    for precision in precisions_for(device):
        rates[precision] = measure_rates(device, precision, scale, clock)
        r = rates[precision]
        say(f"{device} {precision}: matmul {r.matmul_gflops:.0f} GFLOP/s, conv {r.conv_gflops:.0f} GFLOP/s, "
            f"memory-bound ops {r.memory_gbps:.1f} GB/s, {r.op_us:.1f} us per op")
    cal = Calibration(device=device_kind(device), description=describe_device(device),
                      threads=torch.get_num_threads(), rates=rates, base_memory_mb=_base_memory_mb(),
                      created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      torch_version=torch.__version__)
    if families:
        for name, arch in plugins.architectures().items():
            if arch.calibration_passes is None:
                continue
            try:
                check = check_family(name, arch.calibration_passes(), cal, clock)
            except Exception as exc:  # noqa: BLE001 - one family's broken check must not stop the others
                say(f"{name} small network: skipped ({str(exc).splitlines()[0] if str(exc) else exc})")
                continue
            cal.families[name] = check
            say(f"{name} small network: estimated {check['estimated_s'] * 1000:.0f} ms per pass, measured "
                f"{check['measured_s'] * 1000:.0f} ms")
    return cal
