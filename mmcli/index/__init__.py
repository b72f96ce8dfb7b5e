"""The photo index: SQLite store (source of truth) + FAISS vectors (derived, rebuildable)."""
