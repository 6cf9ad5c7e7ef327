"""A consistent, read-only view of one committed generation of a collection."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from heron.collection.segments import Rows, Segment

if TYPE_CHECKING:  # pragma: no cover
    from heron.collection.collection import Collection


@dataclass
class SegmentView:
    """One segment as seen by a snapshot: its arrays and which of its rows are live."""

    segment: Segment
    live: np.ndarray  # bool (rows,)

    @property
    def keys(self) -> np.ndarray:
        return np.asarray(self.segment.keys)

    @property
    def all_live(self) -> bool:
        return bool(self.live.all())


class Snapshot:
    """Everything committed at one generation; never changes under a reader.

    Attributes
    ----------
    generation: commit counter of this state.
    segments: list of :class:`SegmentView` (arrays memory-mapped).
    keys: ``int64`` ``(n_live,)`` live document keys, aligned with rows of :meth:`dense`.
    """

    def __init__(
        self,
        collection: Collection,
        generation: int,
        segments: list[SegmentView],
        *,
        epoch: int | None = None,
        artifacts: dict[str, Any] | None = None,
    ) -> None:
        self.collection = collection
        self.generation = generation
        self.epoch = generation if epoch is None else epoch
        #: the artifact catalog at this epoch: ``{name: ArtifactRecord}``
        self.artifacts: dict[str, Any] = dict(artifacts or {})
        self.segments = segments
        parts = [sv.keys[sv.live] for sv in segments]
        self.keys = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
        self._cache: dict[str, Any] = {}
        #: the store's change token when this snapshot was last found current (see
        #: :meth:`heron.collection.store.Store.change_token`)
        self.change_token: bytes | None = None
        self.checked_at = 0.0

    def __len__(self) -> int:
        return int(len(self.keys))

    def memo(self, key: Any, compute: Any) -> Any:
        """``compute()`` once per snapshot (e.g. an index's delta against this generation)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def resolver(self) -> Any:
        """Keys -> string ids, reading this snapshot (keeps it, and its lease, alive)."""
        return self.ids

    # -- arrays ---------------------------------------------------------------
    def dense(self, field: str = "dense") -> np.ndarray:
        """``(n_live, d)`` dense vectors aligned with :attr:`keys` (memory-mapped when possible)."""
        ck = f"dense:{field}"
        if ck not in self._cache:
            self._check_field(field, "dense")
            views = [sv for sv in self.segments if sv.live.any()]
            if len(views) == 1 and views[0].all_live:
                arr = views[0].segment.dense(field)
            elif not views:
                arr = np.zeros(
                    (0, self.collection.fields[field].get("dim", self.collection.dim)),
                    dtype=np.float32,
                )
            else:
                arr = np.concatenate([np.asarray(sv.segment.dense(field))[sv.live] for sv in views])
            self._cache[ck] = arr
        return self._cache[ck]

    def dense_rows(self, field: str = "dense") -> Rows:
        """The live rows of a dense field as :class:`~heron.collection.segments.Rows`: what
        :meth:`dense` returns, streamed from the segments instead of gathered (merges)."""
        self._check_field(field, "dense")
        dim = self.collection.fields[field].get("dim", self.collection.dim)
        parts = [
            (sv.segment.dense(field), None if sv.all_live else sv.live)
            for sv in self.segments
            if sv.live.any()
        ]
        return Rows(parts, dim)

    def field(self, name: str) -> Any:
        """A field's data for the live rows: dense array, scipy CSR, or ``(offsets, values)``."""
        spec = self.collection.fields.get(name)
        if spec is None:
            raise ValueError(
                f"collection has no field {name!r}; fields: {sorted(self.collection.fields)}"
            )
        kind = spec["kind"]
        if kind == "dense":
            return self.dense(name)
        ck = f"{kind}:{name}"
        if ck in self._cache:
            return self._cache[ck]
        self._check_field(name, kind)
        if kind == "sparse":
            from heron._deps import require

            sparse = require("scipy.sparse", purpose="sparse fields")
            vocab = int(spec.get("vocab", 0))
            mats = [sv.segment.sparse(name, vocab)[np.flatnonzero(sv.live)] for sv in self.segments]
            if not mats:
                out = sparse.csr_matrix((0, vocab), dtype=np.float32)
            else:
                width = max(m.shape[1] for m in mats)
                mats = [
                    m
                    if m.shape[1] == width
                    else sparse.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width))
                    for m in mats
                ]
                out = sparse.vstack(mats, format="csr")
        else:
            offs, vals = [], []
            base = 0
            for sv in self.segments:
                o, v = sv.segment.ragged(name)
                o = np.asarray(o)
                for r in np.flatnonzero(sv.live):
                    vals.append(np.asarray(v[o[r] : o[r + 1]]))
                    offs.append(base + o[r + 1] - o[r])
                    base = offs[-1]
            offsets = (
                np.concatenate([[0], np.asarray(offs, dtype=np.int64)])
                if offs
                else np.zeros(1, dtype=np.int64)
            )
            dim = int(spec.get("dim", 0))
            values = np.concatenate(vals) if vals else np.zeros((0, dim), dtype=np.float32)
            out = (offsets.astype(np.int64), values)
        self._cache[ck] = out
        return out

    def _check_field(self, name: str, kind: str) -> None:
        missing = [
            sv.segment.id for sv in self.segments if sv.live.any() and not sv.segment.has(name)
        ]
        if missing:
            raise ValueError(
                f"field {name!r} ({kind}) is missing from segment(s) {missing[:5]}; run coll.backfill({name!r}) to compute it"
            )

    def matching_keys(self, flt: dict[str, Any]) -> np.ndarray:
        """Keys live in this snapshot whose metadata matches ``flt`` (ascending ``int64``)."""
        from heron.index.filters import matching_keys

        keys = matching_keys(self.collection, flt, live_only=False)
        return keys[self.rows_of(keys) >= 0]

    # -- documents ------------------------------------------------------------
    def _select(self, column: str, keys: Sequence[int] | np.ndarray) -> list[Any]:
        keys = [int(k) for k in np.asarray(keys).ravel()]
        if not keys:
            return []
        con = self.collection.store.connect()
        found: dict[int, Any] = {}
        for start in range(0, len(keys), 900):
            chunk = keys[start : start + 900]
            q = f"SELECT key, {column} FROM docs WHERE key IN ({','.join('?' * len(chunk))})"
            try:
                found.update(con.execute(q, chunk).fetchall())
            except sqlite3.Error as exc:  # pragma: no cover
                raise ValueError(f"could not read documents: {exc}") from exc
        return [found.get(k) for k in keys]

    def ids(self, keys: Sequence[int] | np.ndarray) -> list[str]:
        """String ids of ``keys`` (``""`` for a key purged by compaction).

        Read from the segments' resident id tables once they are built (every hit list asks for
        ids, and a SQLite lookup of ten random keys costs ~80 us at 1M documents); keys no table
        holds, and every key before the tables exist, are read from SQLite.
        """
        arr: Any = keys if type(keys) is list else np.asarray(keys, dtype=np.int64).ravel()
        tables = [sv.segment.id_table(self.collection.store.connect) for sv in self.segments]
        if not len(arr) or any(t is None for t in tables):
            return [x if x is not None else "" for x in self._select("id", arr)]
        out: list[str | None] = [None] * len(arr)
        for t in tables:
            t.lookup(arr, out)
        if None not in out:  # every key in a resident table: the usual hit list
            return out  # type: ignore[return-value]
        missing = [i for i, x in enumerate(out) if x is None]
        for i, x in zip(missing, self._select("id", np.asarray(arr, dtype=np.int64)[missing])):
            out[i] = x
        return [x if x is not None else "" for x in out]

    def all_ids(self) -> list[str]:
        """The ids of :attr:`keys`, in order, from each segment's :class:`IdTable` (made now
        where a segment has none yet): what a merge writes beside the keys."""
        out: list[str | None] = []
        connect = self.collection.store.connect
        for sv in self.segments:
            keys = np.asarray(sv.keys)[sv.live]
            part: list[str | None] = [None] * len(keys)
            sv.segment.ids_table(connect).lookup(keys, part)
            out.extend(part)
        return [x if x is not None else "" for x in out]

    def texts(self, keys: Sequence[int] | np.ndarray) -> list[str]:
        return [x if x is not None else "" for x in self._select("text", keys)]

    def metadata(self, keys: Sequence[int] | np.ndarray) -> list[dict]:
        return [json.loads(x) if x else {} for x in self._select("metadata", keys)]

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """Row numbers in :attr:`keys` of the given keys (``-1`` where not live)."""
        if "key_order" not in self._cache:  # noqa: SIM401
            order = np.argsort(self.keys, kind="stable")
            self._cache["key_order"] = (order, self.keys[order])
        order, sorted_keys = self._cache["key_order"]
        keys = np.asarray(keys, dtype=np.int64)
        pos = np.searchsorted(sorted_keys, keys)
        pos = np.clip(pos, 0, max(len(sorted_keys) - 1, 0))
        ok = (
            (len(sorted_keys) > 0) & (sorted_keys[pos] == keys)
            if len(sorted_keys)
            else np.zeros(keys.shape, bool)
        )
        return np.where(ok, order[pos] if len(order) else -1, -1)
