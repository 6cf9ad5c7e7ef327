"""Documented limits and the shared validation helpers of heron's public edges.

Every public entry point (``Collection.add``/``upsert``/``search``, the retrievers, the CLI)
validates its inputs with the helpers here, so a bad value fails early with one clear
``ValueError``/``TypeError`` naming the value, the limit and the fix, instead of a numpy,
SQLite or out-of-memory error deep inside a kernel.

Limits
------
========================  ==============  =====================================================
constant                  value           what it bounds
========================  ==============  =====================================================
:data:`MAX_K`             1,000,000       hits per query (``k``, a retriever's ``depth``)
:data:`MAX_RESULT_SIZE`   100,000,000     ``n_queries * k`` cells of one :class:`Results`
:data:`MAX_OVERSAMPLE`    10,000          rescoring factor (first stage reads ``oversample*k``)
:data:`MAX_QUERY_CHARS`   100,000         characters of one query text
:data:`MAX_QUERY_BATCH`   100,000         queries in one search call
:data:`MAX_BATCH`         1,000,000       documents in one ``add``/``upsert`` call
:data:`MAX_METADATA_BYTES` 65,536         one document's metadata, JSON-encoded (UTF-8 bytes)
:data:`MAX_ID_CHARS`      1,024           characters of one document id
========================  ==============  =====================================================

``k`` larger than the collection is not an error: a search clamps it to the number of live
documents (:func:`clamp_k`) and pads the result back to the requested ``(n_queries, k)`` shape.

This module is part of the core layer: it imports nothing from heron.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: most hits one query may ask for (``k`` or a retriever's ``depth``)
MAX_K = 1_000_000
#: most cells (``n_queries * k``) of one result; its arrays take 12 bytes per cell
MAX_RESULT_SIZE = 100_000_000
#: largest rescoring factor; the first stage reads ``ceil(oversample * k)`` candidates
MAX_OVERSAMPLE = 10_000.0
#: longest query text, in characters
MAX_QUERY_CHARS = 100_000
#: most queries in one search call
MAX_QUERY_BATCH = 100_000
#: most documents in one add/upsert call (split larger inputs into several calls)
MAX_BATCH = 1_000_000
#: largest metadata of one document, JSON-encoded, in UTF-8 bytes
MAX_METADATA_BYTES = 65_536
#: longest document id, in characters
MAX_ID_CHARS = 1_024


# ---------------------------------------------------------------------- numbers
def check_number(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> Any:
    """Validate one numeric parameter: a real number (not bool), finite, within ``[low, high]``.

    Parameters
    ----------
    value: the value given by the user.
    name: the parameter's name, used in the message.
    low, high: inclusive bounds (``low`` exclusive with ``low_open``); ``None`` for none.
    integer: require an integral value (an ``int``, or a float like ``4.0``) and return ``int``.

    Returns
    -------
    ``float`` (or ``int`` with ``integer=True``).

    Raises
    ------
    TypeError: ``value`` is not a real number (a string, ``None``, a bool, a complex...).
    ValueError: ``value`` is NaN, infinite or out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a {'whole ' if integer else ''}number, got {value!r} ({type(value).__name__})"
        )
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if integer and not x.is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    rng = _range_text(low, high, low_open)
    if low is not None and (x < low or (low_open and x == low)):
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    if high is not None and x > high:
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    return int(value) if integer else x  # type: ignore[call-overload]


def _range_text(low: float | None, high: float | None, low_open: bool) -> str:
    lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    hi = "" if high is None else f"<= {high:g}"
    return " and ".join(p for p in (lo, hi) if p) or "a finite number"


