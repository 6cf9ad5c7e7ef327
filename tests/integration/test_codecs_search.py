"""Two-stage search, recommendation logic and the collection retriever."""

from __future__ import annotations

import numpy as np
import pytest
from tests._after_fixtures import codec_data as data

from heron.bench.pareto import pareto_front
from heron.bench.recommend import parse_bytes, recommend
from heron.codecs import parse_spec
from heron.codecs.search import TwoStageSearcher, rescore_rows


def exact_top(q, x, k):
    return np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("spec", ["bin", "bin-ham", "rbin2", "int4"])
def test_recall_monotone_in_oversample(spec):
    x, q = data(2000, 32), data(40, 32, seed=3)
    gt = exact_top(q, x, 10)
    codec = parse_spec(spec).fit(x)
    s = TwoStageSearcher(codec, codec.encode(x), rescore=x.astype(np.float16))
    rec = []
    for os_ in (1, 2, 4, 8, 16, 200):
        rows = s.search(q, 10, oversample=os_)[1]
        rec.append(np.mean([len(set(r) & set(g)) for r, g in zip(rows, gt)]) / 10)
    assert all(b >= a - 1e-12 for a, b in zip(rec, rec[1:])), rec
    assert rec[-1] == 1.0  # oversample x200 covers the whole corpus


def test_rescore_rows_exact_and_padded():
    x, q = data(50, 8), data(2, 8, seed=1)
    rows = np.array([[3, 1, -1, 7], [0, -1, -1, -1]])
    s, r = rescore_rows(q, rows, x, 3)
    assert r[1].tolist() == [0, -1, -1] and np.isneginf(s[1, 1:]).all()
    np.testing.assert_allclose(s[0], np.sort(q[0] @ x[[3, 1, 7]].T)[::-1], rtol=1e-6)


def test_searcher_roundtrip(tmp_path):
    x, q = data(500, 32), data(5, 32, seed=2)
    a = TwoStageSearcher.build(parse_spec("bin"), x, tmp_path / "ix", model="m")
    b = TwoStageSearcher.open(tmp_path / "ix", dim=32, model="m")
    assert isinstance(b.rescore, np.memmap)
    np.testing.assert_array_equal(a.search(q, 5)[1], b.search(q, 5)[1])
    with pytest.raises(ValueError, match="oversample"):
        b.search(q, 5, oversample=-1)


def test_pareto_and_recommend():
    rows = [
        {
            "codec": "fp32",
            "oversample": 0,
            "rescore": "none",
            "memory_bytes": 1000,
            "bytes_per_vector": 100,
            "state_bytes": 0,
            "recall10_exact": 1.0,
            "latency_ms": 10.0,
            "n_docs": 10,
            "compression": 1,
        },
        {
            "codec": "int8",
            "oversample": 0,
            "rescore": "none",
            "memory_bytes": 250,
            "bytes_per_vector": 25,
            "state_bytes": 0,
            "recall10_exact": 0.98,
            "latency_ms": 4.0,
            "n_docs": 10,
            "compression": 4,
        },
        {
            "codec": "bad",
            "oversample": 0,
            "rescore": "none",
            "memory_bytes": 300,
            "bytes_per_vector": 30,
            "state_bytes": 0,
            "recall10_exact": 0.9,
            "latency_ms": 5.0,
            "n_docs": 10,
            "compression": 3,
        },
        {
            "codec": "bin",
            "oversample": 10,
            "rescore": "float16",
            "memory_bytes": 40,
            "bytes_per_vector": 4,
            "state_bytes": 0,
            "recall10_exact": 0.995,
            "latency_ms": 2.0,
            "n_docs": 10,
            "compression": 25,
        },
    ]
    assert pareto_front(rows) == [0, 3]
    r = recommend(rows, memory=500)
    assert r.row["codec"] == "bin"
    r = recommend(rows, memory=5000, min_quality=0.99)
    assert r.row["codec"] == "fp32"
    r = recommend(rows, min_quality=0.97)
    assert r.row["codec"] == "bin"
    assert recommend(rows, memory=10).row is None
    r = recommend(rows, memory=450, n_docs=100)  # sample of 10 -> 100 docs: memory x10
    assert r.row["codec"] == "bin" and r.extrapolated
    assert parse_bytes("64MB") == 64_000_000 and parse_bytes("1KiB") == 1024
    with pytest.raises(ValueError, match="64MB"):
        parse_bytes("lots")


