"""Seismic vs the exact oracle on seeded synthetic sparse data (fast)."""

from __future__ import annotations

import numpy as np
import pytest

sp = pytest.importorskip("scipy.sparse")
pytest.importorskip("numba")

from _lib.synthetic_sparse import synthetic_sparse  # noqa: E402
from heron.sparse.exact import ExactSparseIndex  # noqa: E402
from heron.sparse.seismic import SeismicIndex  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return synthetic_sparse(
        600,
        n_queries=25,
        vocab_size=500,
        doc_nnz=20,
        query_nnz=6,
        n_topics=20,
        topic_vocab=40,
        seed=3,
    )


def recall(a, b):
    return np.mean(
        [
            len(set(x[x >= 0]) & set(y[y >= 0])) / max(1, (y >= 0).sum())
            for x, y in zip(a.keys, b.keys)
        ]
    )


def test_exact_matches_dense_numpy(data):
    d, q = data
    res = ExactSparseIndex(d).search(q, 5)
    s = (q @ d.T).toarray()
    for i in range(q.shape[0]):
        top = np.lexsort((np.arange(s.shape[1]), -s[i]))[:5]
        np.testing.assert_array_equal(res.keys[i], top)


def _rounded(d, values):
    """``d`` with its weights as the index stores them (``values`` precision)."""
    d = d.copy()
    d.data = d.data.astype(values).astype(np.float32)
    return d


@pytest.mark.parametrize("values", ["float16", "float32"])
@pytest.mark.parametrize("pruning", ["fixed", "global"])
def test_no_pruning_equals_exact(data, pruning, values):
    """With nothing pruned (every posting kept, α = 1, every query term, heap_factor = 1) the
    query kernel must return exactly the exact top-k of the weights it stores (float16: the
    corpus rounded to half precision), whatever the block order: block skipping is then safe
    (quantized summaries round up, so they bound every score in their block)."""
    d, q = data
    gt = ExactSparseIndex(_rounded(d, values)).search(q, 10)
    for quantize in (True, False):
        idx = SeismicIndex.build(
            d, n_postings=10_000, summary_energy=1.0, quantize=quantize, pruning=pruning,
            values=values,
        )  # fmt: skip
        assert idx._a["fwd_val"].dtype == np.dtype(values) and idx.params["values"] == values
        assert idx.n_postings_kept == d.nnz
        for sort_blocks in (0, 1, 1000):
            r = idx.search(q, 10, query_cut=1000, heap_factor=1.0, sort_blocks=sort_blocks)
            np.testing.assert_array_equal(r.keys, gt.keys)
            np.testing.assert_allclose(r.scores, gt.scores, rtol=1e-5)
            assert r.info["docs_scored"] > 0
    # and blocks were really skipped (the comparison above is not a full scan in disguise)
    n_match = (q @ d.T).getnnz()  # documents sharing a term with each query, summed
    assert r.info["docs_scored"] < n_match


def test_global_pruning_budget(data):
    """``pruning="global"`` keeps the ``n_postings · V`` heaviest postings overall, each list
    capped at ``max_fraction · n_postings`` (the paper's global threshold)."""
    from heron.sparse.seismic import _kernels, _list_budget

    d, _ = data
    inv = d.tocsc()
    inv.sort_indices()
    lam = 8
    fi, fv, V = d.indices.astype(np.uint16), d.data.astype(np.float32), d.shape[1]
    thr, cnt, keep = _list_budget(_kernels(), fi, fv, V, lam, "global", 1.5)
    assert thr == np.sort(inv.data)[::-1][lam * V - 1]  # the radix select is exact
    df = np.diff(inv.indptr)
    assert keep.sum() <= lam * d.shape[1] and (keep <= df).all() and (keep <= 12).all()
    thr = np.sort(inv.data)[::-1][lam * d.shape[1] - 1]
    above = np.array([(inv.data[a:b] >= thr).sum() for a, b in zip(inv.indptr, inv.indptr[1:])])
    np.testing.assert_array_equal(keep, np.minimum(above, 12))
    _, cnt, keep_fixed = _list_budget(_kernels(), fi, fv, V, lam, "fixed", 1.5)
    np.testing.assert_array_equal(cnt, df)
    np.testing.assert_array_equal(keep_fixed, np.minimum(df, lam))
    idx = SeismicIndex.build(d, n_postings=lam, pruning="global")
    assert idx.n_postings_kept == keep.sum()


