"""Real-size random-weight checkpoints in the real on-disk formats, and the benchmark inputs.

Compute does not depend on weight values, so a network of the real size with random weights
times like the real model. Every network is built with vsep's own classes from the real
yaml / band parameters / Demucs kwargs (or, for the MDX-Net ONNX file, with the KUIELab
ConvTDFNet layout defined here), after ``torch.manual_seed(SEED)``, and saved under the real
file name:

- ``model_bs_roformer_ep_317_sdr_12.9755.ckpt`` + its real yaml (BS-RoFormer, MDXC)
- ``model_mel_band_roformer_ep_3005_sdr_11.4360.ckpt`` + its real yaml (Mel-Band-RoFormer, MDXC)
- ``MDX23C-8KFFT-InstVoc_HQ.ckpt`` + ``model_2_stem_full_band_8k.yaml`` (MDX23C, MDXC)
- ``UVR-MDX-NET-Inst_HQ_3.onnx`` (MDX-Net; ONNX, input [batch, 4, 3072, 256])
- ``2_HP-UVR.pth`` (VR v5 "HP" capacity, 4band_v2)
- ``htdemucs.yaml`` + ``955717e8-<sha256[:8]>.th`` (HTDemucs package, klass pickled by reference)

The reference finds MDX/VR parameters by file hash: the model directory gets the oracle's
``mdx_model_data.json`` / ``vr_model_data.json`` / ``download_checks.json`` plus one entry per
new file (md5 of its last 10,240,000 bytes -> the real model's parameters), exactly as
../shared/reference/README.md describes. Two model directories share the files (hard links):
``vsep/`` and ``ref/``. They differ only for Demucs: the reference's catalogue expects the file
name ``955717e8-8726e21a.th`` (and checks that the sha256 starts with 8726e21a; the reference
runner turns that integrity check off, see ref_runner.py), whereas vsep verifies the checksum in
the name, so vsep's directory holds the file under its true ``955717e8-<sha256[:8]>.th``.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared"
ORACLE = SHARED / "reference"
MDXC_CONFIGS = SHARED / "uvr-data" / "mdx_model_data" / "mdx_c_configs"
CLIP = SHARED / "audio" / "mardy20s.flac"
CACHE = HERE / ".cache"
SEED = 1
HASH_BYTES = 10_240_000

BS_ROFORMER = "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
MEL_ROFORMER = "model_mel_band_roformer_ep_3005_sdr_11.4360.ckpt"
MDX23C = "MDX23C-8KFFT-InstVoc_HQ.ckpt"
MDX23C_YAML = "model_2_stem_full_band_8k.yaml"
MDXNET = "UVR-MDX-NET-Inst_HQ_3.onnx"
VR_HP = "2_HP-UVR.pth"
HTDEMUCS = "htdemucs.yaml"
HTDEMUCS_SIG = "955717e8"
HTDEMUCS_REF_NAME = "955717e8-8726e21a.th"
#: vsep's catalogue knows htdemucs.yaml and would want the file named 955717e8-8726e21a.th (whose
#: checksum it verifies): it gets the same bag under a name no catalogue has.
HTDEMUCS_VSEP = "htdemucs_random.yaml"

#: hash-table parameters of the real models (UVR's model_data_new.json entries)
MDXNET_PARAMS = {"compensate": 1.022, "mdx_dim_f_set": 3072, "mdx_dim_t_set": 8, "mdx_n_fft_scale_set": 6144,
                 "primary_stem": "Instrumental"}
VR_HP_PARAMS = {"vr_model_param": "4band_v2", "primary_stem": "Instrumental"}

#: The real htdemucs (955717e8) hyper-parameters as the oracle reconstructed them (its tiny
#: copy changed channels 48 -> 8, bottom_channels 512 -> 32, t_layers 5 -> 2).
HTDEMUCS_KWARGS: dict[str, Any] = {
    "sources": ["drums", "bass", "other", "vocals"], "audio_channels": 2, "samplerate": 44100,
    "segment": Fraction(39, 5), "channels": 48, "channels_time": None, "growth": 2, "nfft": 4096,
    "wiener_iters": 0, "end_iters": 0, "wiener_residual": False, "cac": True, "depth": 4, "rewrite": True,
    "multi_freqs": [], "multi_freqs_depth": 3, "freq_emb": 0.2, "emb_scale": 10, "emb_smooth": True,
    "kernel_size": 8, "stride": 4, "time_stride": 2, "context": 1, "context_enc": 0, "norm_starts": 4,
    "norm_groups": 4, "dconv_mode": 3, "dconv_depth": 2, "dconv_comp": 8, "dconv_init": 0.001,
    "bottom_channels": 512, "t_layers": 5, "t_hidden_scale": 4.0, "t_heads": 8, "t_dropout": 0.02,
    "t_layer_scale": True, "t_gelu": True, "t_emb": "sin", "t_max_positions": 10000, "t_max_period": 10000.0,
    "t_weight_pos_embed": 1.0, "t_cape_mean_normalize": True, "t_cape_augment": True,
    "t_cape_glob_loc_scale": [5000.0, 1.0, 1.4], "t_sin_random_shift": 0, "t_norm_in": True,
    "t_norm_in_group": False, "t_group_norm": False, "t_norm_first": True, "t_norm_out": True,
    "t_weight_decay": 0.0, "t_lr": None, "t_sparse_self_attn": False, "t_sparse_cross_attn": False,
    "t_mask_type": "diag", "t_mask_random_seed": 42, "t_sparse_attn_window": 400, "t_global_window": 100,
    "t_sparsity": 0.95, "t_auto_sparsity": False, "t_cross_first": False, "rescale": 0.1,
}

#: MDX-Net (KUIELab ConvTDFNet, the layout of UVR's MDX-Net ONNX files): 11 blocks, 3 convs
#: per block, growth 32, kernel 3, TDF bottleneck 8, dim_f 3072, dim_t 256 (Inst_HQ_3).
MDXNET_LAYOUT = {"dim_c": 4, "dim_f": 3072, "dim_t": 256, "num_blocks": 11, "l": 3, "g": 32, "k": 3, "bn": 8}


@dataclass
class ModelSet:
    """Where the benchmark's checkpoints are: one model directory per tool, and what each holds."""

    vsep_dir: Path
    ref_dir: Path
    files: dict[str, str] = field(default_factory=dict)  # arch key -> model filename (as passed to load_model)
    vsep_files: dict[str, str] = field(default_factory=dict)  # where vsep is given another name
    notes: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# helpers


