"""Catalogue data of VR models, handed to core through hooks.

``data/models.json`` lists ``[friendly name, .pth file]`` in the reference's order (UVR's
list, then audio-separator's additions); ``data/hash_params.json`` maps the MD5 of a model
file's last 10,240,000 bytes to its parameters. See ``data/README.md``. The band parameter
files (``vr_model_param``) belong to the VR model code, not to this catalogue.
"""

from __future__ import annotations

from vsep_core.helpers import UvrCatalogue

#: The reference caches UVR's VR hash table in the model directory as vr_model_data.json.
CATALOGUE = UvrCatalogue(__package__, "VR", "vsep-vr", "vr_model_data.json", priority=1)
