"""The search endpoint's work: validate against the server's limits, search, build the hits
(metadata, text, an HTML snippet with ``<mark>`` around the query terms) and, on request,
explain each hit's score by its parts (each component of a hybrid spec, BM25's matched terms,
the SPLADE terms that matched)."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from heron.results import Results, query_terms, snippet_html
from heron.server.catalog import ServerLimits
from heron.server.errors import ApiError
from heron.server.models import SearchRequest

#: retriever name -> what its score is (an index kind maps the same way)
SCORE_KINDS = {
    "dense": "cosine", "flat": "cosine", "ivf": "cosine", "hnsw": "cosine", "ann": "cosine",
    "compressed": "cosine", "mapped": "cosine", "rocchio": "cosine", "e2rank": "cosine",
    "bm25": "bm25", "splade": "splade", "seismic": "splade", "calibrated": "probability",
    "cross_encoder": "cross-encoder", "maxsim": "maxsim", "muvera": "maxsim", "pooled": "maxsim",
}


def score_kind(coll: Any, using: str, info: dict, min_relevance: float | None) -> str:
    """What the scores of a search are on: ``cosine``, ``bm25``, ``rrf``, ``probability`` ..."""
    if min_relevance is not None or "counts" in info:
        return "probability"
    if using.startswith("hybrid:"):
        return "rrf"
    name = using.partition("?")[0]
    kind = SCORE_KINDS.get(str(info.get("retriever", ""))) or SCORE_KINDS.get(name)
    if kind is None:  # an index name: its kind (not asked for known retrievers: a shard may be down)
        rec = next((r for r in coll.indexes() if r.get("name") == name), None)
        kind = SCORE_KINDS.get(rec["kind"] if rec else name, "score")
    return "inner product" if kind == "cosine" and coll.model == "none" else kind


def check_request(req: SearchRequest, limits: ServerLimits, dim: int) -> list[str] | np.ndarray:
    if (req.queries is None) == (req.vectors is None):
        raise ApiError(400, "give either queries (texts) or vectors, not both and not neither", field="queries")
    if req.k > limits.max_k:
        raise ApiError(400, f"k={req.k} exceeds this server's limit of {limits.max_k}", field="k")
    batch = req.queries if req.queries is not None else req.vectors
    what = "queries" if req.queries is not None else "vectors"
    if not batch:
        raise ApiError(400, f"{what} is empty; give at least one", field=what)
    if len(batch) > limits.max_queries:
        raise ApiError(
            413, f"{len(batch)} {what} exceed this server's limit of {limits.max_queries} per request",
            field=what,
        )
    if req.queries is not None:
        for i, q in enumerate(req.queries):
            if len(q) > limits.max_query_chars:
                raise ApiError(
                    413, f"query {i} has {len(q)} characters, over the limit of {limits.max_query_chars}",
                    field=f"queries[{i}]",
                )
        return list(req.queries)
    for i, v in enumerate(req.vectors or []):
        if len(v) != dim:
            raise ApiError(400, f"vectors[{i}] has {len(v)} values; this collection's dim is {dim}", field=f"vectors[{i}]")
        if not all(math.isfinite(x) and abs(x) < 3.4e38 for x in v):
            raise ApiError(400, f"vectors[{i}] holds NaN, an infinity or a value beyond float32", field=f"vectors[{i}]")
    return np.asarray(req.vectors, dtype=np.float32)


def run_search(coll: Any, req: SearchRequest, limits: ServerLimits) -> dict[str, Any]:
    from heron.server.catalog import unsupported

    queries = check_request(req, limits, coll.dim)
    if req.explain:
        unsupported(coll, "explain", "a hit's parts are re-scored by each component retriever of one collection")
    t0 = time.perf_counter()
    res = coll.search(
        queries, req.k, using=req.using, filter=req.filter, min_relevance=req.min_relevance,
        **(req.params or {}),
    )
    texts = queries if isinstance(queries, list) else [""] * len(queries)
    need_docs = req.with_metadata or req.with_text or req.snippet
    rows = res.hits() if need_docs else _bare_hits(res)
    explain = explain_hits(coll, req.using, texts, res, rows) if req.explain else None
    passages = _passages(coll, res) if need_docs else None
    out = []
    for qi, hits in enumerate(rows):
        items = []
        for j, h in enumerate(hits):
            item: dict[str, Any] = {"id": h.id, "score": _num(h.score), "rank": h.rank}
            if req.with_metadata:
                item["metadata"] = h.metadata
            if req.with_text:
                item["text"] = h.text
            where = passages[qi][j] if passages else None
            if where is not None:  # a passage retriever: the passage that matched
                item["passage"] = {"index": where[0], "start": where[1], "end": where[2]}
            if req.snippet and h.text is not None:
                source = h.text if where is None else h.text[where[1] : where[2]]
                item["snippet"] = snippet_html(source, texts[qi])
            if explain is not None:
                item["explain"] = explain[qi][j]
            items.append(item)
        out.append({"hits": items})
    return {
        "results": out,
        "score_kind": score_kind(coll, req.using, res.info, req.min_relevance),
        "using": req.using,
        "took_ms": (time.perf_counter() - t0) * 1000.0,
        "info": json_safe(res.info),
    }


def _passages(coll: Any, res: Results) -> list[list[Any]] | None:
    if "passages" not in res.info or not hasattr(coll, "field_encoder"):
        return None
    from heron.capabilities.passages import matched_passages

    return matched_passages(coll, res)


def _bare_hits(res: Results) -> list[list[Any]]:
    from heron.results import Hit

    return [
        [Hit(i, float(s), r) for r, (i, s) in enumerate(zip(ids, row), start=1)]
        for ids, row in zip(res.doc_ids(), res.scores)
    ]


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def json_safe(x: Any) -> Any:
    """``x`` with numpy values, tuples and non-finite floats made JSON-safe."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if x is None or isinstance(x, (str, int, bool)):
        return x
    return str(x)