def check_k(k: object, name: str = "k") -> int:
    """A cut-off ``k`` (or ``depth``): a positive int, at most :data:`MAX_K`."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name} must be a positive int, got {k!r} ({type(k).__name__})")
    if k <= 0:
        raise ValueError(
            f"{name} must be a positive int, got {name}={k}; ask for at least one hit ({name} >= 1)"
        )
    if k > MAX_K:
        raise ValueError(
            f"{name}={k} exceeds the limit of {MAX_K:,} hits per query (heron.limits.MAX_K); "
            "ask for fewer hits and page through the collection if you need all of it"
        )
    return int(k)


def clamp_k(k: int, live: int) -> int:
    """``k`` clamped to ``live`` documents (at least 1): the depth actually worth searching."""
    return max(1, min(int(k), int(live)))


def check_result_size(n_queries: int, k: int) -> None:
    """Refuse a result of more than :data:`MAX_RESULT_SIZE` cells (``n_queries * k``)."""
    if n_queries * k > MAX_RESULT_SIZE:
        raise ValueError(
            f"{n_queries} queries x k={k} is {n_queries * k:,} result cells, over the limit of "
            f"{MAX_RESULT_SIZE:,} (heron.limits.MAX_RESULT_SIZE); search fewer queries per call or lower k"
        )


def check_oversample(oversample: object) -> float:
    """A rescoring factor: finite, ``0 <= oversample <= MAX_OVERSAMPLE`` (0 disables rescoring)."""
    try:
        return float(check_number(oversample, "oversample", low=0, high=MAX_OVERSAMPLE))
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"{exc} (0 disables rescoring; heron.limits.MAX_OVERSAMPLE={MAX_OVERSAMPLE:g})"
        ) from None


def first_stage_depth(k: int, oversample: float, n: int) -> int:
    """Candidates a rescoring first stage reads: ``ceil(oversample * k)``, at least ``k``,
    at most ``max(n, k)`` (never more than the ``n`` rows there are)."""
    want = max(k, math.ceil(oversample * k)) if oversample > 0 else k
    return int(min(want, max(n, k)))


# ---------------------------------------------------------------------- vectors
def as_finite_vectors(
    x: object, *, dim: int, rows: int | None = None, what: str = "vectors"
) -> np.ndarray:
    """``x`` as a C-contiguous ``float32`` array ``(rows, dim)`` with only finite values.

    The finiteness check runs *after* the cast, so values beyond float32's range
    (about ``±3.4e38``), which the cast turns into ``inf``, are refused too.

    Raises
    ------
    TypeError: ``x`` is not a real numeric array (complex, object, strings).
    ValueError: wrong shape, or a NaN/inf (the message names the first bad row).
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{what} must be a real numeric array (float32 preferred), got dtype {arr.dtype}"
        )
    want = f"({rows}, {dim})" if rows is not None else f"(n, {dim})"
    if arr.ndim != 2 or arr.shape[1] != dim or (rows is not None and arr.shape[0] != rows):
        raise ValueError(
            f"{what} must have shape {want} (one row each; the collection's dimension is {dim}), got {arr.shape}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
        # a finite row sum means finite values (a NaN or inf never sums to a finite value), with
        # no (n, dim) boolean temporary; an overflowing sum of finite values and a real NaN or
        # inf both take the exact check below
        if out.size == 0 or np.isfinite(out.sum(axis=1)).all():
            return out
    ok = np.isfinite(out).all(axis=1)
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        raise ValueError(
            f"{what}[{bad}] contains NaN or inf after the cast to float32 "
            f"({int((~ok).sum())} bad row(s); values beyond +-3.4e38 overflow float32); "
            "fix or normalise the embeddings first"
        )
    return out


# ---------------------------------------------------------------------- documents
def check_batch(n: int, what: str = "documents") -> None:
    """Refuse more than :data:`MAX_BATCH` documents in one call."""
    if n > MAX_BATCH:
        raise ValueError(
            f"{n:,} {what} in one call exceed the limit of {MAX_BATCH:,} (heron.limits.MAX_BATCH); "
            "split them into several add()/upsert() calls"
        )


def as_ids(ids: Any, *, what: str = "ids") -> list[str]:
    """A list of document ids from ``ids``, a sequence of strings (integers are written out).

    Refuses a bare string (``ids="abc"`` would be three ids) and any element that is not a
    ``str`` or an ``int`` (``None``, floats, booleans, objects), which ``str()`` would silently
    turn into ids like ``"None"``.
    """
    if isinstance(ids, str | bytes):
        raise TypeError(
            f"{what} must be a list of strings, one per document, got the string {ids!r}; "
            f"for one document pass {what}=[{ids!r}]"
        )
    out = list(ids)
    if set(map(type, out)) <= {str}:  # the common case, checked at C speed
        return out
    ids, out = out, []
    for i, x in enumerate(ids):
        if isinstance(x, str):
            out.append(x)
        elif hasattr(x, "__index__") and not isinstance(x, bool | np.bool_):  # int, numpy ints
            out.append(str(x.__index__()))
        else:
            raise TypeError(
                f"{what}[{i}] must be a str, got {type(x).__name__}: {x!r}; "
                "document ids are strings (pass str(x) if that is what you mean)"
            )
    return out


def check_ids(ids: Sequence[str]) -> None:
    """Refuse empty ids and ids longer than :data:`MAX_ID_CHARS`."""
    if not ids or (min(map(len, ids)) > 0 and max(map(len, ids)) <= MAX_ID_CHARS):
        return
    for i, doc_id in enumerate(ids):
        if not doc_id:
            raise ValueError(f"ids[{i}] is empty; document ids must be non-empty strings")
        if len(doc_id) > MAX_ID_CHARS:
            raise ValueError(
                f"ids[{i}] has {len(doc_id):,} characters, over the limit of {MAX_ID_CHARS:,} "
                f"(heron.limits.MAX_ID_CHARS): {doc_id[:40]!r}...; use a shorter id (a hash of it, say)"
            )


def _non_string_key(value: Any) -> Any:
    """The first non-string key of ``value`` or of a dict nested in it (through lists), else None."""
    stack, seen = [value], set()
    while stack:
        v = stack.pop()
        if id(v) in seen:  # a circular structure: json.dumps refuses it next
            continue
        seen.add(id(v))
        if isinstance(v, Mapping):
            bad = next((key for key in v if not isinstance(key, str)), None)
            if bad is not None:
                return bad
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return None


def check_metadata(metadata: Any, n: int) -> list[dict]:
    """One JSON-safe metadata dict per document (``None`` becomes ``{}``).

    Refuses values JSON cannot carry (NaN and infinities, which SQLite's JSON functions reject
    at search time, and non-serialisable objects), and metadata larger than
    :data:`MAX_METADATA_BYTES` once encoded.
    """
    if metadata is None:
        return [{} for _ in range(n)]
    if isinstance(metadata, Mapping):
        raise TypeError("metadata must be a list with one dict per text, got a single dict")
    metas = list(metadata)
    if len(metas) != n:
        raise ValueError(
            f"got {len(metas)} metadata entries for {n} texts; pass one dict (or None) per text"
        )
    out = []
    for i, m in enumerate(metas):
        if m is None:
            m = {}
        if not isinstance(m, Mapping):
            raise TypeError(f"metadata[{i}] must be a dict, got {type(m).__name__}")
        m = dict(m)
        bad = _non_string_key(m)
        if bad is not None:  # JSON would turn it into a string, and {1: "a", "1": "b"} lose one
            raise TypeError(
                f"metadata[{i}] has the key {bad!r} ({type(bad).__name__}); metadata keys must be strings (nested ones too)"
            )
        try:
            enc = json.dumps(m, allow_nan=False)
        except TypeError as exc:
            raise TypeError(
                f"metadata[{i}] is not JSON-serialisable ({exc}); use str/int/float/bool/list/dict values"
            ) from exc
        except ValueError as exc:
            raise ValueError(
                f"metadata[{i}] holds NaN or an infinity ({exc}); JSON cannot store them: "
                "use None for a missing number"
            ) from exc
        size = len(enc.encode("utf-8"))
        if size > MAX_METADATA_BYTES:
            raise ValueError(
                f"metadata[{i}] is {size:,} bytes as JSON, over the limit of {MAX_METADATA_BYTES:,} "
                "(heron.limits.MAX_METADATA_BYTES); keep large payloads in the text or outside the collection"
            )
        out.append(m)
    return out


# ---------------------------------------------------------------------- queries
def plain_vectors(queries: Any, dim: int, k: int) -> Any:
    """``queries`` as a ``(n, dim)`` array when it needs no conversion and no check can refuse it
    (float32, C-contiguous, ``(n, dim)`` or ``(dim,)``, finite, within :data:`MAX_QUERY_BATCH`
    and :data:`MAX_RESULT_SIZE`), else ``None`` (the caller takes its checked path, which
    converts the array or names what is wrong). The hot paths of vector queries use it."""
    import math

    import numpy as np

    q = queries
    if type(q) is not np.ndarray or q.dtype != np.float32:
        return None
    if q.ndim == 1:
        q = q[None, :]
    if (
        q.ndim != 2
        or q.shape[1] != dim
        or not q.flags.c_contiguous
        or len(q) * k > MAX_RESULT_SIZE
        or len(q) > MAX_QUERY_BATCH
    ):
        return None
    flat = q.ravel()
    if not math.isfinite(flat.dot(flat)):  # NaN/inf anywhere (or overflow): the checked path
        return None
    return q


def check_queries(queries: Any, k: int | None = None) -> None:
    """Refuse more than :data:`MAX_QUERY_BATCH` queries, a query over :data:`MAX_QUERY_CHARS`,
    or (given ``k``) a result over :data:`MAX_RESULT_SIZE` cells.

    ``queries`` is a str, a list of str or anything with a ``texts`` list (``Queries``);
    other types are left to the pipeline's own type check.
    """
    texts = getattr(queries, "texts", queries)
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)):
        return
    if len(texts) > MAX_QUERY_BATCH:
        raise ValueError(
            f"{len(texts):,} queries in one call exceed the limit of {MAX_QUERY_BATCH:,} "
            "(heron.limits.MAX_QUERY_BATCH); search them in several calls"
        )
    for i, t in enumerate(texts):
        if isinstance(t, str) and len(t) > MAX_QUERY_CHARS:
            raise ValueError(
                f"query {i} has {len(t):,} characters, over the limit of {MAX_QUERY_CHARS:,} "
                "(heron.limits.MAX_QUERY_CHARS); shorten it"
            )
    if k is not None:
        check_result_size(len(texts), k)


