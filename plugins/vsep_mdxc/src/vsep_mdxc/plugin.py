"""Hook implementations of vsep-mdxc. Light imports only: torch loads in `load`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vsep_core.api import Architecture, param
from vsep_core.helpers import lazy
from vsep_core.hookspecs import hookimpl


@dataclass
class MDXCParams:
    """Parameters of MDXC models (MDX23C and Roformers)."""

    segment_size: int = param(256, "STFT frames per chunk for inputs under 10 s, or always with "
                                   "--mdxc_override_model_segment_size (MDX23C: a multiple of 32)", min=2)
    override_model_segment_size: bool = param(False, "use segment_size instead of the yaml's inference.dim_t "
                                                     "for every input")
    overlap: int | None = param(None, "windows covering each sample (1 = none); default: the yaml's "
                                      "inference.num_overlap, else 8", min=1, max=50)
    batch_size: int | None = param(None, "chunks per forward pass (speed and memory only); default: the yaml's "
                                         "inference.batch_size, else 1", min=1)
    pitch_shift: int = param(0, "separate the audio shifted up by this many semitones (resampled, so also "
                                "faster), then shift the stems back; the output keeps the input's pitch",
                             min=-24, max=24)
    inference: str | None = param(None, "how to run the model: msst (as its authors do: MSST's chunking, "
                                        "fades, inference.normalize, MSST's stems) or audio_separator (as "
                                        "audio-separator does); default: audio_separator for a file of "
                                        "audio-separator's model list, else msst",
                                  choices=("msst", "audio_separator"))
    chunk_size: int | None = param(None, "msst inference: samples per window; default: the yaml's "
                                         "inference.chunk_size, else audio.chunk_size", min=2)
    model_type: str | None = param(None, "MSST's model type (e.g. bs_roformer_experimental); default: chosen "
                                         "from the yaml and the checkpoint",
                                   choices=("mdx23c", "bs_roformer", "bs_roformer_experimental", "mel_band_roformer",
                                            "mel_band_roformer_experimental"))


def _claims(path: Path) -> bool:
    """A ``.ckpt`` whose yaml beside it describes an MDX23C or RoFormer network (not SCNet, BandIt, Apollo ...)."""
    if path.suffix != ".ckpt":
        return False
    yaml_path = next((path.with_suffix(s) for s in (".yaml", ".yml") if path.with_suffix(s).exists()), None)
    if yaml_path is None:
        return False
    from vsep_mdxc.config import detect_kind, load_yaml

    try:
        detect_kind(load_yaml(yaml_path), [path.name])
    except (OSError, ValueError):
        return False
    return True


@hookimpl
def vsep_architectures() -> list[Architecture]:
    """MDXC: MDX23C, BS-Roformer and Mel-Band-Roformer."""
    return [Architecture(name="MDXC", flag_prefix="mdxc", params=MDXCParams,
                         load=lazy("vsep_mdxc.model", "load_model"),
                         package="vsep-mdxc",
                         extensions=(".ckpt",), claims=_claims, catalogue_rank=3,
                         cost_passes=lazy("vsep_mdxc.cost", "cost_passes"),
                         calibration_passes=lazy("vsep_mdxc.cost", "calibration_passes"))]


@hookimpl
def vsep_models() -> list:
    """Catalogue records of this family (packaged data, see catalog.py)."""
    from vsep_mdxc.catalog import model_records

    return model_records()
