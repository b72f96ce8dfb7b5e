"""Looking across an index: near-duplicate groups and clusters."""
