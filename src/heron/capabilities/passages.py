"""Search over a collection's passages: documents scored by their best passage(s), or passages.

A chunked collection (``Collection.create(path, chunking="sentences:128")``) stores, per document,
the situated vectors of its passages in a ragged field (:mod:`heron.encoders.passages`): the
passages are children of their document, so ``delete``/``upsert``/``compact`` and metadata
filters act on them with the document. The ``"passages"`` retriever scores every passage of
every live document against the query (inner product = cosine on unit vectors) and aggregates
per document:

* ``agg="max"`` (default): the best passage (MaxP; Dai & Callan, "Deeper Text Understanding for
  IR with Contextual Neural Language Modeling", SIGIR 2019);
* ``agg="mean"`` / ``agg="sum"`` with ``m``: the mean / sum of the document's ``m`` best passages;
* ``whole=True``: the document's own (truncated) dense vector counts as one more passage.

``unit="passages"`` returns passage hits instead (a document may appear several times).
Each hit names its passage: ``results.info["passages"]`` is an ``int64`` array ``(n_queries, k)``
of passage indices within the hit's document (``-1`` for padding, and for a hit won by the whole
document vector); :func:`passage_spans` turns them into character spans of the stored text.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron.capabilities.dense import query_vectors
from heron.capabilities.registry import register_retriever
from heron.pipeline import Queries, Stage
from heron.results import PAD_KEY, Results, check_k

AGGREGATIONS = ("max", "mean", "sum")
UNITS = ("documents", "passages")
#: queries scored per block (bounds the ``(block, n_passages)`` score matrix)
QUERY_BLOCK = 32


def passage_fields(collection: Any) -> list[str]:
    """Names of the collection's passage fields (ragged fields of the ``passages`` encoder)."""
    return [n for n, s in collection.fields.items() if s.get("encoder") == "passages"]


def _default_field(collection: Any) -> str:
    names = passage_fields(collection)
    if not names:
        raise ValueError(
            "this collection has no passages; create it with chunking "
            "(Collection.create(path, chunking='sentences:128') or heron index --chunk sentences:128)"
        )
    return "passages" if "passages" in names else names[0]


