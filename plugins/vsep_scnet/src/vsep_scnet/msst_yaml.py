"""Reading MSST's yaml configs as MSST does (OmegaConf-like scalars), safely.

MSST reads most configs with ``yaml.load(..., FullLoader)`` and some (htdemucs) with OmegaConf.
Here: a SafeLoader (no Python objects) that turns ``!!python/tuple`` into a list and reads
exponent floats without a dot (``1e-3``) as floats, as YAML 1.2 and OmegaConf do.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class MSSTLoader(yaml.SafeLoader):
    """SafeLoader + ``!!python/tuple`` as a list + YAML 1.2 floats such as ``1e-3``."""


def _tuple(loader: yaml.SafeLoader, node: yaml.Node) -> list:
    return loader.construct_sequence(node, deep=True)


MSSTLoader.add_constructor("tag:yaml.org,2002:python/tuple", _tuple)
MSSTLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
MSSTLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def read_msst_yaml(path: str | Path) -> dict[str, Any]:
    """Parse an MSST yaml file into plain dicts/lists; ValueError when it is not a mapping."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=MSSTLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{Path(path).name} does not hold a yaml mapping")
    return data