def model_hash(path: Path) -> str:
    """UVR's model hash: md5 of the last 10,240,000 bytes (the whole file when smaller)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size > HASH_BYTES:
            fh.seek(size - HASH_BYTES)
        return hashlib.md5(fh.read()).hexdigest()


def _link(src: Path, dst: Path) -> None:
    """Hard-link (or copy) `src` to `dst`, replacing `dst`."""
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        dst.hardlink_to(src)
    except OSError:
        shutil.copy2(src, dst)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(path.suffix + ".part")
    torch.save(obj, tmp)
    tmp.replace(path)


def _fresh(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


# ---------------------------------------------------------------------------------------------
# networks


def build_mdxc_net(yaml_path: Path) -> Any:
    """vsep's MDXC network (MDX23C or RoFormer) described by a yaml, random weights (seeded)."""
    import torch
    from vsep_mdxc.config import BS_ROFORMER as KIND_BS
    from vsep_mdxc.config import MDX23C as KIND_MDX23C
    from vsep_mdxc.config import detect_kind, load_yaml
    from vsep_mdxc.roformer import build_roformer, roformer_config
    from vsep_mdxc.tfc_tdf import TFCTDFConfig, TFCTDFNet

    config = load_yaml(yaml_path)
    kind = detect_kind(config, [yaml_path.name])
    torch.manual_seed(SEED)
    if kind == KIND_MDX23C:
        training = config.get("training") or {}
        targets = 1 if training.get("target_instrument") else len(training.get("instruments") or [])
        return TFCTDFNet(TFCTDFConfig.from_yaml(config, max(targets, 1)))
    variant = "bs" if kind == KIND_BS else "mel"
    return build_roformer(roformer_config(config.get("model") or {}, variant), variant)