def test_collection_retriever(tmp_path):
    import heron
    from heron.capabilities.compressed import write_codec_config

    x = data(400, 32)
    coll = heron.Collection.create(tmp_path / "c", model="none", dim=32)
    coll.add([f"doc {i}" for i in range(len(x))], ids=[str(i) for i in range(len(x))], vectors=x)
    q = data(3, 32, seed=9)
    from heron.pipeline import Queries

    queries = Queries(["a", "b", "c"], vectors={"none": q})
    exact = coll.search(queries, 5, retriever="dense")
    got = coll.search(queries, 5, retriever="compressed", codec="bin", oversample=20)
    np.testing.assert_array_equal(got.keys, exact.keys)
    write_codec_config(coll, {"spec": "int8", "oversample": 0, "rescore": "none"})
    assert coll.config["codec"]["spec"] == "int8"
    r = coll.search(queries, 5, retriever="compressed")
    assert r.info["codec"] == "int8" and r.info["oversample"] == 0
    with pytest.raises(ValueError, match="valid codecs"):
        coll.search(queries, 5, retriever="compressed", codec="nope")


def test_vector_queries_reuse_the_compiled_stage_with_the_general_paths_results(tmp_path, monkeypatch):
    """``search(vectors, k, using=...)`` builds the compressed (or dense) stage once per snapshot
    and gives what the general path (``Queries``) gives; a new commit, a new codec configuration
    or new parameters get a stage of their own."""
    import heron
    from heron.capabilities.compressed import write_codec_config
    from heron.pipeline import Queries

    x = data(600, 32)
    coll = heron.Collection.create(tmp_path / "c", model="none", dim=32)
    coll.add([f"doc {i}" for i in range(500)], ids=[str(i) for i in range(500)], vectors=x[:500])
    q = data(3, 32, seed=9)
    general = Queries(["a", "b", "c"], vectors={"none": q})
    cases = [
        ("compressed", {"codec": "bin", "oversample": 0}),
        ("compressed", {"codec": "bin", "oversample": 4}),
        ("compressed", {"codec": "bin-ham", "candidates": 50}),
        ("compressed", {"codec": "fp16", "rescore": "float16", "oversample": 2}),
        ("dense", {}),
    ]

    def both(using, params, k=7):
        ref = coll.search(general, k, using=using, **params)
        for _ in range(2):  # built, then reused
            got = coll.search(q, k, using=using, **params)
            np.testing.assert_array_equal(got.keys, ref.keys)
            np.testing.assert_array_equal(got.scores, ref.scores)
            assert got.info == ref.info
            assert got.hits()[0][0].text == ref.hits()[0][0].text  # documents attached
        return got

    for using, params in cases:
        both(using, params)

    # float32 vectors skip Queries and the stage's transform: the retriever's search_vectors
    from heron.capabilities.compressed import CompressedRetriever

    transforms = []
    plain = CompressedRetriever.transform
    monkeypatch.setattr(
        CompressedRetriever, "transform", lambda self, *a: transforms.append(1) or plain(self, *a)
    )
    coll.search(q, 7, using="compressed", codec="bin", oversample=4)
    assert transforms == []
    coll.search(q.astype(np.float64), 7, using="compressed", codec="bin", oversample=4)
    assert transforms == [1]  # converted: the general stage
    monkeypatch.undo()

    def stages():
        return coll.snapshot().memo(("reused-stages", "compressed"), dict)

    held = stages()  # every artifact is built now: the snapshot stays
    kept = dict(held)
    assert kept and all(s is not None for s in kept.values())
    both("compressed", {"codec": "fp16", "rescore": "float16", "oversample": 2})
    assert stages() is held and held == kept  # the same stage objects, reused
    both("compressed", {"codec": "fp16", "rescore": "float16", "oversample": 3})
    assert len(held) == len(kept) + 1
    coll.create_index("mybin", kind="compressed", spec="bin")
    both("mybin", {"oversample": 3})  # a compressed index by name

    # a commit: a new snapshot, the new documents found
    coll.add([f"doc {i}" for i in range(500, 600)], ids=[str(i) for i in range(500, 600)],
             vectors=x[500:])
    got = both("compressed", {"codec": "bin", "oversample": 0}, k=600)
    assert set(got.doc_ids()[0]) == {str(i) for i in range(600)}
    # the codec configuration is the default spec: a change is seen at once
    write_codec_config(coll, {"spec": "int8", "oversample": 0, "rescore": "none"})
    assert both("compressed", {}).info["codec"] == "int8"
    write_codec_config(coll, {"spec": "bin", "oversample": 0, "rescore": "none"})
    assert both("compressed", {}).info["codec"] == "bin"
    # arrays the hot path does not take as they are (float64, one vector, Fortran order) are
    # converted and give the same results
    for qq in (q.astype(np.float64), q[:1].ravel(), np.asfortranarray(q)):
        qs = Queries(["a", "b", "c"][: len(np.atleast_2d(qq))],
                     vectors={"none": np.atleast_2d(qq).astype(np.float32)})
        for params in ({"codec": "bin", "oversample": 0}, {"codec": "bin", "oversample": 3}):
            got = coll.search(qq, 5, using="compressed", **params)
            ref = coll.search(qs, 5, using="compressed", **params)
            np.testing.assert_array_equal(got.keys, ref.keys)
            np.testing.assert_array_equal(got.scores, ref.scores)
    # deleted documents are masked on the hot path as on the general one
    coll.delete(["3", "17", "512"])
    for params in ({"codec": "bin", "oversample": 0}, {"codec": "bin", "oversample": 4}):
        got = both("compressed", params, k=600)
        assert not {"3", "17", "512"} & set(got.doc_ids()[0])
    # bad parameters are refused as on the general path; unhashable ones take the general path
    with pytest.raises(ValueError, match="valid codecs"):
        coll.search(q, 5, using="compressed", codec="nope")
    with pytest.raises((TypeError, ValueError)):
        coll.search(q, 5, using="compressed", codec=["bin"])
    # more documents asked for than there are: the general path clamps and pads
    assert coll.search(q, 700, using="dense").keys.shape == (3, 700)


