"""One MDX23C or HTDemucs forward, vsep's network against the reference's, same weights, same process, alternating.

    python benchmarks/conv_profile.py --arch mdx23c --runs 3            # times (and their ratio)
    python benchmarks/conv_profile.py --arch demucs --runs 3
    python benchmarks/conv_profile.py --arch vr --runs 3
    python benchmarks/conv_profile.py --arch mdx23c --profile vsep      # torch.profiler table of one forward

MDX23C: the real MDX23C-8KFFT-InstVoc_HQ yaml (``model_2_stem_full_band_8k.yaml``, which checkpoints.py
puts in .cache) built with vsep's ``TFCTDFNet`` and the reference's ``uvr_lib_v5.tfc_tdf_v3.TFC_TDF_net``;
one segment of ``dim_t`` frames (``hop_length * (dim_t - 1)`` samples), as both tools run it.
Demucs: the real-size random-weight htdemucs ``.th`` (955717e8-7e9c9fb8.th) built with vsep's loader and
the reference's ``uvr_lib_v5.demucs.htdemucs.HTDemucs`` from the same stored arguments; one training
segment (``model.segment`` seconds).
VR: the real-size random-weight 2_HP-UVR ``.pth`` (4band_v2, 672 bins) built with vsep's loader and run as
vsep's torch runner runs it (BatchNorm folded, channels-last, ``predict_centre``) against the reference's
``uvr_lib_v5.vr_network.nets`` HP network's ``predict_mask``; one 512-frame window (the default window_size),
the mask of its centre (the frames each tool keeps). The reference is imported from benchmarks/.refenv
(refenv.py makes it).
Weights are copied from vsep's network to the reference's; each forward is timed with `--threads` torch
threads (wall and process CPU time: on a shared machine, CPU time with one thread is the steadier figure),
the two alternating. glibc's malloc thresholds are tuned for the whole process as vsep's loader does
(``vsep_core.allocator.keep_large_blocks``; the reference's own runs do not have it). Network time only (no
chunking, no I/O). Prints the largest output difference, FLOPs and GFLOP/s too. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from alternate import ratios, time_alternating  # noqa: E402

MODELS = HERE / ".cache" / "models" / "vsep"
MDX23C_YAML = MODELS / "model_2_stem_full_band_8k.yaml"
HTDEMUCS_TH = MODELS / "955717e8-7e9c9fb8.th"
VR_PTH = MODELS / "2_HP-UVR.pth"
VR_BANDS = "4band_v2"
VR_WINDOW = 512


def _reference_path() -> None:
    for site in glob.glob(str(HERE / ".refenv" / "lib" / "python3*" / "site-packages")):
        if site not in sys.path:
            sys.path.append(site)


def _namespace(value: Any) -> Any:
    """A parsed yaml as attribute access (the reference reads ``config.model.norm``)."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: _namespace(v) for k, v in value.items()})
    return value


def build_mdx23c(with_reference: bool) -> tuple[dict[str, Any], Any]:
    """vsep's and (optionally) the reference's MDX23C, same random weights, and one segment of input."""
    import torch
    import yaml
    from vsep_mdxc.tfc_tdf import TFCTDFConfig, TFCTDFNet

    from vsep_core.matmul import use_onednn_linears

    config = yaml.safe_load(MDX23C_YAML.read_text())
    targets = 1 if config["training"].get("target_instrument") else len(config["training"]["instruments"])
    ours = TFCTDFNet(TFCTDFConfig.from_yaml(config, targets)).eval()
    use_onednn_linears(ours)  # as vsep's loader does on a CPU
    nets: dict[str, Any] = {"vsep": ours}
    if with_reference:
        _reference_path()
        from audio_separator.separator.uvr_lib_v5.tfc_tdf_v3 import TFC_TDF_net

        theirs = TFC_TDF_net(_namespace(config), "cpu").eval()
        theirs.load_state_dict(ours.state_dict(), strict=True)
        nets["reference"] = theirs
    samples = config["audio"]["hop_length"] * (config["inference"]["dim_t"] - 1)
    return nets, torch.randn(1, 2, samples) * 0.1


