"""SQLite store of documents, metadata, segments and the commit generation.

Runs in WAL mode so readers never block the writer and always read a committed state.
One connection per thread.
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import threading
from pathlib import Path

#: prefix of the hash of a document whose vector the user supplied (never reused)
SUPPLIED = "supplied:"
#: the documents whose stored vector a new document with the same text hash may reuse (an
#: encoder made it): the hash index covers only these, so bulk loads of supplied vectors do not
#: grow it; a query that reads it repeats the term (collections made before keep a full index)
REUSABLE = f"hash NOT LIKE '{SUPPLIED}%'"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS docs (
    key      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       TEXT NOT NULL,
    text     TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{{}}',
    hash     TEXT NOT NULL,
    segment  INTEGER NOT NULL,
    row      INTEGER NOT NULL,
    deleted  INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS docs_live_id ON docs(id) WHERE deleted = 0;
CREATE INDEX IF NOT EXISTS docs_hash ON docs(hash) WHERE {REUSABLE};
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
#: 8 bytes: the epoch of the latest commit, written right after it (see :meth:`Store.published`)
CHANGES = ".changes"
#: a reader trusts an unchanged :data:`CHANGES` for at most this long before it asks SQLite
#: (bounds how stale a reader can be if a writer died between its commit and the write)
MAX_TRUST_S = 0.05


class Store:
    """Thread-safe access to a collection's SQLite database (one connection per thread)."""

    def __init__(self, root: Path, *, create: bool = False) -> None:
        self.path = root / DB
        if not create and not self.path.is_file():
            raise ValueError(
                f"collection {str(root)!r} is corrupt: {DB} is missing; rebuild the collection"
            )
        self._local = threading.local()
        self._changes_map: mmap.mmap | None = None
        self._changes_failed = False
        self._changes_lock = threading.Lock()
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
        """This thread's connection (opened once per thread)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = self.open_connection()
        return con

    def open_connection(self) -> sqlite3.Connection:
        """A new connection of its own (a long write transaction that this thread's reads must
        not see, as in ``Collection.bulk``); the caller closes it."""
        con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA busy_timeout=60000")
        except sqlite3.DatabaseError:
            con.close()  # e.g. "file is not a database"; Store() reports it
            raise
        return con

    # ------------------------------------------------------------ cheap freshness check
    def _changes(self) -> mmap.mmap | None:
        """A shared mapping of :data:`CHANGES` (made once; ``None`` where it cannot be)."""
        mm = self._changes_map
        if mm is None and not self._changes_failed:
            with self._changes_lock:
                if self._changes_map is None and not self._changes_failed:
                    self._changes_map = self._map_changes()
                    self._changes_failed = self._changes_map is None
            mm = self._changes_map
        return mm

    def _map_changes(self) -> mmap.mmap | None:
        path = str(self.path.parent / CHANGES)
        try:  # the creator writes real bytes (a sparse page could fail to map on a full disk)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                if os.pwrite(fd, bytes(8), 0) != 8:
                    raise OSError("short write")
            finally:
                os.close(fd)
        except FileExistsError:
            pass
        except OSError:  # a read-only or full folder: every check asks SQLite
            return None
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size < 8:  # being created by another process, or damaged
                return None
            return mmap.mmap(fd, 8, access=mmap.ACCESS_WRITE)
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)  # the mapping stays valid; this file holds no locks

    def change_token(self) -> bytes | None:
        """The epoch last published by a writer, as 8 bytes (``None``: ask SQLite every time).

        Reading it costs a fraction of a microsecond, where a query of the database costs
        several (and more once a search has evicted SQLite from the cache). Equal tokens mean
        that no writer published a commit in between; see :meth:`published`.
        """
        mm = self._changes()
        return None if mm is None else mm[:8]

    def published(self, epoch: int | None) -> None:
        """Record that the transaction giving ``epoch`` has committed (call right after COMMIT).

        Epochs are unique per commit, so a later commit always leaves a value other than the
        one a reader remembered; a writer that dies between its COMMIT and this call leaves
        readers at most :data:`MAX_TRUST_S` behind.
        """
        mm = self._changes() if epoch is not None else None
        if mm is not None:
            mm[:8] = int(epoch).to_bytes(8, "little", signed=True)

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