def test_int8_integer_scan_matches_reference():
    """The int16-query / int32-accumulator int8 scan equals integer numpy, top-k identical."""
    pytest.importorskip("numba")
    from heron.codecs import _scan

    x, q = data(3000, 48), data(7, 48, seed=5)
    codec = parse_spec("int8").fit(x)
    codes = codec.encode(x)
    qw, scale = codec.int_query(q)
    assert qw.dtype == np.int16 and (255 * np.abs(qw.astype(np.int64)).sum(1) < 2**31).all()
    exact = qw.astype(np.int64) @ codes.T.astype(np.int64)
    for k in (1, 10, 700):  # 700 forces several buffer compactions per row chunk
        s, r = _scan.i16u8_topk(qw, codes, k)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(r, order)
        np.testing.assert_array_equal(s, np.take_along_axis(exact, order, axis=1))
    # through the codec: scores equal the decoded dot product up to the query's rounding
    s, r = codec.topk(q, codes, 10)
    ref = np.take_along_axis(codec.score(q, codes), r, axis=1)
    np.testing.assert_allclose(s, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="too large"):
        _scan.i16u8_topk(np.full((1, 400), 32767, np.int16), np.zeros((5, 400), np.uint8), 5)


@pytest.mark.parametrize("nq", [2, 6])  # 2: on the calling thread; 6: queries in parallel
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_gather_dot_matches_numpy(dtype, nq, tmp_path):
    """The numba rescoring kernel equals the gathered numpy einsum, reading a memmap."""
    pytest.importorskip("numba")
    from heron.codecs import _scan
    from heron.codecs.search import _gather_dot_numpy

    assert 2 < _scan.SERIAL_QUERIES <= 6
    x, q = data(400, 40), data(nq, 40, seed=4)
    np.save(tmp_path / "m.npy", x.astype(dtype))
    m = np.load(tmp_path / "m.npy", mmap_mode="r")
    rows = np.random.default_rng(0).integers(-1, 400, (nq, 50))
    fast = _scan.gather_dot(q, rows, m)
    ref = _gather_dot_numpy(q, rows, m, 4)
    np.testing.assert_array_equal(np.isneginf(fast), rows < 0)
    np.testing.assert_allclose(fast[rows >= 0], ref[rows >= 0], rtol=1e-5, atol=1e-6)
    s, r = rescore_rows(q, rows, m, 10)
    order = np.argsort(-np.where(rows >= 0, ref, -np.inf), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(r, np.take_along_axis(rows, order, axis=1))
    with pytest.raises(ValueError, match="out of range"):
        _scan.gather_dot(q, np.full((nq, 3), 400), m)
