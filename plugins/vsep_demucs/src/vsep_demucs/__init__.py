"""vsep-demucs: Demucs v4 (HTDemucs) models and bags of models for vsep."""
