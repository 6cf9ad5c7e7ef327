"""Named crash points of the commit path, for the crash-matrix tests (inert unless asked).

``point(name)`` does nothing unless the environment variable ``HERON_FAULT`` is set to
``NAME`` or ``NAME:N``; then the process SIGKILLs itself the ``N``-th time (default first)
it reaches point ``NAME`` — exactly where a power cut or an OOM kill could stop a writer.
The variable is read at each call (no import-time state); unset, a point costs one dict lookup.

Points: ``segment.file`` (after each array file of a new segment), ``segment.rename``,
``write.commit`` / ``write.committed`` (around an add/upsert's SQLite commit),
``delete.commit``, ``merge.segment`` / ``merge.commit`` (compaction), ``artifact.built`` /
``artifact.rename`` / ``artifact.publish`` (index builds and updates), ``gc.remove``.
"""

from __future__ import annotations

import os
import signal

ENV = "HERON_FAULT"
_hits: dict[str, int] = {}


def point(name: str) -> None:
    """SIGKILL this process if ``HERON_FAULT`` names this point (and hit count)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    want, _, nth = spec.partition(":")
    if want != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