# ---------------------------------------------------------------------- explain
def explain_hits(coll: Any, using: str, texts: list[str], res: Results, rows: list[list[Any]]) -> list[list[dict]]:
    """Per hit: the score of each component retriever for that document (``None`` when the
    component does not score it), BM25's matched terms and the SPLADE terms that matched."""
    from heron.pipeline import Queries

    parts = [p for p in using[len("hybrid:"):].split("+") if p] if using.startswith("hybrid:") else [using]
    queries = Queries(texts) if any(texts) else coll.queries(np.zeros((len(texts), coll.dim), np.float32))
    comp_scores: dict[str, list[dict[int, float]]] = {}
    for p in parts:
        try:
            stage = coll.retriever(p)
            got = stage.transform(queries, Results(res.keys, res.scores, res.resolver))
        except (ValueError, TypeError):
            continue
        comp_scores[p] = [
            {int(k): float(s) for k, s in zip(kr, sr) if k >= 0 and math.isfinite(s)}
            for kr, sr in zip(got.keys, got.scores)
        ]
    bm25 = any(p.partition("?")[0] == "bm25" for p in parts) and any(texts)
    splade = next((p for p in parts if p.partition("?")[0] == "splade"), None)
    weights = {p: 1.0 for p in parts} if len(parts) > 1 else None
    out = []
    for qi, hits in enumerate(rows):
        keys = res.keys[qi]
        term_scores = _bm25_terms(coll, texts[qi], keys[: len(hits)]) if bm25 else None
        items = []
        for j, _h in enumerate(hits):
            key = int(keys[j])
            ex: dict[str, Any] = {"parts": {p: _num(s[qi].get(key, math.nan)) for p, s in comp_scores.items()}}
            if term_scores is not None:
                ex["terms"] = [[t, round(float(v[j]), 4)] for t, v in term_scores.items() if v[j] > 0]
            if splade is not None and texts[qi]:
                ex["sparse_terms"] = _splade_terms(coll, splade, texts[qi], _h.id)
            if weights:
                ex["weights"] = weights
            items.append(ex)
        out.append(items)
    return out


def _bm25_terms(coll: Any, query: str, keys: np.ndarray) -> dict[str, np.ndarray]:
    """Each query term's BM25 contribution to each of ``keys``: BM25 of the one-term query."""
    from heron.pipeline import Queries

    terms = query_terms(query)[:16]
    if not terms or not len(keys):
        return {}
    stage = coll.retriever("bm25")
    cand = np.tile(keys[None, :], (len(terms), 1))
    got = stage.transform(Queries(terms), Results(cand, np.zeros(cand.shape, np.float32), None))
    by_key = [dict(zip(kr.tolist(), sr.tolist())) for kr, sr in zip(got.keys, got.scores)]
    return {
        t: np.array([max(by_key[i].get(int(k), 0.0), 0.0) for k in keys], dtype=np.float32)
        for i, t in enumerate(terms)
    }


def _splade_terms(coll: Any, spec: str, query: str, doc_id: str) -> list[list[Any]]:
    try:
        got = coll.retriever(spec).explain(query, doc_id, n=10)
    except (ValueError, TypeError, AttributeError):
        return []
    return [[str(t), round(float(c), 4)] for t, c, *_ in got]
