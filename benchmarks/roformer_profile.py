"""One RoFormer forward, vsep's network against the reference's, same weights, same process, alternating.

    python benchmarks/roformer_profile.py --seconds 2 --runs 3            # times (and their ratio)
    python benchmarks/roformer_profile.py --seconds 2 --profile vsep      # torch.profiler table of one forward
    python benchmarks/roformer_profile.py --precision bf16 --runs 2       # vsep in bf16 against both in fp32

Builds BS-RoFormer ep_317 (the real yaml that checkpoints.py puts in .cache, random weights) with vsep's
classes and with the reference's (`audio_separator...bs_roformer.BSRoformer`, imported from
benchmarks/.refenv made by refenv.py), copies
the weights across, and times one forward of a stereo chunk of `--seconds` in each, alternating, with
`--threads` torch threads (wall and process CPU time: on a shared machine, CPU time with one thread
is the steadier figure). Network time only (no chunking, no I/O): where the two differ per forward is
where vsep's time goes that the reference's does not. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from alternate import ratios, time_alternating  # noqa: E402

ROOT = HERE.parent
YAML = HERE / ".cache" / "models" / "vsep" / "model_bs_roformer_ep_317_sdr_12.9755.yaml"  # checkpoints.py writes it


def reference_net(model_section: dict) -> object:
    """The reference's BSRoformer (from the reference environment's site-packages)."""
    for site in glob.glob(str(HERE / ".refenv" / "lib" / "python3*" / "site-packages")):
        sys.path.append(site)
    from audio_separator.separator.uvr_lib_v5.roformer.bs_roformer import BSRoformer

    return BSRoformer(**model_section)


def main(argv: list[str] | None = None) -> int:
    """Time (or profile) both networks; print one JSON line per run and a summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--yaml", type=Path, default=YAML)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="vsep's precision")
    ap.add_argument("--profile", choices=("vsep", "reference"), default=None)
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--blas", action="store_true", help="vsep's float32 products in BLAS whatever is faster")
    args = ap.parse_args(argv)

    import torch
    import yaml
    from vsep_mdxc.roformer import build_roformer, half_matmuls, onednn_transformer_linears, roformer_config

    from vsep_core import allocator

    allocator.keep_large_blocks()  # as vsep's model loader does on a CPU (both networks get it)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = yaml.load(args.yaml.read_text(), Loader=yaml.Loader)  # noqa: S506 - the project's own yaml
    section = dict(config["model"])
    ours = build_roformer(roformer_config(section, "bs"), "bs").eval()
    nets = {"vsep": ours}
    if not args.no_reference:
        theirs = reference_net(section).eval()
        missing = theirs.load_state_dict(ours.state_dict(), strict=False)
        if missing.missing_keys or missing.unexpected_keys:
            print("state dict mismatch:", missing, file=sys.stderr)
        nets["reference"] = theirs
    if args.precision == "bf16":
        half_matmuls(ours, torch.bfloat16)
    if not args.blas:  # as vsep's loader does on a CPU: float32 products in oneDNN where it is the faster
        print(json.dumps({"onednn_linears": onednn_transformer_linears(ours)}))
    x = torch.randn(1, 2, int(args.seconds * 44100)) * 0.1
    with torch.inference_mode():
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            nets[args.profile](x)  # warm up
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                nets[args.profile](x)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
            return 0
        for net in nets.values():  # warm-up (allocator, rotary tables)
            net(x[..., : 44100 // 2])
        best, best_cpu = time_alternating(nets, x, args.runs)
    summary = {"seconds_audio": args.seconds, "threads": args.threads, "vsep_precision": args.precision,
               "best_wall_s": best, "best_cpu_s": best_cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    summary.update(ratios(best, best_cpu))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
