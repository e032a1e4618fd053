"""vsep-mdxc: MDX23C (TFC-TDF v3), BS-Roformer and Mel-Band-Roformer models for vsep."""
