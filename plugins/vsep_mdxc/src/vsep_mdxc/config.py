"""Reading an MDXC yaml: safe loading, which network it describes, and which stems come out.

No torch here: this module is cheap to import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsep_core import helpers
from vsep_core.helpers import stem_pair

MDX23C = "mdx23c"
BS_ROFORMER = "bs_roformer"
MEL_ROFORMER = "mel_band_roformer"

def load_yaml(path: str | Path) -> dict[str, Any]:
    """Parse an MDXC yaml safely with core's config loader (``!!python/tuple`` allowed, no other Python tags)."""
    data = helpers.load_yaml(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a mapping")
    return data


def _flat_model(config: Mapping[str, Any]) -> dict[str, Any]:
    from vsep_mdxc.roformer import normalize_model_section

    model = config.get("model") or {}
    return normalize_model_section(model) if isinstance(model, Mapping) else {}


def _name_tokens_kind(name: str) -> str | None:
    """Roformer variant from a file basename, as the reference does (None: no "roformer" in it)."""
    low = name.lower()
    if re.search(r"mel[-_]?band[-_]?roformer|mel[-_]?roformer|melband[-_]?roformer", low):
        return MEL_ROFORMER
    if "roformer" in low:
        return BS_ROFORMER
    return None


def detect_kind(config: Mapping[str, Any], names: list[str]) -> str:
    """Which network the yaml describes: MDX23C, BS-RoFormer or Mel-Band-RoFormer.

    Content first (``freqs_per_bands`` -> BS, ``num_bands`` -> Mel, a ``model_type`` string,
    TFC-TDF keys -> MDX23C), then the basenames in `names` ("mel_band_roformer" and its
    spellings -> Mel, any other "roformer" -> BS). Raises ValueError for anything else
    (e.g. SCNet or BandIt yamls, which this plugin does not implement).
    """
    model = _flat_model(config)
    has_bs, has_mel = "freqs_per_bands" in model, "num_bands" in model
    if has_bs and has_mel:
        raise ValueError("the yaml model section has both freqs_per_bands (BS-RoFormer) and num_bands "
                         "(Mel-Band-RoFormer); keep the one the checkpoint was trained with")
    if has_bs:
        return BS_ROFORMER
    if has_mel:
        return MEL_ROFORMER
    for key in ("model_type", "type", "architecture"):
        value = model.get(key)
        if isinstance(value, str) and "roformer" in value.lower():
            return MEL_ROFORMER if "mel" in value.lower() else BS_ROFORMER
    if {"num_subbands", "num_scales", "num_channels", "growth"} <= set(model):
        return MDX23C
    for name in names:
        kind = _name_tokens_kind(Path(name).name)
        if kind:
            return kind
    if config.get("is_roformer"):
        return BS_ROFORMER
    keys = ", ".join(sorted(model)) or "none"
    raise ValueError(f"the yaml describes no MDX23C or RoFormer network (model keys: {keys}); "
                     "SCNet, BandIt and other MSST architectures are not supported by vsep-mdxc")


secondary_stem = stem_pair  # the reference's pairing, shared by every family (vsep_core.helpers)


@dataclass(frozen=True)
class StemPlan:
    """How the network outputs become named stems.

    ``outputs``: the name of each network output, in output order. ``residual``: the name of
    the stem computed as mix minus ``outputs[0]``, or None. ``order``: the stems as returned.
    """

    outputs: tuple[str, ...]
    residual: str | None
    order: tuple[str, ...]
    primary: str
    secondary: str | None


def plan_stems(config: Mapping[str, Any], model_stems: int) -> StemPlan:
    """Stem names and order from ``training.instruments`` / ``target_instrument`` and the network's stem count.

    - a target instrument, or a one-output network with several instruments: the output is the
      primary stem and the secondary is the residual ``mix - primary``; order secondary, primary;
    - two outputs: the instruments, order ``instruments[1], instruments[0]`` (secondary, primary);
    - more outputs: every instrument in yaml order.

    The primary is the target when there is one (the reference swaps ``instruments[0]`` and
    ``[1]`` when the target is second); the secondary of a target model is the other of two
    instruments, or ``secondary_stem(target)`` when there are more (the reference would name
    the residual after ``instruments[1]``, e.g. "Drums" for a vocals model of four instruments).
    """
    training = config.get("training") or {}
    instruments = [str(i) for i in (training.get("instruments") or [])]
    target = training.get("target_instrument")
    target = str(target) if target else None
    if not instruments and not target:
        raise ValueError("the yaml has no training.instruments")
    if target or model_stems == 1:
        primary = target or instruments[0]
        others = [i for i in instruments if i != primary]
        secondary = others[0] if len(others) == 1 else secondary_stem(primary)
        return StemPlan((primary,), secondary, (secondary, primary), primary, secondary)
    if model_stems != len(instruments):
        raise ValueError(f"the network has {model_stems} outputs but the yaml lists {len(instruments)} "
                         f"instruments ({', '.join(instruments)})")
    if len(instruments) == 2:
        return StemPlan(tuple(instruments), None, (instruments[1], instruments[0]), instruments[0], instruments[1])
    return StemPlan(tuple(instruments), None, tuple(instruments), instruments[0], None)


def resolve_int(user: int | None, section: Mapping[str, Any] | None, key: str, fallback: int) -> int:
    """User value, else ``section[key]``, else `fallback`."""
    if user is not None:
        return int(user)
    if section and section.get(key) is not None:
        return int(section[key])
    return fallback
