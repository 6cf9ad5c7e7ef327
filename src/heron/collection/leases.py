"""Reader leases: which commit epochs some open snapshot, in any process, may still read.

Every process that takes snapshots of a collection owns one lease file
``leases/<pid>-<token>.lease`` and holds an exclusive ``flock`` on it for as long as the
collection is open. The file holds the smallest epoch among that process's live snapshots
(a snapshot is alive while anything references it: a retriever's search, a :class:`Results`
whose ids are not yet resolved). A lease whose lock can be taken belongs to a dead process and
is removed.

Garbage collection (:meth:`Leases.oldest_held`) may delete a segment or artifact version
retired at epoch ``e`` once every lease holds an epoch ``>= e``: no snapshot that still points
at it exists anywhere. A snapshot announces its epoch *before* it opens its read transaction,
so a writer that reads the leases after its own commit can never miss a reader that might see
the state before that commit.
"""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from pathlib import Path
from typing import Any

LEASES = "leases"
_WIDTH = 20  # fixed-width decimal epoch, rewritten in place


class Leases:
    """This process's lease on one collection folder, and the view of everyone's leases."""

    def __init__(self, root: Path) -> None:
        self.dir = root / LEASES
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._held: dict[int, int] = {}  # id(snapshot) -> epoch
        self._pending = 0  # snapshots being taken (announced, not yet registered)
        self._pending_epoch: int | None = None
        self._written: int | None = None

    # -- this process -----------------------------------------------------------
    def _file(self) -> int:
        if self._fd is None:
            self.dir.mkdir(exist_ok=True)
            name = f"{os.getpid()}-{os.urandom(4).hex()}"
            tmp, path = self.dir / f".{name}.tmp", self.dir / f"{name}.lease"
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)  # locked before anyone can see it
            os.replace(tmp, path)
            self._fd = fd
            self._path = path
        return self._fd

    def _write(self) -> None:
        vals = list(self._held.values())
        if self._pending_epoch is not None:
            vals.append(self._pending_epoch)
        low = min(vals) if vals else -1
        if low == self._written:
            return
        fd = self._file()
        os.pwrite(fd, str(low).rjust(_WIDTH).encode(), 0)
        self._written = low

    def announce(self, epoch: int) -> None:
        """Before a snapshot's read transaction: hold ``epoch`` (the latest one seen)."""
        with self._lock:
            self._pending += 1
            if self._pending_epoch is None or epoch < self._pending_epoch:
                self._pending_epoch = epoch
            self._write()

    def hold(self, snapshot: Any, epoch: int) -> None:
        """Register a taken snapshot; its epoch is released when it is garbage-collected."""
        with self._lock:
            self._pending = max(0, self._pending - 1)
            if self._pending == 0:
                self._pending_epoch = None
            key = id(snapshot)
            self._held[key] = epoch
            weakref.finalize(snapshot, self._release, key)
            self._write()

    def cancel(self) -> None:
        """An announced snapshot was not taken (or reused a cached one)."""
        with self._lock:
            self._pending = max(0, self._pending - 1)
            if self._pending == 0:
                self._pending_epoch = None
            self._write()

    def _release(self, key: int) -> None:
        with self._lock:
            self._held.pop(key, None)
            if self._fd is not None:
                self._write()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                try:
                    os.unlink(self._path)
                except OSError:
                    pass
                os.close(self._fd)
                self._fd = None
                self._written = None

    # -- everyone ---------------------------------------------------------------
    def oldest_held(self) -> int | None:
        """The smallest epoch any live snapshot of any process holds (``None``: none held)."""
        low: int | None = None
        if not self.dir.is_dir():
            return None
        for p in self.dir.glob("*.lease"):
            if self._fd is not None and p == getattr(self, "_path", None):
                with self._lock:
                    vals = list(self._held.values())
                    if self._pending_epoch is not None:
                        vals.append(self._pending_epoch)
                v = min(vals) if vals else None
            else:
                v = _read_foreign(p)
            if v is not None and v >= 0:
                low = v if low is None else min(low, v)
        return low


def _read_foreign(path: Path) -> int | None:
    """Another process's lease (removed when its owner is gone)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, _WIDTH, 0).strip()
            try:
                return int(raw) if raw else -1
            except ValueError:
                return 0  # being written: hold everything
        # the owner died: its lease is void
        try:
            os.unlink(path)
        except OSError:
            pass
        return None
    finally:
        os.close(fd)
