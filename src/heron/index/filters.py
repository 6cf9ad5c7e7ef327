"""Metadata filters compiled to SQLite over the collection's ``docs.metadata`` JSON column.

A filter is a dict in the common vector-database syntax::

    {"year": 2020}                                   # equality
    {"year": {"$gte": 2018, "$lt": 2021}}            # ranges: $gt $gte $lt $lte, $eq $ne
    {"lang": {"$in": ["en", "de"]}}                  # sets: $in $nin
    {"$and": [f1, f2]}, {"$or": [f1, f2]}, {"$not": f}  # boolean combinations
    {"a.b": 1}                                       # nested field (json path $.a.b)
    {"title": {"$contains": "cat"}}                  # substring of a string field ...
    {"tags": {"$contains": "ml"}}                    # ... or an element of a list field
    {"path": {"$like": "docs/%.md"}}                 # SQL LIKE: % any run, _ one character,
                                                     #   ASCII letters case-insensitive
    {"summary": {"$exists": True}}                   # the field is present (even if null)

Several keys in one dict are AND-ed.

Values compare like with like, as in SQLite: a string never equals or orders against a number,
so ``{"year": {"$gte": "2025"}}`` cannot match years stored as integers. Rather than silently
matching nothing, :func:`matching_keys` raises ``ValueError`` when a condition's value has a
type that none of the field's stored values has (numbers and booleans count as one type; NaN
and infinite values are refused outright). Pass the value with the stored type (``2025``).
 :func:`compile_filter` returns ``(sql, params)`` over
``json_extract(metadata, '$.<field>')``; :func:`matching_keys` runs it and returns the live keys
that match, which the indexes apply *inside* the search (faiss ``IDSelector``) or answer exactly
when few match.

Unknown fields are an error, never a silent empty result: :func:`matching_keys` raises
``ValueError`` naming a field that no live document has, with the fields that exist (see
:func:`check_fields`). A field used only under ``$exists`` is exempt, since asking whether it
is present is a fair question.
"""

from __future__ import annotations

import math
import re
import sqlite3
from typing import Any

import numpy as np

OPS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
SETS = ("$in", "$nin")
BOOLS = ("$and", "$or", "$not")
#: operators on one field beyond comparisons and sets
MATCH = ("$contains", "$like", "$exists")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$")


def _value(v: Any, field: str) -> Any:
    if isinstance(v, bool):
        return int(v)  # json_extract returns 1/0 for true/false
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(
            f"filter value for {field!r} is {v!r}; compare with a finite number (metadata holds no NaN or inf)"
        )
    if v is None or isinstance(v, (int, float, str)):
        return v
    raise TypeError(
        f"filter value for {field!r} must be str/int/float/bool/None, got {type(v).__name__}"
    )


def _field(name: str) -> tuple[str, list[Any]]:
    if not isinstance(name, str) or not _FIELD.match(name):
        raise ValueError(f"bad filter field {name!r}; use a metadata key like 'year' or 'a.b'")
    return "json_extract(metadata, ?)", ["$." + name]


#: deepest nesting of $and / $or / $not a filter may use (SQLite's parser overflows near 14)
MAX_FILTER_DEPTH = 10