def build_htdemucs(with_reference: bool) -> tuple[dict[str, Any], Any]:
    """vsep's and (optionally) the reference's HTDemucs, the .th's weights, and one training segment of input."""
    import torch
    from vsep_demucs.checkpoint import build_model, read_package

    package = read_package(HTDEMUCS_TH)
    ours = build_model(package, HTDEMUCS_TH.name).eval()
    nets: dict[str, Any] = {"vsep": ours}
    if with_reference:
        _reference_path()
        from audio_separator.separator.uvr_lib_v5.demucs.htdemucs import HTDemucs

        theirs = HTDemucs(*package.get("args", ()), **package.get("kwargs", {})).eval()
        theirs.load_state_dict(ours.state_dict(), strict=True)
        nets["reference"] = theirs
    samples = int(float(ours.segment) * ours.samplerate)
    return nets, torch.randn(1, 2, samples) * 0.1


def build_vr(with_reference: bool) -> tuple[dict[str, Any], Any]:
    """vsep's VR network as its torch runner prepares it and (optionally) the reference's, the .pth's
    weights, and one window of input."""
    import torch
    from vsep_vr.bands import load_band_params
    from vsep_vr.model import load_torch_net
    from vsep_vr.nets import fuse_conv_bn

    bins = load_band_params(VR_BANDS).bins
    net, _ = load_torch_net(VR_PTH, bins)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    ours = fuse_conv_bn(net.eval()).to(memory_format=torch.channels_last)
    nets: dict[str, Any] = {"vsep": lambda x: ours.predict_centre(x.contiguous(memory_format=torch.channels_last))}
    if with_reference:
        _reference_path()
        from audio_separator.separator.uvr_lib_v5.vr_network import nets as ref_nets

        theirs = ref_nets.determine_model_capacity(bins * 2, 123821).eval()
        theirs.load_state_dict(state, strict=True)
        nets["reference"] = theirs.predict_mask
    return nets, torch.rand(1, 2, bins + 1, VR_WINDOW)


def forward_flops(net: Any, x: Any) -> float | None:
    """FLOPs of one forward (torch.utils.flop_counter under FakeTensorMode: no real compute), or None."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.inference_mode(), FakeTensorMode(allow_non_fake_inputs=True) as fake, \
                FlopCounterMode(display=False) as counter:
            net(fake.from_tensor(x))
        return float(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - an op FakeTensorMode cannot trace: no figure
        return None


def main(argv: list[str] | None = None) -> int:
    """Time (or profile) both networks; print one JSON line per run and a summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=("mdx23c", "demucs", "vr"), default="mdx23c")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", choices=("vsep", "reference"), default=None)
    ap.add_argument("--rows", type=int, default=25, help="rows of the --profile table")
    ap.add_argument("--no-reference", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from vsep_core.allocator import keep_large_blocks

    keep_large_blocks()  # as vsep's loader does, for the whole process
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with_reference = not args.no_reference or args.profile == "reference"
    build = {"mdx23c": build_mdx23c, "demucs": build_htdemucs, "vr": build_vr}[args.arch]
    nets, x = build(with_reference)
    with torch.inference_mode():
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            nets[args.profile](x)  # warm up
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                nets[args.profile](x)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
            return 0
        outputs = {name: net(x) for name, net in nets.items()}  # warm-up, and the outputs compared
        best, best_cpu = time_alternating(nets, x, args.runs)
    summary: dict[str, Any] = {"arch": args.arch, "seconds_audio": round(x.shape[-1] / 44100, 3),
                               "threads": args.threads, "best_wall_s": best, "best_cpu_s": best_cpu,
                               "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    flops = {name: forward_flops(nets[name], x) for name in best_cpu}  # VR: vsep's skips the cut frames' work
    if all(flops.values()):
        summary["gflop_per_forward"] = {name: round(f / 1e9, 1) for name, f in flops.items()}
        summary["gflops_per_cpu_s"] = {name: round(flops[name] / 1e9 / t, 1) for name, t in best_cpu.items()}
    if "reference" in best:
        ours, theirs = outputs["vsep"].float(), outputs["reference"].float()
        summary["max_abs_diff"] = float((ours - theirs).abs().max())
        summary["rel_diff"] = float((ours - theirs).norm() / theirs.norm().clamp_min(1e-12))
    summary.update(ratios(best, best_cpu))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
