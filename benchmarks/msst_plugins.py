"""Speed and memory of the BandIt v2 and Apollo plugins: seconds and peak RSS per minute of audio.

Each run is a fresh process of ``runners/vsep_runner.py`` (vsep's ``Separator``, as a user calls it,
writing 16-bit WAV stems). Two model sizes:

- ``tiny``: the MSST oracle's random-weight checkpoints (../shared/msst-reference; the real
  configs with the dimensions shrunk): the same code path, file formats, chunking and buffers, far
  fewer FLOPs. Measures vsep's own overhead and how memory grows with the input.
- ``real``: real-size random-weight checkpoints built from the packaged MSST yamls
  (``config_dnr_bandit_v2_mus64.yaml``: 37.0 M parameters; ``config_apollo.yaml``: 16.5 M) with the
  plugins' own classes, into ``benchmarks/.cache/models/msst`` (git-ignored).

MSST's own inference is not run beside it: its bandit_v2 imports torchaudio, which has no CPU build for
torch 2.13 (see ../shared/msst-reference/README.md), and its parity is checked by
``../shared/tools/check_msst_reference.py`` instead.

    python benchmarks/msst_plugins.py --models tiny --seconds 60
    python benchmarks/msst_plugins.py --models real --case apollo --seconds 6 --overlap 1

The load average is recorded with every result: on a shared machine it dominates the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import checkpoints  # noqa: E402
from run import run_child  # noqa: E402

ROOT = HERE.parent
ORACLE = ROOT.parent / "shared" / "msst-reference" / "models"
CACHE = HERE / ".cache" / "models" / "msst"
RESULTS = HERE / "results" / "msst_plugins.json"

#: case -> (params keyword, oracle checkpoint, packaged yaml, file suffix of the real-size checkpoint)
CASES = {
    "bandit_v2": ("bandit_params", ORACLE / "bandit_v2" / "checkpoint-multi_state_dict.ckpt",
                  ROOT / "plugins/vsep_bandit/src/vsep_bandit/data/config_dnr_bandit_v2_mus64.yaml", ".ckpt"),
    "apollo": ("apollo_params", ORACLE / "apollo" / "apollo_model.ckpt",
               ROOT / "plugins/vsep_apollo/src/vsep_apollo/data/config_apollo.yaml", ".bin"),
}


def real_checkpoint(case: str) -> Path:
    """A real-size random-weight checkpoint (the yaml beside it), built once."""
    import torch

    _, _, yaml_path, suffix = CASES[case]
    directory = CACHE / case
    path = directory / f"bench_{case}{suffix}"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if case == "bandit_v2":
        from vsep_bandit.config import load_yaml, network_config
        from vsep_bandit.model import build_network

        net = build_network(network_config(load_yaml(yaml_path)))
        state = net.state_dict()
    else:
        from vsep_apollo.config import load_yaml, network_config
        from vsep_apollo.network import Apollo

        state = {"state_dict": Apollo(network_config(load_yaml(yaml_path))).state_dict()}
    shutil.copyfile(yaml_path, path.with_suffix(".yaml"))
    torch.save(state, path)
    return path


def tiny_checkpoint(case: str) -> Path:
    """The oracle's checkpoint and yaml, copied under this case's file suffix (an Apollo ``.ckpt`` with a yaml
    would also be claimed by vsep-mdxc, which takes every ``.ckpt`` with a yaml; the published Apollo file is
    a ``.bin``)."""
    _, oracle, _, suffix = CASES[case]
    directory = CACHE / f"{case}_tiny"
    path = directory / f"{oracle.stem}{suffix}"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(oracle.with_suffix(".yaml"), path.with_suffix(".yaml"))
        shutil.copyfile(oracle, path)
    return path


def measure(case: str, models: str, seconds: float, overlap: int | None, timeout: float) -> dict[str, Any]:
    """One fresh-process run; the figures per minute of audio."""
    keyword = CASES[case][0]
    model = real_checkpoint(case) if models == "real" else tiny_checkpoint(case)
    audio = checkpoints.make_input(seconds)
    params = {"overlap": overlap} if overlap else {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        job = {"model": model.name, "model_dir": str(model.parent), "input": str(audio),
               "output_dir": str(work / "out"), "separator_kwargs": {keyword: params} if params else {}}
        load_before = os.getloadavg()[0]
        result = run_child(Path(sys.executable), HERE / "runners" / "vsep_runner.py", job, work, timeout)
    if not result.get("ok"):
        raise RuntimeError(f"{case} ({models}) failed: {result.get('log_tail', '')[-800:]}")
    minutes = seconds / 60.0
    return {"case": case, "models": models, "input_seconds": seconds, "overlap": overlap or "yaml",
            "separate_s": round(result["separate_s"], 2), "load_s": round(result["load_s"], 2),
            "seconds_per_minute": round(result["separate_s"] / minutes, 1),
            "peak_rss_mb": round(result["peak_rss_mb"], 1),
            "rss_after_load_mb": round(result["rss_after_load_mb"], 1),
            "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
            "cpu_count": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main(argv: list[str] | None = None) -> int:
    """Run the selected cases and merge the results into benchmarks/results/msst_plugins.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="bandit_v2,apollo", help="comma-separated: bandit_v2, apollo")
    ap.add_argument("--models", choices=("tiny", "real"), default="tiny")
    ap.add_argument("--seconds", type=float, default=60.0, help="input length (the clip looped)")
    ap.add_argument("--overlap", type=int, default=None, help="num_overlap instead of the yaml's")
    ap.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args(argv)
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    for case in [c.strip() for c in args.case.split(",") if c.strip()]:
        row = measure(case, args.models, args.seconds, args.overlap, args.timeout)
        print(json.dumps(row))
        old = [r for r in old if (r["case"], r["models"], r["input_seconds"], r["overlap"])
               != (row["case"], row["models"], row["input_seconds"], row["overlap"])] + [row]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(old, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
