"""Metadata filters compiled to SQLite over the collection's ``docs.metadata`` JSON column.

A filter is a dict in the common vector-database syntax::

    {"year": 2020}                                   # equality
    {"year": {"$gte": 2018, "$lt": 2021}}            # ranges: $gt $gte $lt $lte, $eq $ne
    {"lang": {"$in": ["en", "de"]}}                  # sets: $in $nin
    {"$and": [f1, f2]}, {"$or": [f1, f2]}, {"$not": f}  # boolean combinations
    {"a.b": 1}                                       # nested field (json path $.a.b)

Several keys in one dict are AND-ed. :func:`compile_filter` returns ``(sql, params)`` over
``json_extract(metadata, '$.<field>')``; :func:`matching_keys` runs it and returns the live keys
that match, which the indexes apply *inside* the search (faiss ``IDSelector``) or answer exactly
when few match.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

OPS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
SETS = ("$in", "$nin")
BOOLS = ("$and", "$or", "$not")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$")


def _value(v: Any, field: str) -> Any:
    if isinstance(v, bool):
        return int(v)  # json_extract returns 1/0 for true/false
    if v is None or isinstance(v, (int, float, str)):
        return v
    raise TypeError(
        f"filter value for {field!r} must be str/int/float/bool/None, got {type(v).__name__}"
    )


def _field(name: str) -> tuple[str, list[Any]]:
    if not isinstance(name, str) or not _FIELD.match(name):
        raise ValueError(f"bad filter field {name!r}; use a metadata key like 'year' or 'a.b'")
    return "json_extract(metadata, ?)", ["$." + name]


def compile_filter(flt: Any) -> tuple[str, list[Any]]:
    """SQL ``WHERE`` fragment and parameters for filter ``flt`` (see the module docstring)."""
    if not isinstance(flt, dict):
        raise TypeError(
            f"a filter must be a dict such as {{'year': {{'$gte': 2020}}}}, got {type(flt).__name__}"
        )
    if not flt:
        return "1", []
    parts: list[str] = []
    params: list[Any] = []
    for key, val in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(val, (list, tuple)) or not val:
                raise ValueError(f"{key} needs a non-empty list of filters, got {val!r}")
            subs = [compile_filter(v) for v in val]
            parts.append(
                "(" + (" AND " if key == "$and" else " OR ").join(f"({s})" for s, _ in subs) + ")"
            )
            for _, p in subs:
                params += p
        elif key == "$not":
            s, p = compile_filter(val)
            parts.append(f"NOT COALESCE(({s}), 0)")
            params += p
        elif key.startswith("$"):
            raise ValueError(
                f"unknown filter operator {key!r}; use {list(OPS) + list(SETS) + list(BOOLS)}"
            )
        else:
            expr, fp = _field(key)
            conds = val if isinstance(val, dict) else {"$eq": val}
            if not conds:
                raise ValueError(f"empty condition for field {key!r}")
            for op, v in conds.items():
                if op in OPS:
                    if v is None and op in ("$eq", "$ne"):
                        parts.append(f"{expr} IS {'NOT ' if op == '$ne' else ''}NULL")
                        params += fp
                    else:
                        parts.append(f"COALESCE({expr} {OPS[op]} ?, 0)")
                        params += fp + [_value(v, key)]
                elif op in SETS:
                    if not isinstance(v, (list, tuple, set)):
                        raise ValueError(f"{op} for field {key!r} needs a list, got {v!r}")
                    vals = [_value(x, key) for x in v]
                    if not vals:
                        parts.append("0" if op == "$in" else "1")
                        continue
                    parts.append(
                        f"COALESCE({expr} {'NOT ' if op == '$nin' else ''}IN ({','.join('?' * len(vals))}), 0)"
                    )
                    params += fp + vals
                else:
                    raise ValueError(
                        f"unknown operator {op!r} for field {key!r}; use {list(OPS) + list(SETS)}"
                    )
    return " AND ".join(f"({p})" for p in parts), params


def matching_keys(collection: Any, flt: dict[str, Any]) -> np.ndarray:
    """Live document keys whose metadata matches ``flt`` (ascending ``int64``)."""
    where, params = compile_filter(flt)
    con = collection.store.connect()
    rows = con.execute(
        f"SELECT key FROM docs WHERE deleted = 0 AND ({where}) ORDER BY key", params
    ).fetchall()
    return np.fromiter((r for (r,) in rows), dtype=np.int64, count=len(rows))
