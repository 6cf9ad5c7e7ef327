"""MUVERA FDEs stored as float16 and scanned in place (heron.multivector.muvera_scan)."""

from __future__ import annotations

import numpy as np
import pytest

from heron.multivector.muvera import FDEEncoder, MuveraRetriever
from heron.multivector.muvera_scan import fde_search
from heron.multivector.ragged import RaggedArray
from heron.retrieval.topk import exact_search


def _clustered_tokens(n_docs: int, dim: int, seed: int) -> list[np.ndarray]:
    """Token sets drawn around 30 topics, so documents have real nearest neighbours."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((30, dim)).astype(np.float32)
    out = []
    for _ in range(n_docs):
        t = topics[rng.integers(0, 30)]
        x = t + 0.7 * rng.standard_normal((int(rng.integers(5, 40)), dim)).astype(np.float32)
        out.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    return out


@pytest.fixture(scope="module")
def fdes():
    enc = FDEEncoder(dim=32, k_sim=3, d_proj=8, r_reps=16, seed=1)
    docs = _clustered_tokens(600, 32, 0)
    queries = _clustered_tokens(40, 32, 1)
    d32 = enc.encode_documents(docs)
    return enc, docs, enc.encode_queries(queries), d32


@pytest.mark.parametrize("method", ["numba", "numpy"])
def test_float16_scan_matches_float32_scan_of_the_same_values(fdes, method):
    pytest.importorskip("numba") if method == "numba" else None
    _, _, q, d32 = fdes
    d16 = d32.astype(np.float16)
    s, r = fde_search(q[:3], d16, 10, method=method)
    es, er = exact_search(q[:3], d16.astype(np.float32), 10, method="numpy")
    np.testing.assert_array_equal(r, er)
    np.testing.assert_allclose(s, es, rtol=1e-4, atol=1e-4)


def test_float16_keeps_the_float32_top10(fdes):
    _, _, q, d32 = fdes
    _, r32 = exact_search(q, d32, 10)
    _, r16 = fde_search(q, d32.astype(np.float16), 10)
    overlap = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(r16, r32)])
    assert overlap >= 0.97, overlap


def test_valid_mask_padding_and_many_queries(fdes):
    _, _, q, d32 = fdes
    d16 = d32.astype(np.float16)
    valid = np.zeros(len(d16), dtype=bool)
    valid[[5, 17, 400]] = True
    s, r = fde_search(q[:2], d16, 5, valid=valid)
    assert set(r[0, :3]) == {5, 17, 400}
    assert (r[:, 3:] == -1).all() and np.isneginf(s[:, 3:]).all()
    # more queries than the fused kernel takes: the blocked path, same answer
    s_all, r_all = fde_search(q, d16, 10)
    s_one, r_one = fde_search(q[:1], d16, 10)
    np.testing.assert_array_equal(r_all[:1], r_one)


def test_memmapped_float16_is_not_copied(tmp_path, fdes):
    _, _, q, d32 = fdes
    np.save(tmp_path / "f.npy", d32.astype(np.float16))
    mm = np.load(tmp_path / "f.npy", mmap_mode="r")
    _, r = fde_search(q[:1], mm, 10)
    _, r2 = fde_search(q[:1], np.asarray(mm), 10)
    np.testing.assert_array_equal(r, r2)


def test_bad_inputs_are_named(fdes):
    _, _, q, d32 = fdes
    with pytest.raises(TypeError, match="float16 or float32"):
        fde_search(q, d32.astype(np.float64), 10)
    with pytest.raises(ValueError, match="dims"):
        fde_search(q[:, :5], d32, 10)
    with pytest.raises(ValueError, match="method"):
        fde_search(q, d32, 10, method="gpu")


def test_retriever_accepts_float16_fdes(fdes):
    enc, docs, _, d32 = fdes
    offs = np.concatenate([[0], np.cumsum([len(x) for x in docs])]).astype(np.int64)
    store = RaggedArray(offs, np.concatenate(docs).astype(np.float16))
    qt = _clustered_tokens(5, 32, 2)
    r16 = MuveraRetriever(encoder=enc, doc_fdes=d32.astype(np.float16), docs=store, rerank=False)
    r32 = MuveraRetriever(encoder=enc, doc_fdes=d32, docs=store, rerank=False)
    a, b = r16.fde_search(qt, 20), r32.fde_search(qt, 20)
    overlap = np.mean([len(np.intersect1d(x, y)) / 20 for x, y in zip(a.keys, b.keys)])
    assert overlap >= 0.9, overlap


def test_collection_stores_float16_fdes_and_keeps_float32_one_flag_away(tmp_path):
    import heron
    from heron.pipeline import Queries

    toks = _clustered_tokens(60, 16, 3)
    dense = np.stack([t.mean(0) for t in toks]).astype(np.float32)
    c = heron.Collection.create(
        tmp_path / "c", model="none", dim=16, fields={"tokens": {"kind": "ragged", "dim": 16}}
    )
    for lo, hi in ((0, 40), (40, 60)):  # two segments: the FDEs are concatenated
        c.add([f"doc {i}" for i in range(lo, hi)], ids=[f"d{i}" for i in range(lo, hi)],
              vectors=dense[lo:hi], fields={"tokens": [t.astype(np.float16) for t in toks[lo:hi]]})
    params = {"k_sim": 3, "d_proj": 8, "r_reps": 8}
    q = Queries(["q0", "q1"])
    q.put("tokens", [toks[3][:3], toks[50][:3]])
    hits = {}
    for dt in ("float16", "float32"):
        ret = c.retriever("muvera", fde_dtype=dt, **params)
        hits[dt] = ret.search(q, 5)
        inner = ret._inner()
        assert inner.doc_fdes.dtype == np.dtype(dt)
    stored = [np.load(p, mmap_mode="r").dtype for p in tmp_path.glob("c/**/muvera-*/*.npy")]
    assert np.dtype("float16") in stored and np.dtype("float32") in stored
    assert hits["float16"].keys[0, 0] == hits["float32"].keys[0, 0]  # MaxSim rerank: same best
    with pytest.raises(ValueError, match="fde_dtype"):
        c.retriever("muvera", fde_dtype="int8", **params)
