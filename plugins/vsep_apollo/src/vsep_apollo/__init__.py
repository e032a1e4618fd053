"""vsep-apollo: Apollo restoration (MSST model type ``apollo``) as a vsep plugin."""
