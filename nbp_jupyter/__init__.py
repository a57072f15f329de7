"""nbp_jupyter."""
