"""Indexes: add-then-find-itself, deletes/upserts vs an exact oracle, filters, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron.index import IndexMismatchError, load_index, make_index
from heron.index.base import read_manifest

D = 32
CONFIGS = [
    ("flat", {}),
    ("flat", {"codec": "int8"}),
    ("ivf", {"nlist": 8, "nprobe": 8}),
    ("ivf", {"nlist": 8, "nprobe": 8, "codec": "int8"}),
    ("ivf", {"nlist": 8, "nprobe": 8, "codec": "bin", "oversample": 20}),
    ("hnsw", {"M": 8, "ef_construction": 40}),
    ("hnsw", {"M": 8, "ef_construction": 40, "codec": "int8"}),
    ("hnsw", {"M": 8, "ef_construction": 40, "codec": "bin", "oversample": 20}),
]


def data(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("kind", "params"), CONFIGS)
def test_add_then_find_itself(kind: str, params: dict, tmp_path) -> None:
    x = data(400)
    keys = np.arange(400) * 2 + 5
    idx = make_index(kind, **params).build(x[:300], keys[:300])
    idx.add(x[300:], keys[300:])
    s, k, info = idx.search(x, 1)
    assert (k[:, 0] == keys).mean() >= 0.97, info
    # save / open round trip gives the same answers
    idx.save(tmp_path / "ix", generation=3)
    again = load_index(tmp_path / "ix")
    s2, k2, _ = again.search(x[:50], 5)
    s1, k1, _ = idx.search(x[:50], 5)
    assert (k1 == k2).all()
    np.testing.assert_allclose(s1, s2, rtol=1e-5)


@pytest.mark.parametrize(("kind", "params"), CONFIGS)
def test_filter_equals_exact_oracle(kind: str, params: dict) -> None:
    x = data(500, seed=1)
    keys = np.arange(500)
    q = data(20, seed=2)
    idx = make_index(kind, **params).build(x, keys)
    for frac in (0.5, 0.01):
        allowed = keys[:: int(1 / frac)]
        s, k, info = idx.search(q, 5, allowed=allowed)
        assert np.isin(k[k >= 0], allowed).all()
        assert (k >= 0).all(), "k hits must come back whenever k documents match"
        exact = np.argsort(-(q @ x[allowed].T), axis=1)[:, :5]
        truth = allowed[exact]
        recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(k, truth)])
        assert recall >= 0.9, (frac, info, recall)
        if frac == 0.01:
            assert info["strategy"] == "exact-over-matching"
            assert (k == truth).all()


def test_mismatch_detected(tmp_path) -> None:
    x = data(200)
    idx = make_index("hnsw", M=8).build(x, np.arange(200))
    idx.save(tmp_path / "ix", generation=1, model="m")
    with pytest.raises(IndexMismatchError, match="dim"):
        load_index(tmp_path / "ix", dim=64)
    with pytest.raises(IndexMismatchError, match="codec"):
        load_index(tmp_path / "ix", codec="int8")
    with pytest.raises(IndexMismatchError, match="generation"):
        load_index(tmp_path / "ix", max_generation=0)
    np.save(tmp_path / "ix" / "keys.npy", np.arange(150))  # a truncated/swapped file
    with pytest.raises(IndexMismatchError, match="inconsistent"):
        load_index(tmp_path / "ix")
    assert read_manifest(tmp_path / "ix")["count"] == 200


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        make_index("annoy")
    with pytest.raises(ValueError, match="valid"):
        make_index("hnsw", efSearch=10)
    with pytest.raises(ValueError, match="codec"):
        make_index("ivf", codec="rbin2")
    idx = make_index("ivf", nlist=4).build(data(100), np.arange(100))
    with pytest.raises(ValueError, match="unknown search parameter"):
        idx.search(data(1), 3, params={"ef_search": 5})
    with pytest.raises(ValueError, match="already"):
        idx.add(data(1), np.array([3]))


OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "delete", "upsert"]), st.integers(0, 59), st.integers(0, 10_000)
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None)
@given(ops=OPS, kind=st.sampled_from(["flat", "ivf", "hnsw"]))
def test_random_mutations_match_oracle(ops, kind) -> None:
    """Random add/delete/upsert sequences: deleted ids never returned, upserts return the new vector."""
    base = data(60, seed=5)
    params = {"ivf": {"nlist": 4, "nprobe": 4}, "hnsw": {"M": 8}}.get(kind, {})
    idx = make_index(kind, **params).build(base[:30], np.arange(30))
    oracle = {i: base[i] for i in range(30)}
    for op, key, seed in ops:
        if op == "delete":
            idx.remove(np.array([key]))
            oracle.pop(key, None)
        else:
            v = data(1, seed=seed + 100)
            if op == "add" and key in oracle:
                continue
            idx.upsert(v, np.array([key]))
            oracle[key] = v[0]
    assert len(idx) == len(oracle)
    if not oracle:
        return
    okeys = np.array(sorted(oracle))
    ovec = np.stack([oracle[k] for k in okeys])
    s, k, _ = idx.search(ovec, min(5, len(okeys)))
    assert np.isin(k[k >= 0], okeys).all(), "a deleted key came back"
    assert (k[:, 0] == okeys).mean() >= 0.95  # each live vector finds itself (its newest version)


def test_live_mask_cache_follows_mutations() -> None:
    x = data(300)
    idx = make_index("hnsw", M=8, ef_construction=40).build(x, np.arange(300))
    assert idx.live_mask() is None  # nothing tombstoned: no mask, no O(n) work per query
    idx.remove(np.arange(0, 300, 3))
    m1 = idx.live_mask()
    assert m1 is idx.live_mask() and m1.sum() == 200
    assert idx.selector_for(m1) is idx.selector_for(m1)  # cached faiss selector
    _, k, _ = idx.search(x, 5)
    assert not np.isin(k, np.arange(0, 300, 3)).any()
    idx.upsert(x[:3], np.array([0, 1, 2]))  # a mutation invalidates the cache
    assert idx.live_mask() is not m1
    _, k, _ = idx.search(x[:3], 1)
    assert list(k[:, 0]) == [0, 1, 2]


def test_single_query_runs_faiss_on_one_thread() -> None:
    faiss = pytest.importorskip("faiss")
    from heron.index._faiss import threads_for

    before = faiss.omp_get_max_threads()
    with threads_for(1):
        assert faiss.omp_get_max_threads() == 1
    with threads_for(1000):
        assert faiss.omp_get_max_threads() == before
    assert faiss.omp_get_max_threads() == before


def test_drift_report_advises_retrain_after_shifted_growth() -> None:
    from heron.index.drift import drift_report, recall_probe

    rng = np.random.default_rng(0)
    # two far-apart groups of clusters: train on the first, grow into the second
    centres = rng.standard_normal((40, D)).astype(np.float32) * 3
    lab = np.repeat(np.arange(40), 100)
    x = centres[lab] + rng.standard_normal((4000, D)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    order = np.argsort(x[:, 0])  # sorted along one direction: a topic-shifted stream
    keys = np.arange(4000)
    idx = make_index("ivf", nlist=32, nprobe=2, codec="int8").build(x[order[:400]], keys[:400])
    assert drift_report(idx, target=0.5)["growth"] == 1.0
    idx.add(x[order[400:]], keys[400:])
    rep = drift_report(idx, target=0.99)
    assert rep["growth"] == 10.0 and rep["trained_on"] == 400
    assert 0 <= rep["recall"] <= 1
    if rep["recall"] < 0.99:
        assert rep["retrain"] and "compact_index" in rep["advice"]
    # a rebuilt index on everything probes at least as well with the same knob
    full = make_index("ivf", nlist=32, nprobe=2, codec="int8").build(x[order], keys)
    assert recall_probe(full) >= recall_probe(idx) - 0.05
    with pytest.raises(ValueError, match="target"):
        drift_report(idx, target=2)


def test_hnsw_defaults_are_the_documented_ones() -> None:
    from pathlib import Path

    from heron.index.hnsw import DEFAULT_EF_CONSTRUCTION, DEFAULT_EF_SEARCH, DEFAULT_M

    idx = make_index("hnsw")
    assert (idx.M, idx.ef_construction, idx.ef_search) == (32, 40, 64)
    assert (DEFAULT_M, DEFAULT_EF_CONSTRUCTION, DEFAULT_EF_SEARCH) == (32, 40, 64)
    doc = (Path(__file__).parents[2] / "docs" / "ann.md").read_text()
    assert "## Defaults" in doc
    assert f"M={DEFAULT_M}, efConstruction={DEFAULT_EF_CONSTRUCTION}, ef_search={DEFAULT_EF_SEARCH}" in doc


def test_only_a_whole_read_only_float32_segment_map_is_linked(tmp_path):
    from heron.index.persist import _whole_npy_file

    x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    seg = tmp_path / "segments" / "00000001"  # a segment's files: never rewritten in place
    seg.mkdir(parents=True)
    (seg / "segment.json").write_text("{}")
    np.save(seg / "a.npy", x)
    np.save(seg / "b.npy", x.astype(np.float64))
    np.save(tmp_path / "mine.npy", x)
    a = np.load(seg / "a.npy", mmap_mode="r")
    assert _whole_npy_file(a) == seg / "a.npy"
    assert _whole_npy_file(np.ascontiguousarray(a)) == seg / "a.npy"  # a view of the map
    assert _whole_npy_file(a[:49]) is None  # part of the rows
    assert _whole_npy_file(a[1:]) is None
    assert _whole_npy_file(np.load(seg / "b.npy", mmap_mode="r")) is None  # float64
    assert _whole_npy_file(np.load(seg / "a.npy", mmap_mode="r+")) is None  # writable
    assert _whole_npy_file(np.load(tmp_path / "mine.npy", mmap_mode="r")) is None  # a user's file
    assert _whole_npy_file(x) is None  # in memory


def _segment_file(tmp_path, x: np.ndarray):
    """``x`` saved as a collection segment's ``dense.npy`` (a file never rewritten in place)."""
    seg = tmp_path / "segments" / "00000001"
    seg.mkdir(parents=True)
    (seg / "segment.json").write_text("{}")
    np.save(seg / "dense.npy", x)
    return seg / "dense.npy"


