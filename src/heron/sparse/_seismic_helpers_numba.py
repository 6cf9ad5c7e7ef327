"""numba helpers shared by the Seismic build and search kernels (imported lazily, only with numba).

Hand-written so that they compile fast (see :mod:`heron.sparse._seismic_numba`): a sparse dot
product with four accumulators, heapsorts (:func:`argsort_desc`, :func:`sort_int`), a binary
search (:func:`lower_bound`) and array growth (:func:`grow`).
"""

from __future__ import annotations

import numba as nb
import numpy as np

_JIT = {"nogil": True, "cache": True}


@nb.njit(inline="always", **_JIT)
def sparse_dot(qd, idx, val, z0, z1):
    """``sum(qd[idx[z]] * val[z] for z in range(z0, z1))`` with four independent accumulators."""
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    s3 = np.float32(0.0)
    z = z0
    while z + 4 <= z1:
        s0 += qd[idx[z]] * val[z]
        s1 += qd[idx[z + 1]] * val[z + 1]
        s2 += qd[idx[z + 2]] * val[z + 2]
        s3 += qd[idx[z + 3]] * val[z + 3]
        z += 4
    while z < z1:
        s0 += qd[idx[z]] * val[z]
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


@nb.njit(**_JIT)
def sort_int(a):
    """Sort an integer array ascending in place (heapsort over a max-heap)."""
    n = a.shape[0]
    for start in range((n - 2) // 2, -1, -1):
        i = start
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and a[c + 1] > a[c]:
                c += 1
            if a[c] > a[i]:
                a[i], a[c] = a[c], a[i]
                i = c
            else:
                break
    for end in range(n - 1, 0, -1):
        a[0], a[end] = a[end], a[0]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= end:
                break
            if c + 1 < end and a[c + 1] > a[c]:
                c += 1
            if a[c] > a[i]:
                a[i], a[c] = a[c], a[i]
                i = c
            else:
                break


@nb.njit(**_JIT)
def lower_bound(a, lo, hi, v):
    """First position in ``a[lo:hi]`` (sorted ascending) whose value is >= ``v``."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(**_JIT)
def grow(a, need):
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, 2 * a.shape[0]), dtype=a.dtype)
    for i in range(a.shape[0]):
        b[i] = a[i]
    return b