def test_recall_non_decreasing_as_pruning_relaxes(data):
    d, q = data
    gt = ExactSparseIndex(d).search(q, 10)
    idx = SeismicIndex.build(d, n_postings=10_000, summary_energy=0.5)
    recalls = [recall(idx.search(q, 10, query_cut=qc, heap_factor=1.0), gt) for qc in (1, 2, 4, 8)]
    assert all(b >= a - 1e-9 for a, b in zip(recalls, recalls[1:])), recalls
    assert recalls[-1] >= 0.9


def test_save_load_round_trip(tmp_path, data):
    d, q = data
    keys = np.arange(d.shape[0], dtype=np.int64) * 7 + 100
    idx = SeismicIndex.build(d, keys=keys, n_postings=50)
    idx.save(tmp_path / "s")
    back = SeismicIndex.load(tmp_path / "s")
    a, b = idx.search(q, 10), back.search(q, 10)
    np.testing.assert_array_equal(a.keys, b.keys)
    assert set(a.keys[a.keys >= 0].tolist()) <= set(keys.tolist())
    assert (back.forward() != _rounded(d, "float16")).nnz == 0
    # the forward index is read into process memory (read at random), the rest is mapped
    assert not isinstance(back._a["fwd_val"], np.memmap) and back._a["fwd_val"].flags.writeable
    assert back._a["fwd_val"].dtype == np.float16
    exact = SeismicIndex.build(d, n_postings=50, values="float32")
    exact.save(tmp_path / "f32")
    assert (SeismicIndex.load(tmp_path / "f32").forward() != d).nnz == 0


def test_float16_values_lose_little_and_fall_back_out_of_range(data, caplog):
    """Half-precision weights change scores by at most ~2**-11 relative and recall not at all
    here; weights beyond float16's range keep float32 (with a warning), never infinities."""
    d, q = data
    a = SeismicIndex.build(d, n_postings=50, values="float32").search(q, 10)
    b = SeismicIndex.build(d, n_postings=50).search(q, 10)
    assert recall(b, a) >= 0.98
    np.testing.assert_allclose(b.scores[:, 0], a.scores[:, 0], rtol=2e-3)
    big = d.copy()
    big.data = big.data * 1e5
    with caplog.at_level("WARNING", logger="heron.sparse.seismic"):
        idx = SeismicIndex.build(big, n_postings=50)
    assert idx.params["values"] == "float32" and idx._a["fwd_val"].dtype == np.float32
    assert "exceed float16" in caplog.text
    assert np.isfinite(idx.search(q, 10).scores[:, 0]).all()


def test_empty_query_and_empty_doc(data):
    d, _ = data
    d = sp.vstack([d, sp.csr_matrix((1, d.shape[1]), dtype=np.float32)]).tocsr()
    idx = SeismicIndex.build(d, n_postings=50)
    q = sp.csr_matrix((2, d.shape[1]), dtype=np.float32)
    r = idx.search(q, 3)
    assert (r.keys == -1).all() and r.info["empty_queries"] == [0, 1]


