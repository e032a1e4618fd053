"""vsep-scnet: MSST's SCNet models (scnet, scnet_masked, scnet_tran) as a vsep plugin."""