# ---------------------------------------------------------------------- files
def file_in(folder: str | os.PathLike, name: Any, *, what: str) -> str:
    """``folder/name`` for a file (or folder) name read from a saved folder's own manifest, refused unless
    it is a plain file name inside ``folder`` (no absolute path, no ``..``, no separator, no
    link leading out): a tampered manifest never makes heron read files elsewhere.

    Raises ``ValueError`` naming the manifest entry and the folder (the folder is damaged).
    """
    ok = isinstance(name, str) and name not in ("", ".", "..") and "\x00" not in name
    ok = ok and "/" not in name and os.sep not in name
    path = os.path.join(os.fspath(folder), name) if ok else ""
    if ok and os.path.dirname(os.path.realpath(path)) != os.path.realpath(folder):
        ok = False  # a symbolic link leading out of the folder
    if not ok:
        raise ValueError(
            f"{what} in {os.fspath(folder)!r} names {name!r}, not a plain name inside that folder; "
            "the folder is damaged or was tampered with: rebuild it (heron repair for a collection)"
        )
    return path


_LOAD_LOCK = threading.Lock()


def load_npy(path: str | os.PathLike, *, mmap_mode: Any = None) -> np.ndarray:
    """``np.load`` of a ``.npy`` file whose errors name the file (truncated, corrupt, missing).

    Raises ``ValueError`` (``FileNotFoundError`` when missing), naming ``path``.

    One thread at a time: numpy parses the header with ``ast.literal_eval``, and a CPython
    without the fix for gh-106905 (3.11.7 here) can fail two such parses that overlap
    (``SystemError: AST constructor recursion depth mismatch``). It killed a reader thread of
    ``test_readers_only_see_committed_states`` in one clean-clone CI run.
    """
    try:
        with _LOAD_LOCK:
            return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"array file {str(path)!r} is missing ({exc.strerror})") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(
            f"array file {str(path)!r} is truncated or corrupt ({exc}); "
            "rebuild what holds it (the collection, or delete the index folder to rebuild it)"
        ) from exc


__all__ = [
    "MAX_BATCH",
    "MAX_ID_CHARS",
    "MAX_K",
    "MAX_METADATA_BYTES",
    "MAX_OVERSAMPLE",
    "MAX_QUERY_BATCH",
    "MAX_QUERY_CHARS",
    "MAX_RESULT_SIZE",
    "as_finite_vectors",
    "check_batch",
    "check_ids",
    "check_k",
    "check_metadata",
    "check_number",
    "check_oversample",
    "check_queries",
    "check_result_size",
    "clamp_k",
    "file_in",
    "first_stage_depth",
    "load_npy",
]