def test_bad_parameters(data):
    d, q = data
    with pytest.raises(ValueError, match=r"summary_energy \(alpha\) must be a number in \(0, 1\]"):
        SeismicIndex.build(d, summary_energy=1.5)
    with pytest.raises(ValueError, match="n_postings"):
        SeismicIndex.build(d, n_postings=0)
    idx = SeismicIndex.build(d, n_postings=50)
    with pytest.raises(ValueError, match="heap_factor"):
        idx.search(q, 10, heap_factor=0)
    with pytest.raises(ValueError, match="sort_blocks"):
        idx.search(q, 10, sort_blocks=-1)
    with pytest.raises(ValueError, match="pruning"):
        SeismicIndex.build(d, pruning="local")
    with pytest.raises(
        ValueError, match=r"values must be one of \('float16', 'float32'\), got 'int8'"
    ):
        SeismicIndex.build(d, values="int8")
    with pytest.raises(ValueError, match="vocabulary"):
        idx.search(sp.csr_matrix((1, 7), dtype=np.float32), 10)


def test_version_checked_on_load(tmp_path, data):
    import json

    d, _ = data
    SeismicIndex.build(d, n_postings=50).save(tmp_path / "s")
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    m["version"] = 999
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="format version"):
        SeismicIndex.load(tmp_path / "s")


def test_compact_summaries_and_manifest_dtypes(tmp_path, data):
    """Summaries are stored per list, sorted by component, in the narrowest dtypes, and are what
    they claim: with α = 1 a block's components are exactly the union of its documents' terms,
    and each 8-bit code times the block's step bounds the block's largest weight from above by
    less than one step."""
    import json

    d, _ = data
    idx = SeismicIndex.build(d, n_postings=40, summary_energy=1.0)
    a = idx._a
    fwd = _rounded(d, "float16")  # the weights the index stores, and summarises
    n_blocks_seen = 0
    for t in range(idx.vocab_size):
        b0, b1 = int(a["term_blocks"][t]), int(a["term_blocks"][t + 1])
        e0, e1 = int(a["sum_ptr"][t]), int(a["sum_ptr"][t + 1])
        comp = a["sum_comp"][e0:e1].astype(np.int64)
        blk = a["sum_blk"][e0:e1].astype(np.int64)
        # sorted by component, blocks ascending within a component
        assert (np.lexsort((blk, comp)) == np.arange(e1 - e0)).all()
        skips = a["sum_skip"][int(a["skip_ptr"][t]) : int(a["skip_ptr"][t + 1])]
        np.testing.assert_array_equal(skips, a["sum_comp"][e0:e1][::32])
        assert ((blk >= 0) & (blk < b1 - b0)).all()
        for bb in range(b1 - b0):
            b = b0 + bb
            n_blocks_seen += 1
            docs = a["post_docs"][a["block_ptr"][b] : a["block_ptr"][b + 1]]
            mx = np.asarray(fwd[docs].max(axis=0).todense()).ravel()
            mine = blk == bb
            assert sorted(comp[mine].tolist()) == np.flatnonzero(mx).tolist()
            ub = a["sum_codes"][e0:e1][mine].astype(np.float64) * a["blk_scale"][b]
            assert (ub >= mx[comp[mine]]).all() and (ub - a["blk_scale"][b] < mx[comp[mine]]).all()
    assert n_blocks_seen == idx.n_blocks
    idx.save(tmp_path / "s")
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    dtypes = {k: v["dtype"] for k, v in m["arrays"].items()}
    assert (
        dtypes["sum_comp"] == "<u2" and dtypes["sum_codes"] == "|u1" and dtypes["sum_blk"] == "|u1"
    )
    assert {dtypes[x] for x in ("term_blocks", "block_ptr", "sum_ptr", "fwd_ptr")} == {"<u4"}
    assert dtypes["fwd_val"] == "<f2"
    assert m["arrays"]["sum_codes"]["shape"] == [int(a["sum_ptr"][-1])]
    # a file that does not match the manifest is refused with a clear message
    np.save(tmp_path / "s" / "sum_comp.npy", np.asarray(a["sum_comp"], dtype=np.int32))
    with pytest.raises(ValueError, match="sum_comp.npy is <i4.*rebuild"):
        SeismicIndex.load(tmp_path / "s")


