"""Batched embedding with a loaded model: local decode-and-embed, video moments, Ray driver and workers,
embedding shards on disk, the text-embedding cache."""
