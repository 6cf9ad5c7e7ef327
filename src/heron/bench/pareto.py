"""Pareto frontier of measured configurations (fewer bytes, higher quality, optionally faster)."""

from __future__ import annotations

from collections.abc import Sequence


def dominates(a: dict, b: dict, keys: Sequence[tuple[str, str]]) -> bool:
    """Whether row ``a`` is at least as good as ``b`` on every key and better on one.

    ``keys`` are ``(name, "min" | "max")`` pairs.
    """
    better = False
    for name, sense in keys:
        va, vb = a[name], b[name]
        if sense == "min":
            va, vb = -va, -vb
        if va < vb:
            return False
        if va > vb:
            better = True
    return better


def pareto_front(
    rows: Sequence[dict],
    keys: Sequence[tuple[str, str]] = (("memory_bytes", "min"), ("recall10_exact", "max")),
) -> list[int]:
    """Indices of the rows no other row dominates."""
    return [
        i
        for i, r in enumerate(rows)
        if not any(dominates(o, r, keys) for j, o in enumerate(rows) if j != i)
    ]