@pytest.mark.parametrize("mmap", [True, False])
def test_float_graph_over_a_segment_is_saved_without_its_rows(tmp_path, mmap: bool) -> None:
    """A float32 graph built over a whole segment file links it as ``vectors.npy`` and writes
    the graph without its rows; opened again, faiss reads those rows in place (not a copy it
    owns), answers exactly as before, and can still grow (faiss aborts on growing a viewed
    vector, so the rows are copied back first)."""
    import json
    import os

    import faiss

    x, extra = data(600), data(40, seed=1)
    path = _segment_file(tmp_path, x)
    keys = np.arange(600) + 7
    idx = make_index("hnsw", M=8, ef_construction=40).build(np.load(path, mmap_mode="r"), keys)
    s0, k0, _ = idx.search(x[:20], 5)
    idx.save(tmp_path / "a")
    assert os.path.samefile(path, tmp_path / "a" / "vectors.npy")
    manifest = json.loads((tmp_path / "a" / "index.json").read_text())
    assert manifest["storage"] == "vectors.npy" and manifest["version"] == 2
    whole = len(faiss.serialize_index(idx._index))
    assert whole - (tmp_path / "a" / "faiss.index").stat().st_size >= x.nbytes

    ld = load_index(tmp_path / "a", mmap=mmap)
    storage = faiss.downcast_index(ld._index.storage)
    assert not storage.codes.is_owned  # faiss reads heron's buffer in place
    s1, k1, _ = ld.search(x[:20], 5)
    np.testing.assert_array_equal(k1, k0)
    np.testing.assert_array_equal(s1, s0)
    np.testing.assert_array_equal(ld.vectors_of(np.arange(600)), x)
    # saved again where it lives: the link stays the segment's file, nothing is rewritten
    ld.save(tmp_path / "a")
    assert os.path.samefile(path, tmp_path / "a" / "vectors.npy")
    # saved elsewhere: linked again
    ld.save(tmp_path / "b")
    assert os.path.samefile(path, tmp_path / "b" / "vectors.npy")

    ld.add(extra, np.arange(40) + 10_000)
    assert storage.codes.is_owned
    s2, k2, _ = ld.search(np.concatenate([x[:20], extra]), 1)
    np.testing.assert_array_equal(k2[:20, 0], keys[:20])
    np.testing.assert_array_equal(k2[20:, 0], np.arange(40) + 10_000)
    np.testing.assert_array_equal(load_index(tmp_path / "a").search(x[:20], 5)[1], k0)  # unchanged
    # grown, the graph keeps its rows itself (the segment no longer holds them all)
    ld.save(tmp_path / "c")
    assert not (tmp_path / "c" / "vectors.npy").exists()
    assert json.loads((tmp_path / "c" / "index.json").read_text())["vectors"] == "structure"
    np.testing.assert_array_equal(load_index(tmp_path / "c").search(extra, 1)[1][:, 0],
                                  np.arange(40) + 10_000)
    np.testing.assert_array_equal(np.load(path), x)  # the segment's bytes never changed


