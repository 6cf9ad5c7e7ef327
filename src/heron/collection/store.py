"""SQLite store of documents, metadata, segments and the commit generation.

Runs in WAL mode so readers never block the writer and always read a committed state.
One connection per thread.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    key      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       TEXT NOT NULL,
    text     TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    hash     TEXT NOT NULL,
    segment  INTEGER NOT NULL,
    row      INTEGER NOT NULL,
    deleted  INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS docs_live_id ON docs(id) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS docs_hash ON docs(hash);
CREATE INDEX IF NOT EXISTS docs_deleted ON docs(deleted) WHERE deleted = 1;
CREATE INDEX IF NOT EXISTS docs_segment ON docs(segment);
CREATE TABLE IF NOT EXISTS segments (
    id      INTEGER PRIMARY KEY,
    rows    INTEGER NOT NULL,
    fields  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO state(name, value) VALUES ('generation', 0);
"""

#: tables of the artifact lifecycle (added to collections written before them on open)
LIFECYCLE = """
CREATE TABLE IF NOT EXISTS artifacts (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    field      TEXT NOT NULL,
    params     TEXT NOT NULL,
    version    TEXT,
    generation INTEGER,
    built_at   REAL
);
CREATE TABLE IF NOT EXISTS retired (
    path       TEXT PRIMARY KEY,
    retired_at INTEGER NOT NULL
);
INSERT OR IGNORE INTO state(name, value)
    SELECT 'epoch', value FROM state WHERE name = 'generation';
"""

DB = "docs.sqlite"


class Store:
    """Thread-safe access to a collection's SQLite database (one connection per thread)."""

    def __init__(self, root: Path, *, create: bool = False) -> None:
        self.path = root / DB
        if not create and not self.path.is_file():
            raise ValueError(
                f"collection {str(root)!r} is corrupt: {DB} is missing; rebuild the collection"
            )
        self._local = threading.local()
        try:  # connect() runs PRAGMAs, which already fail on a corrupt header
            con = self.connect()
            if create:
                con.executescript(SCHEMA)
            con.execute("SELECT value FROM state WHERE name='generation'").fetchone()
            if con.execute("SELECT 1 FROM state WHERE name='epoch'").fetchone() is None:
                con.executescript(LIFECYCLE)
        except sqlite3.DatabaseError as exc:
            self.close()
            from heron.collection.diskfull import disk_full, nearly_full

            full = disk_full(exc, root, None) or (
                disk_full(OSError(28, str(exc)), root, None) if nearly_full(root) else None
            )
            if full is not None:  # SQLite cannot create its -shm/-wal files: not corruption
                raise full from exc
            raise ValueError(
                f"collection database {str(self.path)!r} is corrupt ({exc}); rebuild the collection"
            ) from exc

    def connect(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(
                self.path, timeout=60.0, isolation_level=None, check_same_thread=False
            )
            try:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("PRAGMA busy_timeout=60000")
            except sqlite3.DatabaseError:
                con.close()  # e.g. "file is not a database"; Store() reports it
                raise
            self._local.con = con
        return con

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
