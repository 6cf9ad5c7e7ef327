"""Memory pages before a timed build: what a VM charges for the first touch."""

from __future__ import annotations

import subprocess
import sys
import time


def prewarm(gb: float) -> float:
    """Touch and free ``gb`` GB in a throwaway process; returns the seconds it took.

    A VM may hand memory to its guest lazily: here the first touch of a page the guest has not
    used lately costs about 6 s per GB, and a page freed a moment ago costs nothing. Without
    this, a build's time depended on what ran before it (LanceDB flat took 14.4 s and 2.8 s in
    two runs of the same command). The touch runs in another process, so the worker's peak RSS
    stays its own.
    """
    if gb <= 0:
        return 0.0
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"b = bytes([1]) * {int(gb * 2**30)}"], check=True)
    return time.perf_counter() - t