def test_graph_without_rows_refuses_a_wrong_vectors_file(tmp_path) -> None:
    x = data(300)
    path = _segment_file(tmp_path, x)
    make_index("hnsw", M=8).build(np.load(path, mmap_mode="r"), np.arange(300)).save(tmp_path / "a")
    (tmp_path / "a" / "vectors.npy").unlink()
    np.save(tmp_path / "a" / "vectors.npy", x[:, :16].copy())
    with pytest.raises(IndexMismatchError, match="rebuild"):
        load_index(tmp_path / "a")


@pytest.mark.parametrize("codec", ["int8", "fp32"])
def test_graph_codes_open_in_memory_faiss_does_not_own(tmp_path, codec: str) -> None:
    """An HNSW graph's codes are moved into huge-page memory when it opens (the walk reads them
    at random), with the same answers, and the graph still grows."""
    import faiss

    x = data(500)
    idx = make_index("hnsw", M=8, codec=codec).build(x, np.arange(500))  # in memory: no link
    s0, k0, _ = idx.search(x[:20], 5)
    idx.save(tmp_path / "a")
    assert not (tmp_path / "a" / "vectors.npy").exists() or codec != "fp32"
    ld = load_index(tmp_path / "a")
    assert not faiss.downcast_index(ld._index.storage).codes.is_owned
    s1, k1, _ = ld.search(x[:20], 5)
    np.testing.assert_array_equal(k1, k0)
    np.testing.assert_array_equal(s1, s0)
    ld.add(data(10, seed=3), np.arange(10) + 1000)
    assert ld.search(data(10, seed=3), 1)[1][:, 0].tolist() == list(range(1000, 1010))


def test_viewed_codes_go_back_to_faiss_with_room_to_grow() -> None:
    """``own_codes`` copies viewed codes into memory faiss owns, with capacity for the next add:
    the add that follows does not move (copy) the whole vector again."""
    import faiss

    from heron.index import _faiss as F

    x, more = data(100), data(10, seed=2)
    flat = faiss.IndexFlatIP(D)
    buf = x.copy()
    flat.ntotal = len(buf)
    F.view_codes(flat, buf.reshape(-1).view(np.uint8))
    assert not flat.codes.is_owned
    np.testing.assert_array_equal(flat.search(x[:3], 1)[1][:, 0], [0, 1, 2])
    F.own_codes(flat, reserve=more.nbytes)
    assert flat.codes.is_owned
    buf[:] = 0  # faiss no longer reads heron's buffer
    before = int(flat.codes.data())
    flat.add(more)
    assert int(flat.codes.data()) == before
    np.testing.assert_array_equal(F.codes_array(flat).view(np.float32).reshape(-1, D),
                                  np.concatenate([x, more]))
