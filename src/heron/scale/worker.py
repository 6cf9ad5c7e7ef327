"""One shard: an ordinary :class:`~heron.Collection` held open, with the calls the driver makes.

A :class:`ShardWorker` is used as is in-process (local shards) or hosted by a Ray actor
(``ray.remote(ShardWorker)``); a restarted actor re-runs ``__init__`` and so re-opens its
shard folder. Everything it returns is plain data (numpy arrays, lists, dicts): no pickled
heron objects cross the process boundary. Keys in and out are the shard's *local* keys.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from typing import Any

import numpy as np

from heron.collection import Collection
from heron.pipeline import Queries
from heron.scale.bm25_global import GlobalStats, ShardTerms

log = logging.getLogger(__name__)


class ShardWorker:
    """Hosts shard ``index`` of a sharded collection (the collection folder ``path``)."""

    def __init__(self, path: str, index: int) -> None:
        self.path, self.index = str(path), int(index)
        self.coll = Collection.open(path)
        self._terms: dict[Any, ShardTerms] = {}
        self._bulk: tuple[Any, Any] | None = None  # (the open coll.bulk() context, its writer)
        log.debug("shard %d open at %s (%d documents)", index, path, len(self.coll))

    # ------------------------------------------------------------------ housekeeping
    def ping(self) -> tuple[int, int]:
        """``(shard index, live documents)``."""
        return self.index, len(self.coll)

    def pid(self) -> int:
        """The hosting process's id (changes when a Ray actor is restarted)."""
        return os.getpid()

    def info(self) -> dict[str, Any]:
        return self.coll.info()

    def indexes(self) -> list[dict[str, Any]]:
        return self.coll.indexes()

    def create_index(self, name: str | None, kind: str, on: str | None, params: dict[str, Any]) -> dict[str, Any]:
        return self.coll.create_index(name, kind=kind, on=on, progress=False, **params)

    def drop_index(self, name: str) -> bool:
        return self.coll.drop_index(name)

    def compact(self) -> dict[str, int]:
        return self.coll.compact()

    def warm(self, bm25: bool = False) -> int:
        """One dense search (the snapshot resident, kernels compiled) and, with ``bm25``, the
        shard's BM25 postings built; returns the live documents."""
        n = len(self.coll)
        if n:
            q = Queries(["warm up"], vectors={self.coll.model: np.zeros((1, self.coll.dim), np.float32)})
            self.coll.search(q, 1)
            if bm25:
                from heron.capabilities.bm25 import BM25Kind

                params = BM25Kind().normalise({})
                tokens, (docs, total, df) = self.bm25_stats(["warm up"], params)
                self.bm25_search(tokens, {"n_docs": docs, "total_len": total, "df": df}, 1, params, None)
        return n

    def close(self) -> None:
        self.bulk_end(commit=False)
        self.coll.close()

    # ------------------------------------------------------------------ writes / reads
    def write(
        self,
        texts: list[str],
        ids: list[str],
        metadata: list[dict] | None,
        vectors: np.ndarray | None,
        replace: bool,
    ) -> np.ndarray:
        fn = self.coll.upsert if replace else self.coll.add
        return fn(texts, ids=ids, metadata=metadata, vectors=vectors, progress=False)

    def bulk_begin(self) -> None:
        """Open a :meth:`~heron.Collection.bulk` load on this shard (it holds the write lock)."""
        if self._bulk is not None:
            raise RuntimeError(f"shard {self.index} already has a bulk load open")
        cm = self.coll.bulk(progress=False)
        self._bulk = (cm, cm.__enter__())

    def bulk_add(
        self, texts: list[str], ids: list[str], metadata: list[dict] | None, vectors: np.ndarray | None
    ) -> np.ndarray:
        if self._bulk is None:  # e.g. a Ray actor restarted since the load began
            raise RuntimeError(
                f"shard {self.index} has no bulk load open (was its process restarted?); "
                "nothing of this load is committed: start it again"
            )
        return self._bulk[1].add(texts, ids=ids, metadata=metadata, vectors=vectors, progress=False)

    def bulk_end(self, commit: bool) -> int:
        """Commit (or abandon) the open bulk load; returns the documents it committed (0 when
        abandoned, or when none was open to abandon)."""
        if self._bulk is None:
            if commit:  # a restarted actor (Ray resubmits the call) has lost the load
                raise RuntimeError(
                    f"shard {self.index} has no bulk load to commit (was its process restarted?): "
                    "its part of this load is lost, unless it was committed just before the restart"
                )
            return 0
        (cm, writer), self._bulk = self._bulk, None
        if not commit:
            cm.__exit__(RuntimeError, RuntimeError("bulk load abandoned"), None)
            return 0
        cm.__exit__(None, None, None)
        return int(writer.rows)

    def delete(self, ids: list[str]) -> int:
        return self.coll.delete(ids)

    def get(self, ids: list[str]) -> list[dict | None]:
        return [None if d is None else asdict(d) for d in self.coll.get(ids)]

    def documents(self, after: int, batch: int) -> list[dict]:
        """Up to ``batch`` live documents with local keys above ``after``, in key order."""
        rows = self.coll.store.connect().execute(
            "SELECT key, id, text, metadata FROM docs WHERE deleted = 0 AND key > ? ORDER BY key LIMIT ?",
            (int(after), int(batch)),
        ).fetchall()
        return [{"id": i, "text": t, "metadata": json.loads(m), "key": int(k)} for k, i, t, m in rows]

    def ids(self, keys: np.ndarray) -> list[str]:
        return self.coll.snapshot().ids(keys)

    def matching(self, flt: dict[str, Any]) -> np.ndarray:
        """Local keys of live documents matching a metadata filter (ascending)."""
        return self.coll.snapshot().matching_keys(flt)

    # ------------------------------------------------------------------ search
    def search(
        self,
        texts: list[str],
        vectors: np.ndarray | None,
        k: int,
        using: str,
        flt: dict[str, Any] | None,
        params: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """The shard's own top-``k`` with retriever ``using``: ``(keys, scores, ids)``."""
        vec = {} if vectors is None else {self.coll.model: np.asarray(vectors, np.float32)}
        q = Queries(texts, vectors=vec)
        res = self.coll.search(q, k, using=using, filter=flt, **params)
        return res.keys, res.scores, res.doc_ids()

    # ------------------------------------------------------------------ BM25, global statistics
    def _shard_terms(self, params: dict[str, Any]) -> ShardTerms:
        snap = self.coll.snapshot()
        key = (snap.generation, tuple(sorted((k, str(v)) for k, v in params.items())))
        if key not in self._terms:
            self._terms.clear()  # one resident version: the current generation's
            self._terms[key] = ShardTerms(snap.texts(snap.keys), snap.keys, params)
        return self._terms[key]

    def bm25_stats(self, texts: list[str], params: dict[str, Any]) -> tuple[list[list[str]], tuple[int, int, dict[str, int]]]:
        """Query tokens and this shard's ``(n_docs, total_length, df)`` for them."""
        terms = self._shard_terms(params)
        tokens = terms.tokens(texts)
        return tokens, terms.stats(tokens)

    def bm25_search(
        self,
        tokens: list[list[str]],
        stats: dict[str, Any],
        k: int,
        params: dict[str, Any],
        flt: dict[str, Any] | None,
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """Top-``k`` by BM25 with the global statistics ``stats`` (``n_docs``, ``total_len``, ``df``)."""
        terms = self._shard_terms(params)
        allowed = None if flt is None else self.matching(flt)
        keys, scores = terms.search(tokens, GlobalStats(**stats), k, allowed)
        snap = self.coll.snapshot()
        return keys, scores, [snap.ids(row[row >= 0]) for row in keys]
