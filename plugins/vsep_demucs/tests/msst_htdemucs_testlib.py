"""Helpers of the MSST-HTDemucs tests: loading through vsep_demucs.msst, and the oracle callable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from vsep_demucs.plugin import MSSTHTDemucsParams

from vsep_core.testlib import checkpoint_context, separate_file_lower

MSST_REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "msst-reference"


def load_msst(ckpt: Path, **params):
    """vsep_demucs's MSST loader on an MSST ``.ckpt`` (its yaml beside it), on the CPU."""
    from vsep_demucs.msst import load_msst_htdemucs

    ctx = checkpoint_context(ckpt, "HTDemucs-MSST", MSSTHTDemucsParams(**params), yaml_beside=False)
    return load_msst_htdemucs(ctx)


def msst_callable(input_path: str, model_dir: str, model_file: str, case: dict) -> dict[str, np.ndarray]:
    """check_msst_reference.py --callable: separate with vsep_demucs directly (no core CLI)."""
    return separate_file_lower(load_msst(Path(model_dir) / model_file), input_path)


def msst_yaml_text(instruments=("vocals", "other"), segment: float = 1.0, samplerate: int = 8000,
                   num_overlap: int = 2, batch_size: int = 2, extra_inference: str = "") -> str:
    """An MSST HTDemucs yaml (OmegaConf style: ``dconv_init: 1e-3``) of a tiny network."""
    return (
        "audio:\n  chunk_size: 8000\n"
        f"training:\n  segment: {segment}\n  samplerate: {samplerate}\n  channels: 2\n"
        f"  instruments: {list(instruments)!r}\n  target_instrument: null\n"
        f"inference:\n  num_overlap: {num_overlap}\n  batch_size: {batch_size}\n{extra_inference}"
        "model: htdemucs\n"
        "htdemucs:\n  channels: 4\n  depth: 4\n  nfft: 4096\n  t_layers: 1\n  t_heads: 2\n  dconv_comp: 2\n"
        "  dconv_mode: 3\n  dconv_init: 1e-3\n  num_subbands: 1\n  bottom_channels: 8\n  t_cape_glob_loc_scale:"
        " [5000.0, 1.0, 1.4]\n"
    )


def write_msst_model(folder: Path, name: str, text: str, seed: int = 0) -> Path:
    """`<name>.ckpt` (plain state_dict of a random HTDemucs built from `text`) and `<name>.yaml` in `folder`."""
    import torch
    import yaml
    from vsep_demucs.htdemucs import HTDemucs

    from vsep_core.msst import MsstYamlLoader

    config = yaml.load(text, Loader=MsstYamlLoader)  # noqa: S506 - SafeLoader subclass
    kwargs = {k: v for k, v in config["htdemucs"].items() if k != "num_subbands"}
    t = config["training"]
    torch.manual_seed(seed)
    net = HTDemucs(sources=t["instruments"], audio_channels=t["channels"], samplerate=t["samplerate"],
                   segment=t["segment"], use_train_segment=False, **kwargs)
    with torch.no_grad():
        for pname, p in net.named_parameters():
            if pname.endswith(".scale"):
                p.normal_(0.5, 0.1)
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / f"{name}.ckpt"
    torch.save(net.state_dict(), ckpt)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return ckpt
