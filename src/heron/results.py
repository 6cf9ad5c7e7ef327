"""The one result type every retriever and stage returns.

A :class:`Results` holds, for a batch of ``n_queries`` queries, the top ``k`` document keys
and their scores as two arrays of shape ``(n_queries, k)``. Rows with fewer than ``k`` hits are
padded with key ``-1`` and score ``-inf``. Keys are the collection's internal, never-reused
``int64`` document keys; :meth:`Results.doc_ids` maps them to the user's string ids.
This is the seam every later stage (codecs, indexes, rerankers, fusion) plugs into.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heron.limits import check_k as _limits_check_k

PAD_KEY = -1
PAD_SCORE = -np.inf
_WORD = re.compile(r"\w+", re.UNICODE)


def _passage(passages: Any, qi: int, j: int) -> int | None:
    """The passage index of hit ``j`` of query ``qi`` (``None``: no passages, or a whole document)."""
    if passages is None:
        return None
    p = int(passages[qi, j])
    return p if p >= 0 else None


@dataclass(frozen=True)
class Hit:
    """One hit of one query: its document id, score, 1-based rank, metadata and text
    (``None`` when the results carry no document lookup), and for a passage retriever the
    index of the passage that matched (``None`` otherwise, or for a whole-document hit; its
    character span: :func:`heron.capabilities.passages.matched_passages`)."""

    id: str
    score: float
    rank: int
    metadata: dict = field(default_factory=dict)
    text: str | None = None
    passage: int | None = None


@dataclass(frozen=True)
class Results:
    """Batched top-k results.

    Attributes
    ----------
    keys:
        ``int64`` array, shape ``(n_queries, k)``; ``-1`` pads missing hits.
    scores:
        ``float32`` array, shape ``(n_queries, k)``, sorted descending per row; ``-inf`` pads.
    resolver:
        Optional callable mapping an array of keys to string document ids (set by the collection).
    info:
        Free-form diagnostics (strategy chosen, timings) a stage wants to report.
    """

    keys: np.ndarray
    scores: np.ndarray
    resolver: Callable[[np.ndarray], list[str]] | None = field(
        default=None, compare=False, repr=False
    )
    info: dict = field(default_factory=dict, compare=False)
    documents: Callable[[list[str]], list[Any]] | None = field(
        default=None, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        keys = np.asarray(self.keys)
        scores = np.asarray(self.scores)
        if keys.ndim != 2 or keys.shape != scores.shape:
            raise ValueError(
                f"Results needs keys and scores of the same 2-d shape, got {keys.shape} and {scores.shape}"
            )
        object.__setattr__(self, "keys", keys.astype(np.int64, copy=False))
        object.__setattr__(self, "scores", scores.astype(np.float32, copy=False))

    @property
    def n_queries(self) -> int:
        return int(self.keys.shape[0])

    @property
    def k(self) -> int:
        return int(self.keys.shape[1])

    def __len__(self) -> int:
        return self.n_queries

    def valid(self) -> np.ndarray:
        """Boolean mask, shape ``(n_queries, k)``, of real (non-padding) hits."""
        return self.keys != PAD_KEY

    def counts(self) -> np.ndarray:
        """Number of real hits per query, shape ``(n_queries,)``."""
        return self.valid().sum(axis=1)

    def cut(self, k: int) -> Results:
        """Keep the first ``k`` hits of each row (the ``% k`` operator)."""
        k = check_k(k)
        if self.keys.shape[1] == k:
            return self
        keys, scores = self.keys[:, :k], self.scores[:, :k]
        if keys.shape[1] < k:
            keys, scores = pad(keys, scores, k)
        return Results(
            keys,
            scores,
            self.resolver,
            per_hit(self.info, self.keys.shape, lambda a: a[:, :k]),
            self.documents,
        )

    def with_resolver(self, resolver: Callable[[np.ndarray], list[str]] | None) -> Results:
        return Results(self.keys, self.scores, resolver, self.info, self.documents)

    def with_documents(self, documents: Callable[[list[str]], list[Any]] | None) -> Results:
        """These results with a document lookup (ids -> objects with ``text`` and ``metadata``,
        or ``None``), which :meth:`hits` uses; a collection's ``search`` attaches its ``get``."""
        return Results(self.keys, self.scores, self.resolver, self.info, documents)

    def hits(self) -> list[list[Hit]]:
        """The hits of every query, padding dropped: ``[[Hit(id, score, rank, metadata, text)]]``.

        Metadata and text come from the document lookup (:meth:`with_documents`); without one
        they are ``{}`` and ``None``.
        """
        out: list[list[Hit]] = []
        passages = self.info.get("passages")
        for qi, (ids, row) in enumerate(zip(self.doc_ids(), self.scores)):
            docs = self.documents(ids) if self.documents is not None and ids else [None] * len(ids)
            out.append(
                [
                    Hit(
                        doc_id,
                        float(score),
                        rank,
                        dict(getattr(doc, "metadata", None) or {}),
                        getattr(doc, "text", None),
                        _passage(passages, qi, rank - 1),
                    )
                    for rank, (doc_id, score, doc) in enumerate(zip(ids, row, docs), start=1)
                ]
            )
        return out

    def doc_ids(self) -> list[list[str]]:
        """String document ids per query (padding dropped)."""
        if self.resolver is None:
            raise ValueError(
                "these Results carry no id resolver; search through a Collection to get doc ids"
            )
        if len(self.keys) > 1:  # a batch: one lookup for every row (~5 µs of calls per row saved)
            real_mask = self.keys != PAD_KEY
            ids = self.resolver(self.keys[real_mask]) if real_mask.any() else []
            ends = np.cumsum(real_mask.sum(axis=1)).tolist()
            return [ids[a:b] for a, b in zip([0, *ends[:-1]], ends)]
        out: list[list[str]] = []
        for row_keys in self.keys:
            if len(row_keys) <= 64:  # a page of hits: plain ints (numpy masking costs ~3 µs a row)
                real: Any = [x for x in row_keys.tolist() if x != PAD_KEY]
            else:
                real = row_keys[row_keys != PAD_KEY]
            out.append(self.resolver(real) if len(real) else [])
        return out

    def to_run(self, query_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """A TREC-style run ``{query_id: {doc_id: score}}`` for evaluation."""
        if len(query_ids) != self.n_queries:
            raise ValueError(f"got {len(query_ids)} query ids for {self.n_queries} result rows")
        run: dict[str, dict[str, float]] = {}
        for qid, ids, row in zip(query_ids, self.doc_ids(), self.scores):
            run[str(qid)] = {d: float(s) for d, s in zip(ids, row[: len(ids)])}
        return run

    @staticmethod
    def empty(n_queries: int, k: int) -> Results:
        return Results(
            np.full((n_queries, k), PAD_KEY, dtype=np.int64),
            np.full((n_queries, k), PAD_SCORE, dtype=np.float32),
        )


def per_hit(info: dict, shape: tuple[int, ...], fn: Callable[[np.ndarray], np.ndarray]) -> dict:
    """A copy of ``info`` with ``fn`` applied to its per-hit arrays (those of the hits' ``shape``,
    e.g. ``info["passages"]``), so they stay aligned when hits are cut or re-ordered."""
    return {
        name: fn(v) if isinstance(v, np.ndarray) and v.shape == tuple(shape) else v
        for name, v in info.items()
    }


def check_k(k: object) -> int:
    """Validate a cut-off ``k``: a positive int, at most :data:`heron.limits.MAX_K`."""
    return _limits_check_k(k)


def pad(keys: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad ``(n, k0)`` arrays to ``(n, k)`` with ``-1`` / ``-inf``."""
    n, k0 = keys.shape
    if k0 >= k:
        return keys[:, :k], scores[:, :k]
    pk = np.full((n, k), PAD_KEY, dtype=np.int64)
    ps = np.full((n, k), PAD_SCORE, dtype=np.float32)
    pk[:, :k0] = keys
    ps[:, :k0] = scores
    return pk, ps


# ---------------------------------------------------------------------- snippets
def query_terms(query: str) -> list[str]:
    """Lower-cased words of ``query`` worth highlighting (3+ characters, else 2+), unique, in order."""
    words = [w.lower() for w in _WORD.findall(query)]
    keep = [w for w in words if len(w) > 2] or [w for w in words if len(w) > 1] or words
    return list(dict.fromkeys(keep))


def snippet(text: str, query: str, width: int = 200) -> tuple[str, list[tuple[int, int]]]:
    """A window of about ``width`` characters of ``text`` around the query terms.

    Whitespace is collapsed; the window holds the most distinct query terms (the earliest such
    window on ties; the start of the text when no term occurs), cut at word boundaries, with
    ``…`` where text was cut. Terms match at word starts, case-insensitively. Returns the
    snippet and the ``(start, end)`` character spans of the matches in it.
    """
    flat = " ".join(text.split())
    terms = query_terms(query)
    if not flat:
        return "", []
    pat = (
        re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\w*", re.IGNORECASE)
        if terms
        else None
    )
    matches = [(m.start(), m.end(), m.group(1).lower()) for m in pat.finditer(flat)] if pat else []
    start = 0
    if matches and len(flat) > width:
        best = (-1, 0)
        for s, _, _ in matches:
            lo = max(0, s - width // 4)
            got = {t for a, b, t in matches if a >= lo and b <= lo + width}
            if len(got) > best[0]:
                best = (len(got), lo)
        start = best[1]
    end = min(len(flat), start + width)
    if start > 0:  # move to the next word start
        sp = flat.find(" ", start)
        start = sp + 1 if 0 <= sp < end else start
    if end < len(flat):  # cut at the last space inside the window
        sp = flat.rfind(" ", start, end)
        end = sp if sp > start else end
    pre, post = ("…" if start > 0 else ""), ("…" if end < len(flat) else "")
    out = pre + flat[start:end] + post
    spans = [
        (a - start + len(pre), b - start + len(pre))
        for a, b, _ in matches
        if a >= start and b <= end
    ]
    return out, spans


def snippet_html(text: str, query: str, width: int = 200) -> str:
    """:func:`snippet` as HTML: the text escaped, each match wrapped in ``<mark>...</mark>``."""
    snip, spans = snippet(text, query, width)
    out, last = [], 0
    for a, b in spans:
        out += [html.escape(snip[last:a]), "<mark>", html.escape(snip[a:b]), "</mark>"]
        last = b
    out.append(html.escape(snip[last:]))
    return "".join(out)
