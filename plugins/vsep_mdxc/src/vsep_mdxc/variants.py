"""RoFormer variants from other packages: the entry-point group ``vsep_mdxc.variants``.

A package adds a RoFormer variant (a new mask head, new blocks, a whole network) without
changing vsep-mdxc: it declares an entry point in the group ``vsep_mdxc.variants`` whose object
is a `Variant` (or a callable returning one). A variant owns yaml ``model`` keys; when a yaml
has any of them, the variant builds the network (`build_network`) or one part of the built-in
network (`mask_head`). A key that neither a built-in option nor an installed variant owns is an
error naming it. docs/mdxc.md shows a complete variant package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

ENTRY_POINT_GROUP = "vsep_mdxc.variants"


@dataclass(frozen=True)
class VariantContext:
    """What a variant gets to build from.

    kind: "bs" or "mel"; model: the yaml ``model`` section (alias names resolved); options: the
    keys the variant owns, with their values; config: the built-in options
    (`vsep_mdxc.roformer.RoformerConfig`) of every other key; state: the checkpoint's tensors.
    """

    kind: str
    model: Mapping[str, Any]
    options: Mapping[str, Any]
    config: Any
    state: Mapping[str, Any]


@dataclass(frozen=True)
class Variant:
    """A RoFormer variant: the yaml keys it owns and what it builds when a yaml has one of them.

    build_network(ctx) -> torch.nn.Module: the whole network; it must take [batch, channels, samples]
    and return [batch, stems, channels, samples] (or [batch, channels, samples] for one stem).
    mask_head(ctx) -> factory(dim, dim_inputs) -> one stem's mask head, a module mapping the band
    features [b, t, bands, dim] to the band-ordered mask [b, t, sum(dim_inputs)] (real and imaginary
    parts interleaved), used in place of the built-in mask estimators.
    Give exactly one of the two.
    """

    name: str
    keys: frozenset[str] = field(default_factory=frozenset)
    build_network: Callable[[VariantContext], Any] | None = None
    mask_head: Callable[[VariantContext], Callable[[int, tuple[int, ...]], Any]] | None = None

    def __post_init__(self) -> None:
        if (self.build_network is None) == (self.mask_head is None):
            raise ValueError(f"variant {self.name!r} must give exactly one of build_network and mask_head")
        object.__setattr__(self, "keys", frozenset(self.keys))


class VariantError(Exception):
    """A variant package is broken or two variants claim the same yaml."""


def installed_variants() -> list[Variant]:
    """Every variant registered in the entry-point group, in entry-point name order."""
    found: list[Variant] = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
            variant = obj if isinstance(obj, Variant) else obj()
        except Exception as exc:  # noqa: BLE001 - a third-party import can fail in any way
            raise VariantError(f"vsep_mdxc variant {ep.name!r} ({ep.value}) cannot be loaded: {exc}") from exc
        if not isinstance(variant, Variant):
            raise VariantError(f"vsep_mdxc variant {ep.name!r} ({ep.value}) is a {type(variant).__name__}, "
                               "not a vsep_mdxc.variants.Variant")
        found.append(variant)
    return found


def variant_for(model_keys: set[str], variants: list[Variant]) -> Variant | None:
    """The one variant owning any of `model_keys`, or None; two variants for one yaml is a VariantError."""
    matching = [v for v in variants if v.keys & model_keys]
    if len(matching) > 1:
        names = ", ".join(f"{v.name} ({', '.join(sorted(v.keys & model_keys))})" for v in matching)
        raise VariantError(f"the yaml has keys of several vsep_mdxc variants: {names}; uninstall all but one")
    return matching[0] if matching else None


def owned_keys(variants: list[Variant]) -> frozenset[str]:
    """Every yaml key some installed variant owns."""
    keys: set[str] = set()
    for variant in variants:
        keys |= variant.keys
    return frozenset(keys)
