"""Disk-full errors of the write path, reported as what they are.

A full disk surfaces from numpy as ``OSError: 128000 requested and 21472 written``, from
SQLite as ``database or disk is full``, from the OS as ``ENOSPC``/``EDQUOT``.
:func:`disk_full` turns any of them into one :class:`DiskFullError` that says the disk is full,
where, how much is free, and that the collection is still at its last commit (every write is
all or nothing: a failed one leaves only temporary files, removed by the next writer).
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path


class DiskFullError(OSError):
    """No space left on the device holding a collection; the collection is at its last commit."""

    def __str__(self) -> str:
        return str(self.strerror)


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, DiskFullError):
        return False  # already translated
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    msg = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "full" in msg:
        return True
    return isinstance(exc, OSError) and "requested and" in msg and "written" in msg


def nearly_full(root: Path, margin: int = 1 << 20) -> bool:
    """Whether the file system holding ``root`` has less than ``margin`` bytes free."""
    try:
        return shutil.disk_usage(root).free < margin
    except OSError:
        return False


def disk_full(exc: BaseException, root: Path, generation: int | None) -> DiskFullError | None:
    """The :class:`DiskFullError` for ``exc`` raised while writing to the collection at ``root``."""
    if not is_disk_full(exc):
        return None
    try:
        free = f"{shutil.disk_usage(root).free:,} bytes free"
    except OSError:
        free = "free space unknown"
    at = "its last commit" if generation is None else f"its last commit (generation {generation})"
    return DiskFullError(
        errno.ENOSPC,
        f"disk full while writing to the collection at {str(root)!r} ({free}; {exc}); "
        f"nothing was changed: the collection is still at {at}. Free some space and retry",
    )


__all__ = ["DiskFullError", "disk_full", "is_disk_full", "nearly_full"]
