"""The work behind search and classify: the local engine (encoders chosen and kept), search over an open
index, zero-shot classification."""
