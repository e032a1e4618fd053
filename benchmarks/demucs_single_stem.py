"""htdemucs_ft's layout, all four stems against ``--single_stem Vocals``: time and bit-identity.

    python benchmarks/demucs_single_stem.py --seconds 10 --runs 2 --threads 1

Builds (benchmarks/checkpoints.py) the real-size random-weight htdemucs file and a bag yaml of the
htdemucs_ft layout over it (four models, a 4 x 4 identity of weights: each model gives one stem), then
separates `--seconds` of the harness's looped input through core's loader twice per run, alternating:
every stem, and only Vocals (`Settings.output_single_stem`, which core passes to the plugin as
``LoadContext.wanted_stems``). Prints wall and process CPU time of each, the ratio, and whether the
Vocals are bit for bit the same. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main(argv: list[str] | None = None) -> int:
    """Time both, print JSON lines and a summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    import checkpoints
    import torch

    from vsep_core import audio as audio_io
    from vsep_core.devices import vsep_select_device
    from vsep_core.loader import ModelLoader
    from vsep_core.options import Settings

    if args.threads:
        torch.set_num_threads(args.threads)
    models = checkpoints.build_models(["demucs"], log=lambda m: print(m, file=sys.stderr))
    signature = next(models.vsep_dir.glob("955717e8-*.th")).name.split("-")[0]
    bag = models.vsep_dir / "htdemucs_ft_layout.yaml"
    bag.write_text(f"models: {[signature] * 4!r}\nweights: [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], "
                   "[0, 0, 0, 1.0]]\n")
    audio, _ = audio_io.read_audio(checkpoints.make_input(args.seconds))
    device = vsep_select_device("cpu", False)

    def load(single: str | None):  # noqa: ANN202 - a loaded model
        settings = Settings.create(model_file_dir=str(models.vsep_dir), offline=True, device="cpu",
                                   output_single_stem=single, arch_params={"demucs": {"shifts": 0}})
        return ModelLoader(settings, device).load(bag.name).model

    nets = {"all": load(None), "vocals": load("Vocals")}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in nets}
    outputs: dict[str, dict[str, np.ndarray]] = {}
    for i in range(args.runs):
        for name in (list(nets) if i % 2 == 0 else list(nets)[::-1]):
            started, started_cpu = time.perf_counter(), time.process_time()
            outputs[name] = nets[name].separate(audio)
            times[name].append((time.perf_counter() - started, time.process_time() - started_cpu))
            print(json.dumps({"run": i, "stems": name, "wall_s": round(times[name][-1][0], 2),
                              "cpu_s": round(times[name][-1][1], 2)}), flush=True)
    best = {k: (min(t[0] for t in v), min(t[1] for t in v)) for k, v in times.items()}
    print(json.dumps({"input_seconds": args.seconds, "stems_single": list(outputs["vocals"]),
                      "vocals_identical": bool(np.array_equal(outputs["vocals"]["Vocals"], outputs["all"]["Vocals"])),
                      "all_wall_s": round(best["all"][0], 2), "vocals_wall_s": round(best["vocals"][0], 2),
                      "speedup_wall": round(best["all"][0] / best["vocals"][0], 2),
                      "speedup_cpu": round(best["all"][1] / best["vocals"][1], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
