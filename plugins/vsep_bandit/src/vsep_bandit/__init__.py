"""vsep-bandit: BandIt v2 (MSST model type ``bandit_v2``) as a vsep plugin."""