def compile_filter(flt: Any, _depth: int = 0) -> tuple[str, list[Any]]:
    """SQL ``WHERE`` fragment and parameters for filter ``flt`` (see the module docstring)."""
    if _depth > MAX_FILTER_DEPTH:
        raise ValueError(
            f"filter nested deeper than {MAX_FILTER_DEPTH} levels of $and/$or/$not; flatten it"
        )
    if not isinstance(flt, dict):
        raise TypeError(
            f"a filter must be a dict such as {{'year': {{'$gte': 2020}}}}, got {type(flt).__name__}"
        )
    if not flt:
        return "1", []
    parts: list[str] = []
    params: list[Any] = []
    for key, val in flt.items():
        if not isinstance(key, str):
            raise TypeError(f"filter keys must be strings (field names or operators), got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(val, (list, tuple)) or not val:
                raise ValueError(f"{key} needs a non-empty list of filters, got {val!r}")
            subs = [compile_filter(v, _depth + 1) for v in val]
            parts.append(
                "(" + (" AND " if key == "$and" else " OR ").join(f"({s})" for s, _ in subs) + ")"
            )
            for _, p in subs:
                params += p
        elif key == "$not":
            s, p = compile_filter(val, _depth + 1)
            parts.append(f"NOT COALESCE(({s}), 0)")
            params += p
        elif key.startswith("$"):
            raise ValueError(
                f"unknown filter operator {key!r}; use {list(OPS) + list(SETS) + list(MATCH) + list(BOOLS)}"
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
                elif op in MATCH:
                    sql, p = _match(op, v, key, fp)
                    parts.append(sql)
                    params += p
                else:
                    raise ValueError(
                        f"unknown operator {op!r} for field {key!r}; use {list(OPS) + list(SETS) + list(MATCH)}"
                    )
    return " AND ".join(f"({p})" for p in parts), params


def _match(op: str, v: Any, field: str, fp: list[Any]) -> tuple[str, list[Any]]:
    """SQL for ``$contains`` / ``$like`` / ``$exists`` on one field (json path in ``fp``)."""
    if op == "$exists":
        if not isinstance(v, bool):
            raise TypeError(f"$exists for field {field!r} needs true or false, got {v!r}")
        return f"json_type(metadata, ?) IS {'NOT ' if v else ''}NULL", fp
    if op == "$like":
        if not isinstance(v, str):
            raise TypeError(
                f"$like for field {field!r} needs a pattern string such as 'docs/%.md', got {v!r}"
            )
        return "COALESCE(json_extract(metadata, ?) LIKE ?, 0)", fp + [v]
    # $contains: substring of a string, element of an array; anything else never matches
    if isinstance(v, (dict, list, tuple)):
        raise TypeError(
            f"$contains for field {field!r} needs one str/int/float/bool value, got {v!r}; "
            "use $in to match any of several values"
        )
    val = _value(v, field)
    sql = (
        "COALESCE(CASE json_type(metadata, ?) "
        "WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each(metadata, ?) WHERE json_each.value = ?) "
        "WHEN 'text' THEN instr(json_extract(metadata, ?), ?) > 0 "
        "ELSE 0 END, 0)"
    )
    if not isinstance(val, str):  # a number is never a substring of a text field
        return sql, fp + fp + [val] + fp + [None]
    return sql, fp + fp + [val] + fp + [val]


def referenced_fields(flt: Any) -> set[str]:
    """Top-level metadata keys a filter tests, except those used only under ``$exists``."""
    out: set[str] = set()
    if not isinstance(flt, dict):
        return out
    for key, val in flt.items():
        if key in ("$and", "$or") and isinstance(val, (list, tuple)):
            for sub in val:
                out |= referenced_fields(sub)
        elif key == "$not":
            out |= referenced_fields(val)
        elif not key.startswith("$"):
            ops = val if isinstance(val, dict) else {"$eq": val}
            if set(ops) - {"$exists"}:
                out.add(key.split(".", 1)[0])
    return out


def known_fields(collection: Any, limit: int = 50) -> list[str]:
    """Sorted top-level metadata keys of live documents (at most ``limit``)."""
    con = collection.store.connect()
    rows = con.execute(
        "SELECT DISTINCT j.key FROM docs, json_each(docs.metadata) AS j "
        "WHERE docs.deleted = 0 ORDER BY j.key LIMIT ?",
        (limit,),
    ).fetchall()
    return [r for (r,) in rows]


def check_fields(collection: Any, flt: dict[str, Any]) -> None:
    """Raise ``ValueError`` when ``flt`` tests a metadata field that no live document has.

    The message names the field and the fields that exist. Without this check a typo such as
    ``{"yaer": 2020}`` would silently match nothing. Each field costs one indexed probe that stops
    at the first document having it.
    """
    con = collection.store.connect()
    for name in sorted(referenced_fields(flt)):
        hit = con.execute(
            "SELECT 1 FROM docs WHERE deleted = 0 AND json_type(metadata, ?) IS NOT NULL LIMIT 1",
            ("$." + name,),
        ).fetchone()
        if hit is None:
            known = known_fields(collection)
            raise ValueError(
                f"filter field {name!r} is not in the metadata of any document; known fields: "
                f"{known if known else 'none (the documents carry no metadata)'}"
            )


def matching_keys(
    collection: Any, flt: dict[str, Any], *, live_only: bool = True, check: bool = True
) -> np.ndarray:
    """Document keys whose metadata matches ``flt`` (ascending ``int64``; live ones by default).

    Raises ``ValueError`` when a stored document's metadata is not valid JSON (naming it), when
    a condition's value type matches none of the field's stored values (see the module
    docstring), or (with ``check``) when it tests a field no live document has (see
    :func:`check_fields`) instead of matching nothing.
    """
    where, params = compile_filter(flt)
    if check and len(collection):
        check_fields(collection, flt)
    con = collection.store.connect()
    live = "deleted = 0 AND " if live_only else ""
    try:
        rows = con.execute(
            f"SELECT key FROM docs WHERE {live}({where}) ORDER BY key", params
        ).fetchall()
    except sqlite3.OperationalError as exc:
        msg = str(exc)
        if "stack overflow" in msg or "too many" in msg or "too large" in msg:
            raise ValueError(
                f"filter too large for SQLite ({msg}); use fewer nested $and/$or/$not levels "
                "or split a long $in list into several searches"
            ) from exc
        if "JSON" not in msg:
            raise
        bad = con.execute(
            "SELECT id FROM docs WHERE deleted = 0 AND NOT json_valid(metadata) LIMIT 5"
        ).fetchall()
        raise ValueError(
            f"metadata of document(s) {[b for (b,) in bad]} is not valid JSON (NaN or inf written by an "
            "older heron?); re-add them with upsert() and clean metadata, or delete them"
        ) from exc
    _check_types(collection, con, flt)
    return np.fromiter((r for (r,) in rows), dtype=np.int64, count=len(rows))


def _kind(v: Any) -> str | None:
    if isinstance(v, str):
        return "text"
    if isinstance(v, (bool, int, float)):
        return "number"
    return None


_STORED_KIND = {
    "text": "text",
    "integer": "number",
    "real": "number",
    "true": "number",
    "false": "number",
}


def _leaves(flt: Any) -> list[tuple[str, str, Any]]:
    """Every ``(field, op, value)`` condition of a (valid) filter."""
    out: list[tuple[str, str, Any]] = []
    for key, val in flt.items():
        if not isinstance(key, str):
            raise TypeError(f"filter keys must be strings (field names or operators), got {key!r}")
        if key in ("$and", "$or"):
            for sub in val:
                out += _leaves(sub)
        elif key == "$not":
            out += _leaves(val)
        else:
            for op, v in (val if isinstance(val, dict) else {"$eq": val}).items():
                for x in v if op in SETS else [v]:
                    out.append((key, op, x))
    return out


#: ``(collection path, generation, field) -> stored value kinds``, so the type check scans once
_KINDS_CACHE: dict[tuple[str, int, str], set[str]] = {}


def _stored_kinds(collection: Any, con: sqlite3.Connection, name: str) -> set[str]:
    key = (str(collection.path), int(collection.generation), name)
    if key not in _KINDS_CACHE:
        rows = con.execute(
            "SELECT DISTINCT json_type(metadata, ?) FROM docs WHERE deleted = 0", ["$." + name]
        ).fetchall()
        if len(_KINDS_CACHE) > 256:
            _KINDS_CACHE.clear()
        _KINDS_CACHE[key] = {_STORED_KIND.get(t, t) for (t,) in rows if t not in (None, "null")}
    return _KINDS_CACHE[key]


def _check_types(collection: Any, con: sqlite3.Connection, flt: dict[str, Any]) -> None:
    """Raise when a condition's value type matches none of the field's stored value types."""
    fields: dict[str, set[str]] = {}
    for name, op, v in _leaves(flt):
        kind = _kind(v)
        if kind is not None and (op in OPS or op in SETS):  # $contains/$like/$exists: own rules
            fields.setdefault(name, set()).add(kind)
    for name, kinds in fields.items():
        stored = _stored_kinds(collection, con, name)
        if stored and not kinds & stored and "array" not in stored:
            hint = "a number (2025, not '2025')" if "number" in stored else "a string"
            raise ValueError(
                f"filter on {name!r} compares with a {'/'.join(sorted(kinds))} value, but the field "
                f"holds {' or '.join(sorted(stored))} values, so nothing could match; pass {hint}"
            )