@pytest.mark.parametrize("pruning", ["fixed", "global"])
def test_chunked_build_is_identical(data, pruning):
    """Transposing the inverted lists a few terms at a time (``chunk``) changes nothing."""
    d, q = data
    whole = SeismicIndex.build(d, n_postings=30, pruning=pruning)
    small = SeismicIndex.build(d, n_postings=30, pruning=pruning, chunk=25)
    assert whole._a.keys() == small._a.keys()
    for name in whole._a:
        np.testing.assert_array_equal(whole._a[name], small._a[name], err_msg=name)
    np.testing.assert_array_equal(whole.search(q, 10).keys, small.search(q, 10).keys)


def test_summary_scores_read_only_the_query_terms_entries(data):
    """The search kernel's summary scores (each query term's entries found through the list's
    skip array of every ``SKIP``-th component) equal a plain sum over every entry of every
    block; lists span many skips, and terms fall on both sides of skip boundaries."""
    from heron.sparse._seismic_search_numba import _summary_scores

    d, q = data
    idx = SeismicIndex.build(d, n_postings=200, summary_energy=1.0)
    a = idx._a
    lens = np.diff(a["sum_ptr"].astype(np.int64))
    assert lens.max() > 200  # lists long enough for the search to matter (SKIP = 32)
    ss = np.zeros(int(np.diff(a["term_blocks"].astype(np.int64)).max()), dtype=np.float32)
    grp = np.zeros(q.shape[1], dtype=np.int64)
    checked = 0
    for i in range(q.shape[0]):
        qa, qb = int(q.indptr[i]), int(q.indptr[i + 1])
        qi = q.indices.astype(np.int64)
        weight = dict(zip(q.indices[qa:qb].tolist(), q.data[qa:qb].tolist()))
        for t in q.indices[qa:qb]:
            b0, b1 = int(a["term_blocks"][t]), int(a["term_blocks"][t + 1])
            e0, e1 = int(a["sum_ptr"][t]), int(a["sum_ptr"][t + 1])
            if b1 == b0:
                continue
            s0, s1 = int(a["skip_ptr"][t]), int(a["skip_ptr"][t + 1])
            _summary_scores(
                qi, q.data, qa, qb, a["sum_comp"], a["sum_codes"], a["sum_f"], a["sum_blk"],
                True, e0, e1, a["sum_skip"], s0, s1, a["blk_scale"], b0, b1 - b0, ss, grp,
            )  # fmt: skip
            want = np.zeros(b1 - b0)
            for z in range(e0, e1):
                w = weight.get(int(a["sum_comp"][z]), 0.0)
                want[a["sum_blk"][z]] += w * a["sum_codes"][z]
            want *= a["blk_scale"][b0:b1]
            np.testing.assert_allclose(ss[: b1 - b0], want, rtol=1e-5, atol=1e-6)
            checked += 1
    assert checked > 50


def test_a_batch_split_over_threads_answers_each_query_as_alone(data, monkeypatch):
    """A batch runs in slices on worker threads (each with its own scratch); every query gets
    exactly the keys and scores it gets searched alone, and the counters add up."""
    import numba

    from heron.sparse import seismic

    d, q = data
    idx = SeismicIndex.build(d, n_postings=50)
    monkeypatch.setattr(seismic, "_threads", lambda: 3)
    assert len(seismic._query_parts(q.shape[0], 3)) == 3
    batch = idx.search(q, 10, query_cut=4, heap_factor=0.8)
    alone = [idx.search(q[i], 10, query_cut=4, heap_factor=0.8) for i in range(q.shape[0])]
    np.testing.assert_array_equal(batch.keys, np.vstack([r.keys for r in alone]))
    np.testing.assert_array_equal(batch.scores, np.vstack([r.scores for r in alone]))
    assert batch.info["docs_scored"] == sum(r.info["docs_scored"] for r in alone)
    assert seismic._query_parts(3, numba.get_num_threads()) == [(0, 3)]  # small: no threads
