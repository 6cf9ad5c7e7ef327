"""The writer lock of a collection: one writer at a time, across threads and processes.

A writer takes an exclusive ``flock`` on ``.writer.lock`` and writes who it is into the file
(pid, host, command line, since when). A second writer waits for it with a bounded wait: after
:data:`NOTICE_AFTER_S` it logs one line naming the holder, and after the timeout it raises
:class:`WriteLockTimeout` naming the holder and the fix. The timeout is ``coll.lock_timeout``
(default: ``HERON_LOCK_TIMEOUT`` seconds from the environment, else :data:`DEFAULT_TIMEOUT_S`).

The lock is released by the kernel when its holder dies, so a crashed writer never blocks the
next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_FILE = ".writer.lock"
#: seconds a writer waits for another one by default (encoding happens before the lock is taken,
#: so a writer holds it for its commit, a compaction or an index publication)
DEFAULT_TIMEOUT_S = 600.0
#: seconds of waiting after which one line names the holder
NOTICE_AFTER_S = 2.0


class WriteLockTimeout(TimeoutError):
    """Another writer held the collection's write lock for longer than the wait allowed."""


def default_timeout() -> float:
    """``HERON_LOCK_TIMEOUT`` (seconds, ``>= 0``) if set, else :data:`DEFAULT_TIMEOUT_S`."""
    raw = os.environ.get("HERON_LOCK_TIMEOUT")
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT_S
    return check_timeout(raw, what="HERON_LOCK_TIMEOUT")


def check_timeout(value: Any, *, what: str = "lock_timeout") -> float:
    """``value`` as a finite number of seconds ``>= 0`` (else a ValueError naming it)."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number of seconds, got {value!r}") from None
    if isinstance(value, bool) or not (t >= 0) or t == float("inf"):
        raise ValueError(f"{what} must be a finite number of seconds >= 0, got {value!r}")
    return t


def holder(path: Path) -> str:
    """Who holds (or last held) the lock at ``path``, in words."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another writer (it has not said who it is yet)"
    since = info.get("since")
    ago = f", for {time.time() - since:.0f} s" if isinstance(since, int | float) else ""
    cmd = info.get("command")
    return f"pid {info['pid']} on {info.get('host', '?')}" + (f" ({cmd!r})" if cmd else "") + ago


@contextlib.contextmanager
def write_lock(root: Path, timeout: float) -> Iterator[None]:
    """Hold the writer lock of the collection at ``root`` (waiting at most ``timeout`` s)."""
    path = root / LOCK_FILE
    with open(path, "a+") as fh:
        fd = fh.fileno()
        _acquire(fd, path, timeout)
        try:
            _say_who(fd)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _acquire(fd: int, path: Path, timeout: float) -> None:
    start = time.monotonic()
    deadline, delay, told = start + timeout, 0.002, False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if told:
                log.info("got the write lock of %s after %.1f s", path.parent, time.monotonic() - start)
            return
        except BlockingIOError:
            pass
        now = time.monotonic()
        if now >= deadline:
            raise WriteLockTimeout(
                f"collection {str(path.parent)!r} is being written by {holder(path)}; waited "
                f"{timeout:g} s for its write lock. Retry when it is done, wait longer "
                "(HERON_LOCK_TIMEOUT=SECONDS, or coll.lock_timeout), or stop that process"
            )
        if not told and now - start >= NOTICE_AFTER_S:
            log.warning(
                "waiting for the write lock of %s, held by %s (at most %g s more)",
                path.parent, holder(path), deadline - now,
            )
            told = True
        time.sleep(min(delay, max(deadline - now, 0.0)))
        delay = min(delay * 2, 0.05)


def _say_who(fd: int) -> None:
    """Write the holder's identity into the lock file (best effort: a full disk is no error)."""
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200],
        "since": time.time(),
    }
    data = json.dumps(info).encode()
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
