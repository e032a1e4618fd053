"""Catalogue data of MDX-Net models, handed to core through hooks.

``data/models.json`` lists ``[friendly name, .onnx file]`` in the reference's order (UVR's
public and VIP lists, then audio-separator's additions); ``data/hash_params.json`` maps the
MD5 of a model file's last 10,240,000 bytes to its parameters. See ``data/README.md``. The hash
table is searched before VR's (priority 0), as the reference looks hashes up.
"""

from __future__ import annotations

from vsep_core.helpers import UvrCatalogue

#: The reference caches UVR's MDX hash table in the model directory as mdx_model_data.json.
CATALOGUE = UvrCatalogue(__package__, "MDX", "vsep-mdx", "mdx_model_data.json", priority=0)
