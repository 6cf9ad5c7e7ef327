"""``Collection.search`` over an HNSW index returns exactly what faiss returns on the same graph."""

from __future__ import annotations

import numpy as np
import pytest

import heron
from heron.pipeline import Queries

pytest.importorskip("faiss")

D, N = 32, 3000


def vecs(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def coll(tmp_path_factory):
    c = heron.Collection.create(tmp_path_factory.mktemp("hnsw") / "c", model="none", dim=D)
    c.add([f"doc {i}" for i in range(N)], ids=[f"d{i}" for i in range(N)], vectors=vecs(N, 0))
    c.create_index("hnsw", kind="hnsw", M=8, ef_construction=40)
    yield c
    c.close()


@pytest.mark.parametrize("ef", [16, 64, 256])
def test_same_ids_and_distances_as_faiss(coll, ef) -> None:
    idx = coll.artifact("hnsw", build="never")[1]
    raw = idx._index
    q = vecs(20, 1)
    raw.hnsw.efSearch = ef
    dist, lab = raw.search(q, 10)
    batch = coll.search(q, 10, using="hnsw", ef_search=ef)
    assert np.array_equal(batch.keys, idx.keys[lab]) and np.array_equal(batch.scores, dist)
    for i in range(len(q)):  # one query at a time, as a 1-d vector and as a (1, d) row
        for v in (q[i], q[i : i + 1]):
            one = coll.search(v, 10, using="hnsw", ef_search=ef)
            assert np.array_equal(one.keys[0], idx.keys[lab[i]])
            assert np.array_equal(one.scores[0], dist[i])
    # the general pipeline path (precomputed Queries) gives the same answer and the same info
    slow = coll.search(Queries(["q"] * 20, vectors={"none": q}), 10, using="hnsw", ef_search=ef)
    assert np.array_equal(slow.keys, batch.keys) and np.array_equal(slow.scores, batch.scores)
    assert slow.info == batch.info and batch.info["strategy"] == "hnsw"
    assert batch.doc_ids()[0] == slow.doc_ids()[0]
    assert batch.hits()[0][0].text == slow.hits()[0][0].text


def test_bad_queries_still_refused(coll) -> None:
    bad = vecs(1, 2)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="finite|NaN"):
        coll.search(bad, 10, using="hnsw")
    with pytest.raises(ValueError, match="shape"):
        coll.search(np.zeros((1, D + 1), np.float32), 10, using="hnsw")
    with pytest.raises(ValueError, match="unknown parameter"):
        coll.search(vecs(1, 3), 10, using="hnsw", nprobe=4)


def test_deleted_and_added_documents_after_the_build(tmp_path) -> None:
    c = heron.Collection.create(tmp_path / "c", model="none", dim=D)
    x = vecs(500, 4)
    c.add([f"doc {i}" for i in range(500)], ids=[f"d{i}" for i in range(500)], vectors=x)
    c.create_index("hnsw", kind="hnsw", M=8, ef_construction=40)
    first = c.search(x[7], 1, using="hnsw").doc_ids()[0]
    assert first == ["d7"]
    c.delete(["d7"])
    after = c.search(x[7], 10, using="hnsw")
    assert "d7" not in after.doc_ids()[0] and after.info["tombstones"] == 1
    c.add(["new"], ids=["n1"], vectors=x[7:8] * 1.0)
    grown = c.search(x[7], 10, using="hnsw")
    assert grown.doc_ids()[0][0] == "n1" and "delta-exact" in grown.info["strategy"]
    c.close()


def test_vector_queries_skip_the_pipeline(coll, monkeypatch) -> None:
    from heron.capabilities.ann import AnnRetriever

    want = coll.search(vecs(1, 5), 10, using="hnsw", ef_search=32)

    def no_pipeline(*a, **kw):
        raise AssertionError("the general path ran")

    monkeypatch.setattr(AnnRetriever, "transform", no_pipeline)
    got = coll.search(vecs(1, 5), 10, using="hnsw", ef_search=32)
    assert np.array_equal(got.keys, want.keys)
    with pytest.raises(AssertionError, match="general path"):  # a filter takes the general path
        coll.search(vecs(1, 5), 10, using="hnsw", filter={"x": 1})


def test_index_built_without_parameters_uses_the_defaults(tmp_path) -> None:
    from heron.index.hnsw import DEFAULT_EF_CONSTRUCTION, DEFAULT_M

    c = heron.Collection.create(tmp_path / "c", model="none", dim=D)
    c.add([f"doc {i}" for i in range(200)], ids=[f"d{i}" for i in range(200)], vectors=vecs(200, 6))
    c.search(vecs(1, 7), 5, using="hnsw")  # built on first use, with heron's defaults
    idx = c.artifact("hnsw", build="never")[1]
    assert (idx.M, idx.ef_construction) == (DEFAULT_M, DEFAULT_EF_CONSTRUCTION)
    assert idx._index.hnsw.efConstruction == DEFAULT_EF_CONSTRUCTION
    assert idx._index.hnsw.nb_neighbors(0) == 2 * DEFAULT_M
    c.close()


def test_concurrent_searches_keep_their_own_ef(coll) -> None:
    from concurrent.futures import ThreadPoolExecutor

    q = vecs(60, 8)
    want = {ef: coll.search(q, 10, using="hnsw", ef_search=ef).keys for ef in (16, 256)}
    assert not np.array_equal(want[16], want[256])  # the two ef values answer differently

    def run(ef: int) -> np.ndarray:
        return np.stack([coll.search(q[i], 10, using="hnsw", ef_search=ef).keys[0] for i in range(60)])

    with ThreadPoolExecutor(2) as ex:
        got = dict(zip((16, 256), ex.map(run, (16, 256))))
    for ef in (16, 256):
        assert np.array_equal(got[ef], want[ef])


