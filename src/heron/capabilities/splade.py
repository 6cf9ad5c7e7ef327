"""The ``"splade"`` retriever over a collection's sparse field (exact or Seismic).

A collection stores SPLADE vectors in a field of kind ``"sparse"`` (CSR per segment), declared
with ``coll.add_field("splade", kind="sparse", encoder="splade")`` (the encoder fills in its model
name and vocabulary). ``coll.retriever("splade", index="seismic")`` builds (once per collection
generation) a :class:`~heron.sparse.seismic.SeismicIndex` as the collection artifact
``seismic-<field>``, resident (memory-mapped) while current; ``index="exact"`` scores every live document (the oracle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from heron.capabilities.base import ArtifactKind, register_kind
from heron.capabilities.registry import register_retriever
from heron.pipeline import Queries, Stage
from heron.results import Results, check_k
from heron.sparse.exact import ExactSparseIndex
from heron.sparse.seismic import SeismicIndex

INDEXES = ("seismic", "exact")


class SparseRetriever(Stage):
    """Learned-sparse retrieval over a collection field.

    Parameters
    ----------
    collection: the :class:`heron.Collection`.
    index: ``"seismic"`` (approximate, default) or ``"exact"``.
    field: the sparse field (default ``"splade"``).
    depth: hits returned when not cut.
    query_cut, heap_factor: Seismic query-time knobs (see :class:`SeismicIndex`).
    name: the Seismic index's name (default ``seismic-<field>``; an index made with
        ``coll.create_index(name, kind="seismic")`` is searched with ``using=name``).
    build: Seismic build parameters (``n_postings``, ``centroid_fraction``, ``summary_energy``, ...).
    """

    def __init__(
        self,
        collection: Any,
        *,
        index: str = "seismic",
        field: str = "splade",
        depth: int = 1000,
        query_cut: int = 10,
        heap_factor: float = 0.9,
        encoder: Any = None,
        name: str | None = None,
        **build: Any,
    ) -> None:
        if index not in INDEXES:
            raise ValueError(f"index must be one of {INDEXES}, got {index!r}")
        spec = collection.fields.get(field)
        if spec is None or spec.get("kind") != "sparse":
            raise ValueError(
                f"collection has no sparse field {field!r}; add one with "
                f"coll.add_field({field!r}, kind='sparse', encoder='splade')"
            )
        self.collection, self.index, self.field, self.depth = (
            collection,
            index,
            field,
            check_k(depth),
        )
        if build.get("backend") == "auto":  # the kind resolves it; the record names the chosen one
            build = {k: v for k, v in build.items() if k != "backend"}
        self.query_cut, self.heap_factor, self.build_params = query_cut, heap_factor, build
        self.index_name = name or f"seismic-{field}"
        self.spec = spec
        if encoder is None:
            from heron.encoders.splade import load_sparse_encoder

            encoder = load_sparse_encoder(spec.get("model", "splade-tiny"))
        vocab = int(spec.get("vocab", 0) or 0)
        if vocab and vocab != encoder.vocab_size:
            raise ValueError(
                f"field {field!r} holds vectors over a vocabulary of {vocab} terms but encoder {encoder.name!r} has "
                f"{encoder.vocab_size}; open with the encoder the field was built with (model {spec.get('model')!r})"
            )
        if spec.get("model") and spec["model"] != encoder.name:
            raise ValueError(
                f"field {field!r} was encoded with {spec['model']!r}, not {encoder.name!r}; use the same model"
            )
        self.encoder = encoder
        self.name = f"splade[{index}]"

    def with_depth(self, k: int) -> SparseRetriever:
        return SparseRetriever(
            self.collection,
            index=self.index,
            field=self.field,
            depth=k,
            query_cut=self.query_cut,
            heap_factor=self.heap_factor,
            encoder=self.encoder,
            name=self.index_name,
            **self.build_params,
        )

    def _query_vectors(self, queries: Queries):
        key = f"sparse:{self.encoder.name}"
        q = queries.cached(key)
        if q is None:
            q = self.encoder.encode_queries(queries.texts)
            queries.put(key, q)
        return q

    def _seismic(self, snap: Any) -> Any:
        return self.collection.artifact(
            self.index_name, kind="seismic", field=self.field,
            params=dict(sorted(self.build_params.items())), snap=snap,
        )[1]

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        queries = Queries.of(queries)
        q = self._query_vectors(queries)
        snap = self.collection.snapshot()
        if len(snap.keys) == 0:
            return Results.empty(len(queries), self.depth).with_resolver(snap.resolver())
        width = snap.field(self.field).shape[1]
        if width != self.encoder.vocab_size:
            raise ValueError(
                f"field {self.field!r} stores vectors over {width} terms but encoder {self.encoder.name!r} "
                f"has a vocabulary of {self.encoder.vocab_size}; re-encode the field "
                f"(a new field with add_field) or open it with the model it was built with"
            )
        if self.index == "exact":
            res = ExactSparseIndex(snap.field(self.field), keys=snap.keys).search(q, self.depth)
        else:
            res = self._seismic(snap).search(
                q, self.depth, query_cut=self.query_cut, heap_factor=self.heap_factor
            )
        empty = np.flatnonzero(np.diff(q.indptr) == 0)
        if len(empty):
            res.info["empty_queries"] = empty.tolist()
            res.info["note"] = "queries with no vocabulary terms after encoding match nothing"
        res.info.setdefault("score", "splade")
        return res.with_resolver(snap.resolver())

    def explain(
        self, query: str, doc_id: str, n: int = 10
    ) -> list[tuple[str, float, float, float]]:
        """Matched terms of ``doc_id`` for ``query``: ``(token, contribution, q weight, d weight)``."""
        snap = self.collection.snapshot()
        ids = snap.ids(snap.keys)
        if doc_id not in ids:
            raise ValueError(f"no live document {doc_id!r} in the collection")
        row = snap.field(self.field)[ids.index(doc_id)]
        return self.encoder.top_terms(self.encoder.encode_queries([query]), row, n=n)


#: build parameters only heron's own index understands (they select ``backend="heron"``)
HERON_ONLY = ("quantize", "seed", "pruning", "values")
BACKENDS = ("auto", "pyseismic", "heron")


@register_kind
class SeismicKind(ArtifactKind):
    """A Seismic index over a sparse field (``kind="seismic"``).

    Bruch, Nardini, Rulli & Venturini, "Efficient Inverted Indexes for Approximate Retrieval over
    Learned Sparse Representations", SIGIR 2024. ``backend="auto"`` (default) picks the faster
    implementation, measured (``docs/sparse.md``): the authors' Rust ``pyseismic-lsr`` when it is
    installed and no heron-only parameter (``quantize``, ``seed``, ``pruning``, ``values``) is given, else
    heron's numba index; ``backend="heron"`` or ``"pyseismic"`` forces one. A version serves the
    generation it was built from; a search after a write rebuilds it once.
    """

    kind = "seismic"
    field_kind = "sparse"
    default_field = "splade"
    build_params = (
        "n_postings", "centroid_fraction", "summary_energy", "doc_cut", "max_fraction",
        "backend", *HERON_ONLY,
    )

    def normalise(self, params: dict[str, Any]) -> dict[str, Any]:
        from heron.sparse import pyseismic

        params = super().normalise(params)
        backend = params.pop("backend", "auto")
        if backend not in BACKENDS:
            raise ValueError(f"Seismic backend must be one of {BACKENDS}, got {backend!r}")
        heron_only = sorted(set(params) & set(HERON_ONLY))
        if backend == "auto":
            backend = "pyseismic" if pyseismic.available() and not heron_only else "heron"
        if backend == "pyseismic" and heron_only:
            raise ValueError(
                f"parameter(s) {heron_only} exist only in heron's Seismic; pass backend='heron' or drop them"
            )
        if backend == "pyseismic" and not pyseismic.available():
            raise ValueError(
                "backend='pyseismic' needs pyseismic-lsr (pip install 'heron[sparse]'); or pass backend='heron'"
            )
        return {**params, "backend": backend}

    def rebuild_params(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        # asking for pyseismic-lsr drops the heron-only parameters of a previous heron build
        if new.get("backend") == "pyseismic":
            old = {k: v for k, v in old.items() if k not in HERON_ONLY}
        return {**old, **new}

    def build(self, snap: Any, field: str, params: dict[str, Any], folder: Path, *, progress: bool) -> None:
        params = dict(params)
        if params.pop("backend", "heron") == "pyseismic":
            from heron.sparse.pyseismic import PySeismicIndex

            PySeismicIndex.build(snap.field(field), keys=snap.keys, **params).save(folder / "data")
        else:
            SeismicIndex.build(snap.field(field), keys=snap.keys, **params).save(folder / "data")

    def open(self, folder: Path, record: Any, collection: Any) -> Any:
        if record.params.get("backend", "heron") == "pyseismic":
            from heron.sparse.pyseismic import PySeismicIndex

            return PySeismicIndex.load(folder / "data")
        try:
            return SeismicIndex.load(folder / "data")
        except ValueError as exc:
            if "format version" not in str(exc):
                raise
            raise ValueError(
                f"{exc}: coll.create_index({record.name!r}, kind='seismic', on={record.field!r}, "
                "backend='heron') rebuilds it from the stored vectors"
            ) from exc

    def fresh(self, record: Any, snap: Any) -> bool:
        return record.generation == snap.generation

    def retriever(self, collection: Any, name: str, **params: Any) -> SparseRetriever:
        rec = collection.snapshot().artifacts[name]
        return SparseRetriever(
            collection, index="seismic", field=rec.field, name=name, **{**rec.params, **params}
        )


register_retriever("splade", lambda collection, **p: SparseRetriever(collection, **p))

