"""Making and upgrading an index database: the schema and format version written with its creation,
in-place migrations of older formats (never a re-embedding), the refusal of newer ones, and the
adoption of a rebuilt database's rows at the end of `mmcli index --rebuild`."""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from mmcli.config import upgrade_command
from mmcli.errors import IndexTooNew
from mmcli.index.schema import COLUMNS, FORMAT_VERSION, FRAMES_SCHEMA, SCHEMA, TAKEN_INDEX


class Database(Protocol):
    """What these functions need of an open ``mmcli.index.store.Store``."""

    db: sqlite3.Connection
    folder: Path
    path: Path
    readonly: bool
    present: str
    dated: bool

    def transaction(self, bump: bool = True) -> AbstractContextManager[sqlite3.Connection]: ...

    def generation(self) -> int: ...


def create_schema(store: Database, model: dict[str, str]) -> None:
    """Schema, format version and model in one transaction: no index exists without them."""
    with store.transaction(bump=False):
        for statement in (SCHEMA + FRAMES_SCHEMA).split(";"):
            if statement.strip():
                store.db.execute(statement)
        if "taken" in {r[1] for r in store.db.execute("PRAGMA table_info(files)")}:
            store.db.execute(TAKEN_INDEX)  # else an older database: the migration adds both
        store.db.execute("INSERT OR IGNORE INTO meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),))
        store.db.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (str(time.time()),))  # the first time
        for key, value in model.items():
            store.db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))


def migrate(store: Database, version: int) -> None:
    """Bring an older index to this format in place (no re-embedding); read-only: read it as it is."""
    columns = {r[1] for r in store.db.execute("PRAGMA table_info(files)")}
    if store.readonly:
        if "missing_since" not in columns:
            store.present = "status = 'ok'"
        store.dated = "taken" in columns
        if version < 4:  # no moments: an empty stand-in (a temporary table: the file is not written)
            store.db.execute(FRAMES_SCHEMA.split(";")[0].replace("TABLE IF", "TEMP TABLE IF"))
        return
    with store.transaction(bump=False):
        if "missing_since" not in columns:  # 1 -> 2
            store.db.execute("ALTER TABLE files ADD COLUMN missing_since REAL")
        if "taken" not in columns:  # 2 -> 3; the dates are read by the next `mmcli index`
            store.db.execute("ALTER TABLE files ADD COLUMN taken REAL")
            store.db.execute("ALTER TABLE files ADD COLUMN taken_source TEXT")
            store.db.execute("ALTER TABLE files ADD COLUMN taken_offset INTEGER")
            store.db.execute(TAKEN_INDEX)
        if version < 4:  # -> 4: video moments
            for statement in FRAMES_SCHEMA.split(";"):
                if statement.strip():
                    store.db.execute(statement)
        store.db.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION),))


def check_version(store: Database) -> None:
    row = store.db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
    if row is None:
        return
    version = int(row[0])
    if version < FORMAT_VERSION:
        migrate(store, version)
    if version > FORMAT_VERSION:
        raise IndexTooNew(
            f"the index at {store.folder} has format {version}, newer than this mmcli understands ({FORMAT_VERSION})",
            hint=f"upgrade mmcli: {upgrade_command()}",
        )


def adopt(store: Database, other: Database) -> None:
    """Replace every row and all meta with ``other``'s, in one transaction (the end of a rebuild)."""
    store.db.execute("ATTACH DATABASE ? AS fresh", (str(other.path),))
    try:
        with store.transaction():
            newest = max(store.generation(), other.generation())
            store.db.execute("DELETE FROM frames")
            store.db.execute("DELETE FROM files")
            store.db.execute(f"INSERT INTO files ({COLUMNS}) SELECT {COLUMNS} FROM fresh.files")
            store.db.execute("INSERT INTO frames SELECT * FROM fresh.frames")
            store.db.execute("DELETE FROM meta")
            store.db.execute("INSERT INTO meta SELECT * FROM fresh.meta")
            store.db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(newest),))
    finally:
        store.db.execute("DETACH DATABASE fresh")