def mdxnet_module(layout: dict[str, int] | None = None) -> Any:
    """KUIELab's ConvTDFNet (the network inside UVR's MDX-Net ONNX files), seeded random weights."""
    import torch
    from torch import nn

    p = dict(MDXNET_LAYOUT, **(layout or {}))

    class ConvTDF(nn.Module):
        def __init__(self, c: int, n_layers: int, f: int, k: int, bn: int):
            super().__init__()
            self.H = nn.ModuleList(nn.Sequential(nn.Conv2d(c, c, k, 1, k // 2), nn.BatchNorm2d(c), nn.ReLU())
                                   for _ in range(n_layers))
            self.tdf = nn.Sequential(nn.Linear(f, f // bn, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                     nn.Linear(f // bn, f, bias=False), nn.BatchNorm2d(c), nn.ReLU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for h in self.H:
                x = h(x)
            return x + self.tdf(x)

    class ConvTDFNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            g, n_layers, k, bn = p["g"], p["l"], p["k"], p["bn"]
            self.n = p["num_blocks"] // 2
            self.first_conv = nn.Sequential(nn.Conv2d(p["dim_c"], g, 1), nn.BatchNorm2d(g), nn.ReLU())
            f, c = p["dim_f"], g
            self.encoding_blocks, self.ds = nn.ModuleList(), nn.ModuleList()
            for _ in range(self.n):
                self.encoding_blocks.append(ConvTDF(c, n_layers, f, k, bn))
                self.ds.append(nn.Sequential(nn.Conv2d(c, c + g, 2, 2), nn.BatchNorm2d(c + g), nn.ReLU()))
                f, c = f // 2, c + g
            self.bottleneck_block = ConvTDF(c, n_layers, f, k, bn)
            self.decoding_blocks, self.us = nn.ModuleList(), nn.ModuleList()
            for _ in range(self.n):
                self.us.append(nn.Sequential(nn.ConvTranspose2d(c, c - g, 2, 2), nn.BatchNorm2d(c - g), nn.ReLU()))
                f, c = f * 2, c - g
                self.decoding_blocks.append(ConvTDF(c, n_layers, f, k, bn))
            self.final_conv = nn.Sequential(nn.Conv2d(c, p["dim_c"], 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.first_conv(x).transpose(-1, -2)
            skips = []
            for i in range(self.n):
                x = self.encoding_blocks[i](x)
                skips.append(x)
                x = self.ds[i](x)
            x = self.bottleneck_block(x)
            for i in range(self.n):
                x = self.us[i](x) * skips[-i - 1]
                x = self.decoding_blocks[i](x)
            return self.final_conv(x.transpose(-1, -2))

    torch.manual_seed(SEED)
    net = ConvTDFNet().eval()
    with torch.no_grad():  # keep activations in range through 11 blocks (a trained net is tame too)
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                m.weight.mul_(0.5)
    return net


def build_vr_net() -> Any:
    """vsep's VR v5 network of the "HP" capacity (channels 32, 5 ASPP branches) for 4band_v2."""
    import torch
    from vsep_vr import bands, nets

    bins = bands.load_band_params(VR_HP_PARAMS["vr_model_param"]).bins
    torch.manual_seed(SEED)
    return nets.build_net(nets.NetConfig("v5", channels=32, aspp_branches=5, extra_level=False), bins)


def build_htdemucs() -> Any:
    """vsep's HTDemucs with the real htdemucs kwargs, random weights."""
    import torch
    from vsep_demucs.htdemucs import HTDemucs

    torch.manual_seed(SEED)
    return HTDemucs(**HTDEMUCS_KWARGS)


# ---------------------------------------------------------------------------------------------
# writers


def _write_state(net: Any, path: Path) -> None:
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    _atomic_torch_save(state, path)


def _write_mdxnet(path: Path) -> None:
    import torch

    net = mdxnet_module()
    p = MDXNET_LAYOUT
    tmp = path.with_suffix(".part.onnx")
    with torch.no_grad():
        torch.onnx.export(net, (torch.zeros(1, p["dim_c"], p["dim_f"], p["dim_t"]),), str(tmp), dynamo=False,
                          input_names=["input"], output_names=["output"], opset_version=13,
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    tmp.replace(path)


def _write_htdemucs(directory: Path) -> Path:
    """The Demucs package ``955717e8-<sha256[:8]>.th`` (float16 state, like the published file)."""
    import torch

    net = build_htdemucs()
    state = {k: v.detach().half().clone() for k, v in net.state_dict().items()}
    from vsep_core.testlib import importable_class  # a test helper (needs pytest, a dev dependency)

    buf = io.BytesIO()
    with importable_class("demucs.htdemucs.HTDemucs") as klass:  # pickled by reference, as the published file
        torch.save({"klass": klass, "args": (), "kwargs": HTDEMUCS_KWARGS, "state": state,
                    "training_args": {"note": "vsep benchmark: random weights"}}, buf)
    data = buf.getvalue()
    path = directory / f"{HTDEMUCS_SIG}-{hashlib.sha256(data).hexdigest()[:8]}.th"
    path.write_bytes(data)
    return path


def _add_hash_entries(directory: Path, table: str, entries: dict[str, dict[str, Any]]) -> None:
    src = ORACLE / "models" / table
    data = json.loads((directory / table).read_text()) if (directory / table).exists() else \
        json.loads(src.read_text())
    data.update(entries)
    (directory / table).write_text(json.dumps(data, indent=1))


def build_models(archs: list[str], log: Callable[[str], None] = print) -> ModelSet:
    """Build (once; cached under benchmarks/.cache/models) the real-size checkpoints of `archs`.

    Arch keys: ``bs_roformer``, ``mel_roformer``, ``mdx23c``, ``mdx``, ``vr``, ``demucs``.
    """
    store = CACHE / "models" / "store"
    vdir, rdir = CACHE / "models" / "vsep", CACHE / "models" / "ref"
    for d in (store, vdir, rdir):
        d.mkdir(parents=True, exist_ok=True)
    for d in (vdir, rdir):
        if not (d / "download_checks.json").exists():
            shutil.copy2(ORACLE / "models" / "download_checks.json", d / "download_checks.json")
    ms = ModelSet(vdir, rdir)
    mdx_entries: dict[str, dict[str, Any]] = {}
    vr_entries: dict[str, dict[str, Any]] = {}
    for arch in archs:
        if arch in ("bs_roformer", "mel_roformer", "mdx23c"):
            name = {"bs_roformer": BS_ROFORMER, "mel_roformer": MEL_ROFORMER, "mdx23c": MDX23C}[arch]
            yaml_name = MDX23C_YAML if arch == "mdx23c" else Path(name).with_suffix(".yaml").name
            ckpt = store / name
            if not _fresh(ckpt):
                log(f"building {name} (real size, random weights) ...")
                _write_state(build_mdxc_net(MDXC_CONFIGS / yaml_name), ckpt)
            shutil.copy2(MDXC_CONFIGS / yaml_name, store / yaml_name)
            for d in (vdir, rdir):
                _link(ckpt, d / name)
                _link(store / yaml_name, d / yaml_name)
            ms.files[arch] = name
        elif arch == "mdx":
            onnx_path = store / MDXNET
            if not _fresh(onnx_path):
                log(f"building {MDXNET} (ConvTDFNet of the real size, ONNX) ...")
                _write_mdxnet(onnx_path)
            for d in (vdir, rdir):
                _link(onnx_path, d / MDXNET)
            mdx_entries[model_hash(onnx_path)] = dict(MDXNET_PARAMS)
            ms.files[arch] = MDXNET
        elif arch == "vr":
            pth = store / VR_HP
            if not _fresh(pth):
                log(f"building {VR_HP} (VR HP capacity, random weights) ...")
                _write_state(build_vr_net(), pth)
            for d in (vdir, rdir):
                _link(pth, d / VR_HP)
            vr_entries[model_hash(pth)] = dict(VR_HP_PARAMS)
            ms.files[arch] = VR_HP
        elif arch == "demucs":
            found = sorted(store.glob(f"{HTDEMUCS_SIG}-*.th"))
            th = found[0] if found else None
            if th is None:
                log("building htdemucs (real kwargs, random weights, float16 package) ...")
                th = _write_htdemucs(store)
            (store / HTDEMUCS).write_text(f"models: ['{HTDEMUCS_SIG}']\n")
            for d in (vdir, rdir):
                for old in d.glob(f"{HTDEMUCS_SIG}-*.th"):
                    old.unlink()
            _link(store / HTDEMUCS, rdir / HTDEMUCS)
            _link(store / HTDEMUCS, vdir / HTDEMUCS_VSEP)
            _link(th, vdir / th.name)
            _link(th, rdir / HTDEMUCS_REF_NAME)
            ms.files[arch] = HTDEMUCS
            ms.vsep_files[arch] = HTDEMUCS_VSEP
            ms.notes[arch] = (f"vsep: {HTDEMUCS_VSEP} -> {th.name}; reference: {HTDEMUCS} -> {HTDEMUCS_REF_NAME} "
                              "(its sha256 check disabled); same bytes")
        else:
            raise ValueError(f"unknown arch {arch!r}")
    for d in (vdir, rdir):
        _add_hash_entries(d, "mdx_model_data.json", mdx_entries)
        _add_hash_entries(d, "vr_model_data.json", vr_entries)
    return ms


def tiny_models() -> ModelSet:
    """The oracle's tiny random-weight checkpoints (memory scaling and bf16 parity), one shared copy."""
    tdir = CACHE / "models" / "tiny"
    tdir.mkdir(parents=True, exist_ok=True)
    for src in (ORACLE / "models").iterdir():
        dst = tdir / src.name
        if not dst.exists() or dst.stat().st_size != src.stat().st_size:
            shutil.copy2(src, dst)
    files = {"bs_roformer": BS_ROFORMER, "mel_roformer": MEL_ROFORMER, "mdx23c": MDX23C, "mdx": MDXNET,
             "vr": VR_HP, "demucs": HTDEMUCS}
    return ModelSet(tdir, tdir, files)


# ---------------------------------------------------------------------------------------------
# inputs


def make_input(seconds: float, directory: Path | None = None) -> Path:
    """``mardy20s.flac`` looped to `seconds` (first N frames), 16-bit FLAC, cached.

    At 30 s this is the oracle's timing input (the clip repeated 2 times, 1,323,000 frames).
    Long inputs are written block by block (an hour is 159 M frames).
    """
    directory = directory or CACHE / "inputs"
    directory.mkdir(parents=True, exist_ok=True)
    info = sf.info(str(CLIP))
    frames = int(round(seconds * info.samplerate))
    label = f"{seconds:g}s" if seconds < 120 else f"{seconds / 60:g}min"
    path = directory / f"mardy_{label}.flac"
    if path.exists() and sf.info(str(path)).frames == frames:
        return path
    clip = sf.read(str(CLIP), dtype="int32", always_2d=True)[0]
    tmp = path.with_suffix(".part.flac")
    with sf.SoundFile(str(tmp), "w", info.samplerate, info.channels, "PCM_16", format="FLAC") as out:
        done = 0
        while done < frames:
            take = min(len(clip), frames - done)
            out.write(clip[:take])
            done += take
    tmp.replace(path)
    return path


def file_sha256(path: Path) -> str:
    """sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def param_count(net: Any) -> int:
    """Number of parameters of a torch module."""
    return int(sum(int(np.prod(p.shape)) for p in net.parameters()))