@pytest.mark.parametrize("ef", [16, 64])
def test_compressed_graph_rescores_on_the_fast_path(coll, ef) -> None:
    """An int8 graph walks its codes for oversample*k candidates, re-scored from the float copy."""
    coll.create_index("hnsw-int8", kind="hnsw", codec="int8", M=8, ef_construction=40)
    idx = coll.artifact("hnsw-int8", build="never")[1]
    x = idx.vectors_of(np.arange(idx.ntotal))
    q = vecs(20, 4)
    for over, depth in ((2, 20), (None, 40)):  # the int8 default oversample is 4
        kw = {} if over is None else {"oversample": over}
        got = coll.search(q, 10, using="hnsw-int8", ef_search=ef, **kw)
        # the graph's own candidates, re-scored by hand
        sp = __import__("faiss").SearchParametersHNSW()
        sp.efSearch = max(ef, depth)
        _, lab = idx._index.search(q, depth, params=sp)
        exact = np.einsum("qd,qkd->qk", q, x[lab])
        order = np.argsort(-exact, axis=1, kind="stable")[:, :10]
        want_keys = idx.keys[np.take_along_axis(lab, order, 1)]
        assert np.array_equal(got.keys, want_keys)
        assert np.allclose(got.scores, np.take_along_axis(exact, order, 1), atol=1e-5)
        assert got.info["strategy"] == f"hnsw+rescore(x{over or 4})"
        # the general path (precomputed Queries) takes the same steps
        slow = coll.search(Queries(["q"] * 20, vectors={"none": q}), 10, using="hnsw-int8",
                           ef_search=ef, **kw)
        assert np.array_equal(slow.keys, got.keys) and np.array_equal(slow.scores, got.scores)
        # one query at a time gives the rows of the batch
        one = coll.search(q[3], 10, using="hnsw-int8", ef_search=ef, **kw)
        assert np.array_equal(one.keys[0], got.keys[3])
        # ... and the label walk + rescoring that filtered searches use gives it too
        s, lab2, _ = idx._search_labels(q, depth, None, 1.0, {"ef_search": ef})
        s2, l2 = idx._rescore(q, lab2, 10)
        assert np.array_equal(idx.keys[l2], got.keys)


@pytest.mark.parametrize("codec", ["fp32", "int8"])
def test_ivf_fast_path_is_faiss_plus_the_rescoring(coll, codec) -> None:
    """IVF through ``Collection.search``: faiss' own lists for ``nprobe``, then the rescoring."""
    name = f"ivf-{codec}"
    coll.create_index(name, kind="ivf", codec=codec, nlist=32)
    idx = coll.artifact(name, build="never")[1]
    q = vecs(20, 5)
    for nprobe in (1, 4, 16):
        got = coll.search(q, 10, using=name, nprobe=nprobe)
        depth = 10 if codec == "fp32" else 40  # int8's default oversample is 4
        sp = __import__("faiss").SearchParametersIVF()
        sp.nprobe = nprobe
        dist, lab = idx._index.search(q, depth, params=sp)
        if codec == "fp32":
            assert np.array_equal(got.keys, idx.keys[lab]) and np.array_equal(got.scores, dist)
            assert got.info["strategy"] == "ivf"
        else:
            x = idx.vectors_of(np.maximum(lab, 0))
            exact = np.where(lab >= 0, np.einsum("qd,qkd->qk", q, x), -np.inf)
            order = np.argsort(-exact, axis=1, kind="stable")[:, :10]
            assert np.array_equal(got.keys, idx.keys[np.take_along_axis(lab, order, 1)])
            assert got.info["strategy"] == "ivf+rescore(x4)"
        # the general path (precomputed Queries) and one query at a time agree
        slow = coll.search(Queries(["q"] * 20, vectors={"none": q}), 10, using=name, nprobe=nprobe)
        assert np.array_equal(slow.keys, got.keys) and slow.info == got.info
        one = coll.search(q[7], 10, using=name, nprobe=nprobe)
        assert np.array_equal(one.keys[0], got.keys[7])
        s, lab2, _ = idx._search_labels(q, depth, None, 1.0, {"nprobe": nprobe})
        assert np.array_equal(lab2, lab)


def test_rescoring_copy_is_mapped_ahead(tmp_path) -> None:
    """A compressed index's float copy is pre-faulted when opened (no page fault per query)."""
    import mmap

    from heron._memory import populate_pages

    c = heron.Collection.create(tmp_path / "c", model="none", dim=D)
    c.add([f"doc {i}" for i in range(500)], ids=[f"d{i}" for i in range(500)], vectors=vecs(500, 6))
    c.create_index("hnsw-int8", kind="hnsw", codec="int8", M=8)
    c.close()
    c = heron.Collection.open(tmp_path / "c")
    idx = c.artifact("hnsw-int8", build="never")[1]
    part = idx._vec_parts[0]
    assert type(part) is np.ndarray  # a plain view of the mapping (no np.memmap per-row overhead)
    base = part
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, mmap.mmap)
    assert populate_pages(part)  # the advice is taken on this kernel
    assert populate_pages(np.zeros(3))  # arrays in memory are left alone
    c.close()