def aggregate(
    scores: np.ndarray, offsets: np.ndarray, *, agg: str = "max", m: int = 1,
    whole: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Document scores from passage scores.

    Parameters
    ----------
    scores: ``(nq, P)`` passage scores.
    offsets: ``(n_docs + 1,)``; document ``i`` owns passages ``offsets[i]:offsets[i+1]``.
    agg, m: ``"max"``, or ``"mean"``/``"sum"`` of the ``m`` best (fewer when a document has fewer).
    whole: optional ``(nq, n_docs)`` whole-document scores, one more candidate per document.

    Returns
    -------
    doc_scores: ``(nq, n_docs)`` float32 (``-inf`` for a document without passages).
    best: ``(nq, n_docs)`` int64 index of the best passage within its document (``-1``: none,
    or the whole-document vector won).
    """
    nq, n_docs = scores.shape[0], len(offsets) - 1
    counts = np.diff(offsets)
    has = counts > 0
    starts = offsets[:-1][has]
    work = np.array(scores, dtype=np.float32, copy=True)
    tops: list[np.ndarray] = []
    best = np.full((nq, n_docs), -1, dtype=np.int64)
    n_take = 1 if agg == "max" else m
    pos = np.arange(work.shape[1], dtype=np.int64)
    owner = np.repeat(np.arange(n_docs), counts)
    for t in range(n_take):
        mx = np.full((nq, n_docs), -np.inf, dtype=np.float32)
        if work.shape[1]:
            mx[:, has] = np.maximum.reduceat(work, starts, axis=1)
        # first passage reaching the maximum, per document
        hit = work >= mx[:, owner]
        first = np.full((nq, n_docs), work.shape[1], dtype=np.int64)
        if work.shape[1]:
            cand = np.where(hit, pos[None, :], work.shape[1])
            first[:, has] = np.minimum.reduceat(cand, starts, axis=1)
        ok = np.isfinite(mx)
        if t == 0:
            best = np.where(ok, first - offsets[:-1][None, :], -1)
        tops.append(mx)
        if t + 1 < n_take:  # remove each document's best and take the next
            rows, cols = np.nonzero(ok)
            work[rows, first[rows, cols]] = -np.inf
    top = np.stack(tops, axis=2)  # (nq, n_docs, n_take), descending, -inf where fewer
    if whole is not None:
        w = np.asarray(whole, dtype=np.float32)[:, :, None]
        top = -np.sort(-np.concatenate([top, w], axis=2), axis=2)[:, :, :n_take]
        best = np.where(w[:, :, 0] > tops[0], -1, best)
    if agg == "max":
        out = top[:, :, 0]
    else:
        fin = np.isfinite(top)
        total = np.where(fin, top, 0.0).sum(axis=2)
        n = np.maximum(fin.sum(axis=2), 1)
        out = total if agg == "sum" else total / n
        out = np.where(fin.any(axis=2), out, -np.inf)
    return out.astype(np.float32), best


class PassageRetriever(Stage):
    """Documents (or passages) ranked by their passages' similarity to the query.

    Parameters
    ----------
    collection: a collection with a passages field.
    field: the passages field (default: the collection's, ``"passages"``).
    agg: ``"max"`` (default), ``"mean"`` or ``"sum"`` of the ``m`` best passages.
    m: passages aggregated by ``mean``/``sum`` (default 2).
    whole: the document's own dense vector counts as one more passage (default False).
    unit: ``"documents"`` (default) or ``"passages"``.
    depth: hits returned when not cut by ``% k``.
    """

    def __init__(
        self,
        collection: Any,
        *,
        field: str | None = None,
        agg: str = "max",
        m: int = 2,
        whole: bool | int = False,
        unit: str = "documents",
        depth: int = 1000,
    ) -> None:
        if agg not in AGGREGATIONS:
            raise ValueError(f"agg must be one of {AGGREGATIONS}, got {agg!r}")
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        if not isinstance(m, int) or isinstance(m, bool) or m < 1:
            raise ValueError(f"m (passages aggregated) must be an int >= 1, got {m!r}")
        self.collection = collection
        self.field = field or _default_field(collection)
        spec = collection.fields.get(self.field)
        if spec is None or spec.get("kind") != "ragged":
            raise ValueError(
                f"collection has no passages field {self.field!r}; passage fields: {passage_fields(collection)}"
            )
        self.agg, self.m, self.whole, self.unit = agg, m, bool(whole), unit
        self.depth = check_k(depth)
        self.name = "passages"

    def with_depth(self, k: int) -> PassageRetriever:
        return PassageRetriever(
            self.collection, field=self.field, agg=self.agg, m=self.m, whole=self.whole,
            unit=self.unit, depth=k,
        )

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        q = query_vectors(self.collection, queries)
        snap = self.collection.snapshot()
        offsets, values = snap.field(self.field)
        offsets = np.asarray(offsets, dtype=np.int64)
        keys_live = snap.keys
        dense = snap.dense() if self.whole else None
        allowed = None
        if candidates is not None:  # re-rank: only the candidates' documents
            allowed = candidates.keys
        k = self.depth
        nq = q.shape[0]
        out_k = np.full((nq, k), PAD_KEY, dtype=np.int64)
        out_s = np.full((nq, k), -np.inf, dtype=np.float32)
        out_p = np.full((nq, k), -1, dtype=np.int64)
        vals = np.asarray(values, dtype=np.float32)
        for b0 in range(0, nq, QUERY_BLOCK):
            qb = q[b0 : b0 + QUERY_BLOCK]
            s = qb @ vals.T if len(vals) else np.zeros((len(qb), 0), np.float32)
            if self.unit == "passages":
                self._passage_hits(s, offsets, keys_live, b0, out_k, out_s, out_p)
                continue
            whole = qb @ np.asarray(dense, dtype=np.float32).T if dense is not None else None
            doc_s, best = aggregate(s, offsets, agg=self.agg, m=self.m, whole=whole)
            if allowed is not None:
                blk = allowed[b0 : b0 + QUERY_BLOCK]
                mask = np.stack([np.isin(keys_live, row) for row in blk])
                doc_s = np.where(mask, doc_s, -np.inf)
            kk = min(k, doc_s.shape[1])
            if kk == 0:
                continue
            top = np.argpartition(-doc_s, kk - 1, axis=1)[:, :kk]
            ts = np.take_along_axis(doc_s, top, 1)
            order = np.argsort(-ts, axis=1, kind="stable")
            top, ts = np.take_along_axis(top, order, 1), np.take_along_axis(ts, order, 1)
            fin = np.isfinite(ts)
            rows = slice(b0, b0 + len(qb))
            out_k[rows, :kk] = np.where(fin, keys_live[top], PAD_KEY)
            out_s[rows, :kk] = ts
            out_p[rows, :kk] = np.where(fin, np.take_along_axis(best, top, 1), -1)
        info = {
            "retriever": "passages",
            "generation": snap.generation,
            "field": self.field,
            "unit": self.unit,
            "passages": out_p,
        }
        return Results(out_k, out_s, snap.resolver(), info)

    def _passage_hits(
        self, s: np.ndarray, offsets: np.ndarray, keys_live: np.ndarray, b0: int,
        out_k: np.ndarray, out_s: np.ndarray, out_p: np.ndarray,
    ) -> None:
        kk = min(out_k.shape[1], s.shape[1])
        if kk == 0:
            return
        owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        ts = np.take_along_axis(s, top, 1)
        order = np.argsort(-ts, axis=1, kind="stable")
        top, ts = np.take_along_axis(top, order, 1), np.take_along_axis(ts, order, 1)
        rows = slice(b0, b0 + s.shape[0])
        out_k[rows, :kk] = keys_live[owner[top]]
        out_s[rows, :kk] = ts
        out_p[rows, :kk] = top - offsets[owner[top]]


def passage_spans(collection: Any, results: Results, *, field: str | None = None) -> list[list[Any]]:
    """Character spans ``(start, end)`` of the passage each hit names (``None`` for padding or a
    whole-document hit), recomputed from the stored text with the field's chunk spec."""
    passages = results.info.get("passages")
    if passages is None:
        raise ValueError("these results name no passages; search with the 'passages' retriever")
    field = field or results.info.get("field") or _default_field(collection)
    enc = collection.field_encoder(field)
    ids = results.doc_ids()
    spans_of: dict[str, np.ndarray] = {}
    out: list[list[Any]] = []
    for i, row in enumerate(ids):
        line: list[Any] = []
        for j, doc_id in enumerate(row):
            p = int(passages[i, j])
            if doc_id is None or p < 0:
                line.append(None)
                continue
            if doc_id not in spans_of:
                doc = collection.get(doc_id)[0]
                title = str(doc.metadata.get("title") or "") if doc else ""
                spans_of[doc_id] = enc.spans(doc.text, title) if doc else np.zeros((0, 2), np.int64)
            sp = spans_of[doc_id]
            line.append((int(sp[p, 0]), int(sp[p, 1])) if p < len(sp) else None)
        out.append(line)
    return out


def matched_passages(collection: Any, results: Results) -> list[list[tuple[int, int, int] | None]] | None:
    """``(index, start, end)`` of the passage each hit matched (``None`` for a whole-document
    hit), when ``results`` come from a passage retriever; ``None`` when they name no passages.
    What ``heron search`` and the server show as a hit's snippet."""
    if "passages" not in results.info:
        return None
    idx = results.info["passages"]
    return [
        [None if sp is None else (int(idx[qi, j]), sp[0], sp[1]) for j, sp in enumerate(row)]
        for qi, row in enumerate(passage_spans(collection, results))
    ]


register_retriever("passages", lambda collection, **p: PassageRetriever(collection, **p))

__all__ = ["AGGREGATIONS", "PassageRetriever", "aggregate", "matched_passages", "passage_fields", "passage_spans"]
