"""The claim rule without torch: is the yaml beside a checkpoint an SCNet yaml?"""

from __future__ import annotations

from pathlib import Path

import yaml

from vsep_core.msst import read_msst_yaml

#: ``model:`` keys every SCNet yaml has (and no MDX23C/RoFormer/Demucs/BandIt/Apollo yaml has together)
SCNET_KEYS = ("dims", "band_SR", "band_stride", "band_kernel", "num_dplayer")


def yaml_beside_is_scnet(checkpoint: Path) -> bool:
    """True when ``<stem>.yaml`` (or ``.yml``) beside `checkpoint` has a ``model:`` section with SCNET_KEYS."""
    for suffix in (".yaml", ".yml"):
        path = checkpoint.with_suffix(suffix)
        if path.is_file():
            try:
                config = read_msst_yaml(path)
            except (OSError, ValueError, yaml.YAMLError):
                return False
            model = config.get("model")
            return isinstance(model, dict) and all(k in model for k in SCNET_KEYS)
    return False
