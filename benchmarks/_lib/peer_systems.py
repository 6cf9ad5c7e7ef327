"""Adapters of ``benchmarks/peers.py``: each peer system through its own public API.

Every adapter builds from a ``(n, d)`` float32 matrix of unit vectors (row ``i`` has id ``str(i)``;
texts, when given, are stored as the system's document/payload), then answers one query at a
time (``search``) and a batch at once (``batch``) with the row numbers of its top-``k`` by inner
product, for each value of its search knob (``knobs``: ef, nprobe, oversample; ``[None]`` for
exact systems). Parameters matched across systems: HNSW ``M=32``, ``efConstruction=200``;
IVF ``nlist = 4 * sqrt(n)`` (rounded to a power of two for faiss/LanceDB alike), PQ 48 sub-vectors
of 8 bits with exact re-ranking of ``10 * k`` candidates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

M, EF_CONSTRUCTION, PQ_M, REFINE = 32, 200, 48, 10
#: heron-hnsw-int8: candidates re-scored exactly per hit (oversample * k)
HNSW_INT8_OVERSAMPLE = 2
EF_SWEEP = [16, 32, 64, 128, 256, 512]
NPROBE_SWEEP = [4, 8, 16, 32, 64, 128]


def nlist_for(n: int) -> int:
    """IVF lists for ``n`` vectors: the power of two nearest ``4 * sqrt(n)`` (4,096 at 1M)."""
    return int(2 ** round(math.log2(max(16.0, 4 * math.sqrt(n)))))


def _batches(n: int, size: int) -> Iterable[tuple[int, int]]:
    for s in range(0, n, size):
        yield s, min(n, s + size)


class Peer:
    """One system: ``build`` once, then ``search``/``batch`` per knob value."""

    knob: str | None = None
    knobs: list = [None]
    note = ""

    def build(self, x: np.ndarray, work: Path, texts: list[str] | None) -> None:
        raise NotImplementedError

    def search(self, q: np.ndarray, k: int, knob: Any) -> np.ndarray:
        raise NotImplementedError

    def batch(self, qs: np.ndarray, k: int, knob: Any) -> np.ndarray:
        return np.stack([self.search(q, k, knob) for q in qs])


# --- faiss -------------------------------------------------------------------------------------


class FaissPeer(Peer):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "hnsw":
            self.knob, self.knobs = "efSearch", EF_SWEEP
        elif kind == "ivfpq":
            self.knob, self.knobs = "nprobe", NPROBE_SWEEP

    def build(self, x, work, texts):
        import faiss

        n, d = x.shape
        if self.kind == "flat":
            ix = faiss.IndexFlatIP(d)
        elif self.kind == "hnsw":
            ix = faiss.IndexHNSWFlat(d, M, faiss.METRIC_INNER_PRODUCT)
            ix.hnsw.efConstruction = EF_CONSTRUCTION
        else:
            nl = nlist_for(n)
            base = faiss.index_factory(d, f"IVF{nl},PQ{PQ_M}x8", faiss.METRIC_INNER_PRODUCT)
            ix = faiss.IndexRefineFlat(base)
            ix.k_factor = REFINE
            self.note = f"IVF{nl},PQ{PQ_M}x8 + IndexRefineFlat(k_factor={REFINE})"
            sample = x[np.random.default_rng(0).choice(n, min(n, 256 * nl), replace=False)]
            ix.train(np.ascontiguousarray(sample))
        if self.kind == "hnsw":  # one call, as heron's index build: faiss' HNSW built from
            ix.add(np.ascontiguousarray(x))  # 100k batches was a worse graph (0.957 at ef 128
        else:  # against 0.971 in one call, M=16 / efC=40 at 1M)
            for s, e in _batches(n, 100_000):
                ix.add(np.ascontiguousarray(x[s:e]))
        faiss.write_index(ix, str(work / "index.faiss"))
        self.ix = ix

    def _set(self, knob):
        import faiss

        if self.kind == "hnsw":
            self.ix.hnsw.efSearch = knob
        elif self.kind == "ivfpq":
            faiss.extract_index_ivf(self.ix.base_index).nprobe = knob

    def search(self, q, k, knob):
        self._set(knob)
        return self.ix.search(q[None, :], k)[1][0]

    def batch(self, qs, k, knob):
        self._set(knob)
        return self.ix.search(qs, k)[1]


# --- usearch -----------------------------------------------------------------------------------


class USearchPeer(Peer):
    knob, knobs = "expansion_search", EF_SWEEP

    def build(self, x, work, texts):
        from usearch.index import Index

        self.ix = Index(ndim=x.shape[1], metric="ip", dtype="f32", connectivity=M,
                        expansion_add=EF_CONSTRUCTION)
        for s, e in _batches(len(x), 100_000):
            self.ix.add(np.arange(s, e, dtype=np.uint64), np.ascontiguousarray(x[s:e]))
        self.ix.save(str(work / "index.usearch"))

    def search(self, q, k, knob):
        self.ix.expansion_search = knob
        return np.asarray(self.ix.search(q, k).keys, np.int64)

    def batch(self, qs, k, knob):
        self.ix.expansion_search = knob
        return np.asarray(self.ix.search(qs, k).keys, np.int64)


# --- Chroma ------------------------------------------------------------------------------------


class ChromaPeer(Peer):
    knob, knobs = "ef_search", EF_SWEEP

    def build(self, x, work, texts):
        import chromadb

        self.path = str(work / "chroma")
        self.client = chromadb.PersistentClient(path=self.path)
        self.col = self.client.get_or_create_collection(
            "peers",
            configuration={"hnsw": {"space": "ip", "ef_construction": EF_CONSTRUCTION,
                                    "max_neighbors": M, "ef_search": EF_SWEEP[0]}},
        )
        step = min(5000, self.client.get_max_batch_size())
        for s, e in _batches(len(x), step):
            kw = {"documents": texts[s:e]} if texts else {}
            self.col.add(ids=[str(i) for i in range(s, e)], embeddings=x[s:e], **kw)
        self._ef = EF_SWEEP[0]

    def _set(self, knob):
        if knob != self._ef:
            import chromadb
            from chromadb.api.client import SharedSystemClient

            # a modified ef_search reaches the loaded HNSW index only when the collection is
            # reopened (measured: recall stays at the creation-time ef on the same handle)
            self.col.modify(configuration={"hnsw": {"ef_search": int(knob)}})
            path = self.path
            del self.col, self.client
            SharedSystemClient.clear_system_cache()
            self.client = chromadb.PersistentClient(path=path)
            self.col = self.client.get_collection("peers")
            self._ef = knob

    def search(self, q, k, knob):
        return self.batch(q[None, :], k, knob)[0]

    def batch(self, qs, k, knob):
        self._set(knob)
        r = self.col.query(query_embeddings=qs, n_results=k, include=[])
        return np.array([[int(i) for i in row] + [-1] * (k - len(row)) for row in r["ids"]])


# --- LanceDB -----------------------------------------------------------------------------------


class LancePeer(Peer):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "ivf_hnsw_sq":
            self.knob, self.knobs = "ef", EF_SWEEP
        elif kind == "ivf_pq":
            self.knob, self.knobs = "nprobes", NPROBE_SWEEP

    def build(self, x, work, texts):
        import lancedb
        import pyarrow as pa

        n, d = x.shape
        self.db = lancedb.connect(str(work / "lance"))
        self.tbl = None
        for s, e in _batches(n, 100_000):
            cols = {
                "id": pa.array(np.arange(s, e, dtype=np.int64)),
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.ascontiguousarray(x[s:e]).reshape(-1)), d),
            }
            if texts:
                cols["text"] = pa.array(texts[s:e])
            t = pa.table(cols)
            if self.tbl is None:
                self.tbl = self.db.create_table("peers", t)
            else:
                self.tbl.add(t)
        if self.kind == "flat":
            self.note = "no index: brute-force scan"
            return
        self.nlist = nlist_for(n)
        if self.kind == "ivf_hnsw_sq":
            # LanceDB partitions first (IVF), then one HNSW graph per partition: with few lists
            # the graph does the work; nprobes is fixed so that ef is the knob.
            self.nlist = max(1, n // 250_000) if n > 250_000 else 1
            self.tbl.create_index(metric="dot", index_type="IVF_HNSW_SQ", num_partitions=self.nlist,
                                  m=M, ef_construction=EF_CONSTRUCTION)
            self.note = f"IVF_HNSW_SQ num_partitions={self.nlist} (nprobes all), m={M}, ef_construction={EF_CONSTRUCTION}"
        else:
            self.tbl.create_index(metric="dot", index_type="IVF_PQ", num_partitions=self.nlist,
                                  num_sub_vectors=PQ_M)
            self.note = f"IVF_PQ num_partitions={self.nlist}, num_sub_vectors={PQ_M}, refine_factor={REFINE}"
        self.tbl.wait_for_index = getattr(self.tbl, "wait_for_index", None)

    def _query(self, q, k, knob):
        b = self.tbl.search(q, vector_column_name="vector").distance_type("dot").limit(k)
        b = b.select(["id"])
        if self.kind == "flat":
            return b
        if self.kind == "ivf_hnsw_sq":
            return b.nprobes(self.nlist).ef(int(knob))
        return b.nprobes(int(knob)).refine_factor(REFINE)

    def search(self, q, k, knob):
        ids = self._query(q, k, knob).to_arrow()["id"].to_numpy()
        return np.concatenate([ids, -np.ones(k - len(ids), np.int64)])

    def batch(self, qs, k, knob):
        # a list of vectors is one query plan over all of them ("query_index" column)
        t = self._query([q for q in qs], k, knob).with_row_id(False).to_arrow()
        out = -np.ones((len(qs), k), np.int64)
        if "query_index" not in t.column_names:
            return super().batch(qs, k, knob)
        qi, ids = t["query_index"].to_numpy(), t["id"].to_numpy()
        for j in range(len(qs)):
            row = ids[qi == j][:k]
            out[j, : len(row)] = row
        return out


# --- Qdrant (local mode) -----------------------------------------------------------------------


class QdrantPeer(Peer):
    note = "local mode (QdrantClient(path=...)): exact numpy scan in Python, no HNSW"

    def build(self, x, work, texts):
        from qdrant_client import QdrantClient, models

        self.models = models
        self.client = QdrantClient(path=str(work / "qdrant"))
        self.client.create_collection(
            "peers", vectors_config=models.VectorParams(size=x.shape[1], distance=models.Distance.DOT))
        for s, e in _batches(len(x), 2000):
            self.client.upsert("peers", points=models.Batch(
                ids=list(range(s, e)), vectors=x[s:e].tolist(),
                payloads=[{"text": t} for t in texts[s:e]] if texts else None), wait=True)

    def search(self, q, k, knob):
        r = self.client.query_points("peers", query=q.tolist(), limit=k).points
        return np.array([p.id for p in r] + [-1] * (k - len(r)), np.int64)

    def batch(self, qs, k, knob):
        reqs = [self.models.QueryRequest(query=q.tolist(), limit=k) for q in qs]
        res = self.client.query_batch_points("peers", requests=reqs)
        return np.array([[p.id for p in r.points] + [-1] * (k - len(r.points)) for r in res])


# --- heron -------------------------------------------------------------------------------------


class HeronPeer(Peer):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.knob, self.knobs = {
            "exact": (None, [None]),
            "hnsw": ("ef_search", EF_SWEEP),
            "hnsw-int8": ("ef_search", EF_SWEEP),
            "bin": ("oversample", [2, 5, 10, 20, 40]),
            "ivf": ("nprobe", NPROBE_SWEEP),
        }[kind]

    def build(self, x, work, texts):
        import heron

        n, d = x.shape
        c = heron.Collection.create(work / "heron", model="none", dim=d)
        with c.bulk() as b:  # a bulk load: one memory-mapped segment, one commit, no compact
            for s, e in _batches(n, 100_000):
                ids = [str(i) for i in range(s, e)]
                b.add(texts[s:e] if texts else ids, ids=ids, vectors=np.ascontiguousarray(x[s:e]))
        if self.kind == "hnsw":
            c.create_index("hnsw", kind="hnsw", M=M, ef_construction=EF_CONSTRUCTION)
            self.using, self.note = "hnsw", f"M={M}, ef_construction={EF_CONSTRUCTION}"
        elif self.kind == "hnsw-int8":
            c.create_index("hnsw-int8", kind="hnsw", codec="int8", oversample=HNSW_INT8_OVERSAMPLE,
                           M=M, ef_construction=EF_CONSTRUCTION)
            self.using = "hnsw-int8"
            self.note = (f"M={M}, ef_construction={EF_CONSTRUCTION}, int8 codes in the graph, "
                         f"exact rescoring of {HNSW_INT8_OVERSAMPLE}*k")
        elif self.kind == "ivf":
            nl = nlist_for(n)
            c.create_index("ivf-int8", kind="ivf", nlist=nl, codec="int8")
            self.using, self.note = "ivf-int8", f"IVF nlist={nl}, int8 codes + exact rescoring"
        elif self.kind == "bin":
            self.using, self.note = "compressed", "1-bit codes, exact rescoring of oversample*k"
            c.search(x[:1], 10, using="compressed", codec="bin", oversample=10)  # builds the codes
        else:
            self.using, self.note = "dense", "exact scan of the memory-mapped segment"
        self.coll = c

    def _kw(self, knob):
        if self.kind.startswith("hnsw"):
            return {"ef_search": knob}
        if self.kind == "ivf":
            return {"nprobe": knob}
        if self.kind == "bin":
            return {"codec": "bin", "oversample": knob}
        return {}

    def batch(self, qs, k, knob):
        r = self.coll.search(np.atleast_2d(qs), k, using=self.using, **self._kw(knob))
        return np.array([[int(i) for i in row] + [-1] * (k - len(row)) for row in r.doc_ids()])

    def search(self, q, k, knob):
        return self.batch(q[None, :], k, knob)[0]


SYSTEMS: dict[str, Any] = {
    "heron-exact": lambda: HeronPeer("exact"),
    "heron-hnsw": lambda: HeronPeer("hnsw"),
    "heron-hnsw-int8": lambda: HeronPeer("hnsw-int8"),
    "heron-bin": lambda: HeronPeer("bin"),
    "heron-ivf": lambda: HeronPeer("ivf"),
    "faiss-flat": lambda: FaissPeer("flat"),
    "faiss-hnsw": lambda: FaissPeer("hnsw"),
    "faiss-ivfpq": lambda: FaissPeer("ivfpq"),
    "usearch": USearchPeer,
    "chroma": ChromaPeer,
    "lancedb-flat": lambda: LancePeer("flat"),
    "lancedb-ivf-hnsw-sq": lambda: LancePeer("ivf_hnsw_sq"),
    "lancedb-ivf-pq": lambda: LancePeer("ivf_pq"),
    "qdrant-local": QdrantPeer,
}
#: the import each system needs (a missing one skips the row with an install hint)
PACKAGES = {"heron": "heron", "faiss": "faiss-cpu", "usearch": "usearch", "chroma": "chromadb",
            "lancedb": "lancedb", "qdrant": "qdrant-client"}
