"""numba helpers shared by the Seismic build and search kernels (imported lazily, only with numba).

Hand-written so that they compile fast (see :mod:`heron.sparse._seismic_numba`): a sparse dot
product with four accumulators over a forward index kept in ``float32`` or ``float16``
(:func:`forward_dot`) and a heapsort (:func:`argsort_desc`).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from heron._numba_ext import value_f32

_JIT = {"nogil": True, "cache": True}

#: a list's summary entries are indexed by the component of every ``SKIP``-th one (``sum_skip``);
#: 32 ``uint16`` components are one cache line (16 measured no faster, 64 slower)
SKIP = 32


@nb.njit(inline="always", **_JIT)
def forward_dot(qd, idx, val, z0, z1):
    """``sum(qd[idx[z]] * val[z] for z in range(z0, z1))`` with four independent accumulators,
    ``val`` being ``float32`` or float16 bits (:func:`heron._numba_ext.value_f32`)."""
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    s3 = np.float32(0.0)
    z = z0
    while z + 4 <= z1:
        s0 += qd[idx[z]] * value_f32(val[z])
        s1 += qd[idx[z + 1]] * value_f32(val[z + 1])
        s2 += qd[idx[z + 2]] * value_f32(val[z + 2])
        s3 += qd[idx[z + 3]] * value_f32(val[z + 3])
        z += 4
    while z < z1:
        s0 += qd[idx[z]] * value_f32(val[z])
        z += 1
    return (s0 + s1) + (s2 + s3)


@nb.njit(inline="always", **_JIT)
def _after(vals, x, y):
    """Whether index ``x`` ranks after ``y`` by value descending, ties by index ascending."""
    return vals[x] < vals[y] or (vals[x] == vals[y] and x > y)


@nb.njit(**_JIT)
def _sift_worst(vals, order, i, n):
    """Sift ``order[i]`` down a heap of ``order[:n]`` whose root ranks last (see :func:`_after`)."""
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _after(vals, order[c + 1], order[c]):
            c += 1
        if _after(vals, order[c], order[i]):
            order[i], order[c] = order[c], order[i]
            i = c
        else:
            break


@nb.njit(**_JIT)
def argsort_desc(vals, order):
    """Sort ``order`` (indices into ``vals``) in place: ``vals`` descending, ties index ascending.

    Heapsort: the heap's root is the hit ranking last, popped to the back repeatedly.
    """
    n = order.shape[0]
    for start in range((n - 2) // 2, -1, -1):
        _sift_worst(vals, order, start, n)
    for end in range(n - 1, 0, -1):
        order[0], order[end] = order[end], order[0]
        _sift_worst(vals, order, 0, end)
