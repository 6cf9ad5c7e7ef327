"""The search side of a collection: one ``search`` for every capability, index or pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from heron.results import Results

_FAST: Any = None


def _ann_fast() -> Any:
    """:func:`heron.capabilities.ann.fast_search`, imported once (it is on every vector query)."""
    global _FAST
    if _FAST is None:
        from heron.capabilities.ann import fast_search

        _FAST = fast_search
    return _FAST


#: retrievers whose compiled stage a vector query may reuse within one snapshot (their stages
#: hold only validated parameters; every query reads the snapshot afresh)
_REUSABLE = frozenset({"compressed", "dense"})
#: compiled stages kept per snapshot and name (parameters can come from users: the server)
_REUSED_PER_NAME = 64


def _reusable(snap: Any, using: str) -> bool:
    """Whether ``using`` names one of :data:`_REUSABLE` or a compressed index at ``snap``."""
    from heron.capabilities.registry import RETRIEVERS

    if using in _REUSABLE:
        return True
    rec = snap.artifacts.get(using)
    return rec is not None and rec.kind == "compressed" and using not in RETRIEVERS


def _reused_stage(coll: Any, snap: Any, using: str, k: int, params: dict[str, Any]) -> Any:
    """``Cutoff(retriever, k).compile()`` for a :func:`_reusable` ``using`` with ``params`` at
    ``snap``, built once per snapshot (what :meth:`SearchMixin.search` builds on every call);
    ``None`` where a parameter is not hashable."""
    try:  # the codec configuration is the compressed retriever's default (not in the snapshot)
        key = (k, frozenset(params.items()), repr(coll.config.get("codec")))
        hash(key)
    except TypeError:
        return None
    stages = snap.memo(("reused-stages", using), dict)
    stage = stages.get(key)
    if stage is None:
        from heron.pipeline import Cutoff

        if len(stages) >= _REUSED_PER_NAME:
            stages.clear()
        stage = stages[key] = Cutoff(coll._retriever(using, snap, **params), k).compile()
    return stage


def _build(factory: Any, coll: Any, name: str, params: dict[str, Any]) -> Any:
    """``factory(coll, **params)``; a keyword the retriever does not take is a ValueError naming
    it (the factories are ``**params`` lambdas, so Python's bare TypeError named no retriever)."""
    import re

    try:
        return factory(coll, **params)
    except TypeError as exc:
        missing = re.search(r"missing \d+ required keyword-only arguments?: (.+)$", str(exc))
        if missing is not None:  # e.g. cross_encoder needs model=
            names = re.findall(r"'(\w+)'", missing.group(1))
            if names and not set(names) & set(params):
                given = ", ".join(f"{n}=..." for n in names)
                raise ValueError(
                    f"retriever {name!r} needs {given}; pass it: "
                    f"coll.search(queries, k, using={name!r}, {given})"
                ) from None
        m = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if m is None or m.group(1) not in params:
            raise
        raise ValueError(
            f"retriever {name!r} takes no parameter {m.group(1)!r}; drop it "
            "(oversample= and codec= belong to the ANN and compressed retrievers)"
        ) from None


class SearchMixin:
    """``retriever`` / ``search`` / ``calibrate`` of :class:`~heron.collection.Collection`."""

    # ------------------------------------------------------------------ search
    def retriever(self, name: str = "dense", **params: Any) -> Any:
        """A pipeline :class:`~heron.pipeline.Stage` over this collection.

        ``name`` is an index of the collection (:meth:`indexes`), a registered retriever
        (``heron.capabilities.retriever_names()``) or a spec (``"hnsw?ef_search=64"``,
        ``"hybrid:dense+bm25"``; :mod:`heron.capabilities.spec`).
        """
        return self._retriever(name, self.snapshot(), **params)

    def _retriever(self, name: str, snap: Any, **params: Any) -> Any:
        from heron.capabilities.registry import RETRIEVERS

        if not isinstance(name, str):
            raise TypeError(f"retriever must be a name (str), got {type(name).__name__}")
        rec = snap.artifacts.get(name)
        if rec is not None and name not in RETRIEVERS:
            from heron.capabilities.base import artifact_kind

            return artifact_kind(rec.kind).retriever(self, name, **params)
        if name in RETRIEVERS:
            return _build(RETRIEVERS.get(name), self, name, params)
        if "?" in name or ":" in name:
            from heron.capabilities.spec import stage_from_spec

            return stage_from_spec(self, name, **params)
        raise ValueError(
            f"unknown retriever {name!r}; choose one of {RETRIEVERS.names()} or an index of this "
            f"collection {sorted(snap.artifacts)}"
        )

    def search(
        self,
        queries: Sequence[str] | str | Any,
        k: int = 10,
        *,
        using: str | Any = None,
        retriever: str | None = None,
        filter: dict[str, Any] | None = None,
        min_relevance: float | None = None,
        min_hits: int = 0,
        **params: Any,
    ) -> Results:
        """Search; returns :class:`Results` of shape ``(n_queries, k)``.

        Parameters
        ----------
        queries: a text, a list of texts, or :class:`~heron.pipeline.Queries` (precomputed vectors).
        k: hits per query.
        using: an index name, a registered retriever, a spec (``"hybrid:dense+bm25"``) or a
            :class:`~heron.pipeline.Stage` (default ``"dense"``, exact). ``retriever=`` is an alias.
        filter: a metadata filter (``{"year": {"$gte": 2020}}``), applied by any retriever: inside
            the search where the index can, otherwise exactly over the matching documents.
        min_relevance: keep only hits whose calibrated relevance (a probability) reaches it
            (rows are padded after the last kept hit); needs :meth:`calibrate` first.
            ``min_hits`` keeps at least that many.
        **params: the retriever's keyword parameters (``ef_search``, ``nprobe``, ``oversample``, ...).
        """
        if type(queries) is np.ndarray and type(k) is int and k >= 1 and type(using) is str and (
            filter is None and min_relevance is None and retriever is None
        ):  # vectors into an ANN index: one cached plan, no pipeline (same results)
            # (the registered retrievers "compressed" and "dense" have no ANN plan to look up)
            res = None if using in _REUSABLE else _ann_fast()(self, using, queries, k, params)
            if res is not None:
                return res
            res = self._search_vectors(queries, k, using, params)
            if res is not None:
                return res
        from heron.limits import check_queries, clamp_k
        from heron.pipeline import Stage
        from heron.results import check_k

        k = check_k(k)
        queries = self.queries(queries)
        check_queries(queries, k)
        snap = self.snapshot()
        kk = clamp_k(k, len(snap))  # search no deeper than the live documents
        if using is not None and retriever is not None and using != retriever:
            raise ValueError(f"pass using= or retriever=, not both ({using!r} vs {retriever!r})")
        using = using if using is not None else (retriever or "dense")
        if isinstance(using, Stage):
            if params:
                raise ValueError(f"parameters {sorted(params)} go to the stage's constructor, not search()")
            stage = using
        else:
            native = filter is not None and self._filters_natively(using, snap)
            stage = self._retriever(using, snap, **params, **({"filter": filter} if native else {}))
            if native:
                filter = None
        if filter is not None:
            from heron.capabilities.filtered import Filtered

            stage = Filtered(self, stage, filter)
        if min_relevance is not None:
            from heron.capabilities.calibrated import threshold_stage

            thr = threshold_stage(self, min_relevance=min_relevance, min_hits=min_hits)
            stage = stage % max(kk, 100) >> thr
        return stage.search(queries, kk).cut(k).with_documents(self.get)  # padded to (n, k); hits() look up documents

    def _search_vectors(
        self, vectors: np.ndarray, k: int, using: str, params: dict[str, Any]
    ) -> Results | None:
        """``search(vectors, k, using=NAME, **params)`` (no filter, no threshold) through the
        stage compiled for the first such query of this snapshot: the same results as the
        general path, without rebuilding the pipeline per query. ``None``: the general path."""
        from heron.limits import check_queries, plain_vectors
        from heron.results import check_k

        snap = self.snapshot()
        if not _reusable(snap, using):
            return None
        k = check_k(k)
        q = plain_vectors(vectors, self.dim, k)
        queries = None
        if q is None:  # converted and checked as the general path does (its errors)
            queries = self.queries(vectors)
            check_queries(queries, k)
        if k > len(snap):
            return None
        stage = _reused_stage(self, snap, using, k, params)
        if stage is None:
            return None
        direct = getattr(stage.inner, "search_vectors", None)
        if queries is None and direct is not None:  # no Queries built, no per-stage copies
            return direct(snap, q, k).with_documents(self.get)
        if queries is None:
            queries = self.queries(q)
        return stage.transform(queries, None).cut(k).with_documents(self.get)

    def queries(self, queries: Any) -> Any:
        """Texts, or a ``(n, dim)`` / ``(dim,)`` array of query vectors, as :class:`Queries`."""
        import numpy as np

        from heron.pipeline import Queries

        if isinstance(queries, np.ndarray) or (
            isinstance(queries, list) and queries and not isinstance(queries[0], str)
        ):
            v = np.asarray(queries)
            if v.dtype.kind not in "biuf":  # complex would lose its imaginary part silently
                raise TypeError(
                    f"query vectors must be a real numeric array (float32 preferred), got dtype {v.dtype}"
                )
            v = np.asarray(v, dtype=np.float32)
            v = v[None, :] if v.ndim == 1 else v
            if v.ndim != 2 or v.shape[1] != self.dim:
                raise ValueError(
                    f"query vectors must have shape (n, {self.dim}) for this collection, got {v.shape}"
                )
            return Queries([f"<vector {i}>" for i in range(len(v))], vectors={self.model: v})
        return queries

    def _filters_natively(self, using: str, snap: Any) -> bool:
        kinds = {"flat", "ivf", "hnsw", "ann"}  # ANN indexes filter inside the faiss search
        rec = snap.artifacts.get(using)
        return using.partition("?")[0] in kinds or (rec is not None and rec.kind in kinds)

    def calibrate(self, queries: Sequence[str], query_ids: Sequence[str], qrels: Any, **params: Any) -> Any:
        """Fit the relevance calibration that ``search(..., min_relevance=)`` uses (on train queries)."""
        from heron.capabilities.calibrated import calibrate

        return calibrate(self, queries, query_ids, qrels, **params)


