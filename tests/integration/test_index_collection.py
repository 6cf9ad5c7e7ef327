"""ANN retrievers inside a collection: filters via SQLite, live updates, compaction, mismatch."""

from __future__ import annotations

import numpy as np
import pytest

import heron
from heron.capabilities.ann import compact_index, current_folder, update_index
from heron.index.filters import compile_filter, matching_keys
from heron.pipeline import Queries

D = 16


def vecs(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def coll(tmp_path):
    c = heron.Collection.create(tmp_path / "c", model="none", dim=D)
    x = vecs(300, 0)
    meta = [
        {"year": 2000 + i % 20, "lang": ["en", "de", "fr"][i % 3], "ok": i % 2 == 0}
        for i in range(300)
    ]
    c.add(
        [f"doc {i}" for i in range(300)],
        ids=[f"d{i}" for i in range(300)],
        metadata=meta,
        vectors=x,
    )
    yield c, x, meta
    c.close()


def q(v: np.ndarray) -> Queries:
    return Queries([f"q{i}" for i in range(len(v))], vectors={"none": v})


def cmp(op: str, v, w) -> bool:
    if op == "$eq":
        return v == w
    if op == "$ne":
        return v != w
    if op == "$in":
        return v in w
    if op == "$nin":
        return v not in w
    if v is None:
        return False
    return {"$gt": v > w, "$gte": v >= w, "$lt": v < w, "$lte": v <= w}[op]


def oracle(meta, flt) -> set[int]:
    def ok(m, f):
        out = True
        for key, val in f.items():
            if key == "$and":
                out &= all(ok(m, g) for g in val)
            elif key == "$or":
                out &= any(ok(m, g) for g in val)
            elif key == "$not":
                out &= not ok(m, val)
            else:
                conds = val if isinstance(val, dict) else {"$eq": val}
                v = m.get(key)
                for op, w in conds.items():
                    out &= cmp(op, v, w)
        return out

    return {i for i, m in enumerate(meta) if ok(m, flt)}


FILTERS = [
    {"year": 2005},
    {"year": {"$gte": 2010, "$lt": 2013}},
    {"lang": {"$in": ["de", "fr"]}},
    {"$or": [{"lang": "en"}, {"year": {"$lte": 2002}}]},
    {"$not": {"ok": True}, "year": {"$ne": 2001}},
    {"lang": {"$nin": ["en"]}, "ok": False},
]


@pytest.mark.parametrize("flt", FILTERS)
def test_filter_sql_equals_oracle(coll, flt) -> None:
    c, x, meta = coll
    got = set(matching_keys(c, flt).tolist())
    keys = c.snapshot().keys
    assert got == {int(keys[i]) for i in oracle(meta, flt)}


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_filtered_search_equals_exact(coll, kind) -> None:
    c, x, meta = coll
    qs = vecs(10, 9)
    params = {"ivf": {"nlist": 4, "nprobe": 4}, "hnsw": {"M": 8}}.get(kind, {})
    for flt in FILTERS[:3]:
        res = c.search(q(qs), 5, retriever=kind, filter=flt, **params)
        rows = np.array(sorted(oracle(meta, flt)))
        truth = c.snapshot().keys[rows[np.argsort(-(qs @ x[rows].T), axis=1)[:, :5]]]
        assert (res.keys == truth).mean() >= 0.95, res.info
        assert "strategy" in res.info


def test_bad_filter_and_params(coll) -> None:
    c, _, _ = coll
    with pytest.raises(ValueError, match="operator"):
        compile_filter({"year": {"$regex": 3}})
    with pytest.raises(ValueError, match="valid"):
        c.retriever("hnsw", efSearch=3)
    with pytest.raises(ValueError, match="choose one of"):
        c.search(q(vecs(1, 1)), 3, retriever="nosuchindex")


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_live_updates_update_compact(coll, kind) -> None:
    c, x, _ = coll
    params = {"ivf": {"nlist": 4, "nprobe": 4}, "hnsw": {"M": 8}}[kind]
    r = c.retriever(kind, **params)
    r.search(q(x[:3]), 3)  # builds the index
    c.delete([f"d{i}" for i in range(0, 30)])
    new = vecs(20, 7)
    c.upsert([f"new {i}" for i in range(20)], ids=[f"d{i}" for i in range(30, 50)], vectors=new)
    c.add(["extra"], ids=["zz"], vectors=vecs(1, 8))
    live = c.snapshot()
    for stage in (c.retriever(kind, **params), r):
        res = stage.search(q(np.concatenate([x[:30], new])), 3)
        assert np.isin(res.keys[res.keys >= 0], live.keys).all(), "deleted key returned"
        ids = res.doc_ids()
        assert [row[0] for row in ids[30:]] == [f"d{i}" for i in range(30, 50)], "upsert not found"
    out = update_index(c, kind)
    assert out["added"] == 21 and out["tombstoned"] == 50
    res = c.search(q(new), 1, retriever=kind, **params)
    assert res.info["delta"] == 0 and [r[0] for r in res.doc_ids()] == [
        f"d{i}" for i in range(30, 50)
    ]
    old = current_folder(c, kind)
    stats = compact_index(c, kind)
    assert stats["after"]["count"] == len(c) and current_folder(c, kind) != old
    assert old.exists(), "a version that live snapshots may read must not be deleted yet"
    del res, live, stage, r
    c.collect_garbage()
    assert not old.exists(), "a retired version no reader holds is collected"


def test_crash_during_compaction_keeps_previous(coll, monkeypatch) -> None:
    c, x, _ = coll
    c.search(q(x[:2]), 2, retriever="hnsw", M=8)
    before = current_folder(c, "hnsw")
    import heron.index.base as base

    def boom(*a, **k):
        raise RuntimeError("simulated crash while writing")

    monkeypatch.setattr(base.AnnIndex, "_save_structure", boom, raising=False)
    monkeypatch.setattr("heron.index.hnsw.HNSWIndex._save_structure", boom)
    with pytest.raises(RuntimeError):
        compact_index(c, "hnsw")
    monkeypatch.undo()
    assert current_folder(c, "hnsw") == before
    res = c.search(q(x[:5]), 1, retriever="hnsw", M=8, build="never")
    assert [r[0] for r in res.doc_ids()] == [f"d{i}" for i in range(5)]


def test_mismatching_index_refused_or_rebuilt(coll) -> None:
    c, x, _ = coll
    c.search(q(x[:2]), 2, retriever="hnsw", M=8)
    with pytest.raises(ValueError, match="M=8"):
        c.search(q(x[:2]), 2, retriever="hnsw", M=16, build="never")
    res = c.search(q(x[:2]), 1, retriever="hnsw", M=16)  # rebuilt
    assert res.doc_ids() == [["d0"], ["d1"]]


def test_tune_prints_curve_and_drift_advice(coll, tmp_path, capsys) -> None:
    import json

    from heron.cli.main import main

    c, x, _ = coll
    out = tmp_path / "tune.json"
    rc = main(
        [
            "tune",
            str(c.path),
            "--index",
            "ivf",
            "--values",
            "1,4",
            "--queries",
            "20",
            "--out",
            str(out),
        ]
    )
    assert rc in (0, None)
    text = capsys.readouterr().out
    assert "drift:" in text and "recall@10" in text
    rep = json.loads(out.read_text())
    assert [r["nprobe"] for r in rep["curve"]] == [1, 4]
    assert rep["drift"]["trained_on"] == 300 and rep["drift"]["growth"] == 1.0


def test_float_graph_keeps_its_vectors_once(coll, monkeypatch) -> None:
    """A float32 HNSW graph keeps the exact rows once: built over one whole segment, they are the
    segment's file (``vectors.npy`` a hard link, the graph saved without them); after an update
    the graph stores them itself and no ``vectors.npy`` is written. The filtered exact path, the
    rescoring path and an incremental update read those rows."""
    import json
    import os
    import subprocess
    import sys

    from heron.index.hnsw import HNSWIndex

    c, x, _ = coll
    c.create_index("hnsw", kind="hnsw", M=8)
    folder = current_folder(c, "hnsw") / "data"
    (seg,) = (c.path / "segments").glob("*/dense.npy")
    assert os.path.samefile(seg, folder / "vectors.npy")
    manifest = json.loads((folder / "index.json").read_text())
    assert manifest["storage"] == "vectors.npy" and manifest["version"] == 2
    # the graph file holds links and levels only: the same graph written whole is larger by
    # the rows' bytes
    import faiss

    graph = c.artifact("hnsw", build="never")[1]._index
    whole = len(faiss.serialize_index(graph))
    assert whole - (folder / "faiss.index").stat().st_size >= x.nbytes
    c.create_index("hnsw-int8", kind="hnsw", M=8, codec="int8")  # codes: a separate float copy
    assert (current_folder(c, "hnsw-int8") / "data" / "vectors.npy").exists()
    idx = c.artifact("hnsw", build="never")[1]
    idx8 = c.artifact("hnsw-int8", build="never")[1]  # same snapshot, same labels
    assert np.array_equal(idx.keys, idx8.keys)
    all_labels = np.arange(idx.ntotal)
    np.testing.assert_array_equal(idx.vectors_of(all_labels), idx8.vectors_of(all_labels))
    # exact over a selective filter, and exact rescoring, from the graph's rows
    r = c.search(x[:3], 5, using="hnsw", filter={"year": 2003})
    assert r.info["strategy"] == "exact-over-matching"
    want = [
        [f"d{i}" for i in sorted(range(3, 300, 20), key=lambda i: -float(x[i] @ x[j]))[:5]]
        for j in range(3)
    ]
    assert r.doc_ids() == want
    s = c.search(x[:3], 5, using="hnsw", oversample=3)
    assert s.doc_ids()[0][0] == "d0" and np.allclose(s.scores[:, 0], 1.0, atol=1e-5)
    # documents added later are folded into a copy of the graph: rows grow with it
    c.add(["late"], ids=["late"], vectors=vecs(1, 7))
    update_index(c, "hnsw")
    idx2 = c.artifact("hnsw", build="never")[1]
    assert idx2.ntotal == 301 and np.allclose(idx2.vectors_of(np.array([300]))[0], vecs(1, 7)[0])
    updated = current_folder(c, "hnsw") / "data"
    assert not (updated / "vectors.npy").exists()
    assert json.loads((updated / "index.json").read_text())["vectors"] == "structure"
    assert c.search(vecs(1, 7), 1, using="hnsw").doc_ids() == [["late"]]
    # another process opens it and finds the same hits
    code = (
        "import heron, numpy as np, sys; c = heron.Collection.open(sys.argv[1]); "
        "v = np.load(sys.argv[2]); print(c.search(v, 3, using='hnsw', filter={'year': 2003}).doc_ids())"
    )
    np.save(c.path / "q.npy", x[:3])
    out = subprocess.run([sys.executable, "-c", code, str(c.path), str(c.path / "q.npy")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str([w[:3] for w in want])
    # an index saved before (its float copy in vectors.npy) still opens and answers the same
    monkeypatch.setattr(HNSWIndex, "_structure_rows", lambda self: None)
    monkeypatch.setattr(HNSWIndex, "_rows_file", lambda self: None)
    c.create_index("hnsw-old", kind="hnsw", M=8)
    old = current_folder(c, "hnsw-old") / "data"
    assert (old / "vectors.npy").exists()
    monkeypatch.undo()
    c2 = heron.Collection.open(c.path)
    assert c2.search(x[:3], 5, using="hnsw-old", filter={"year": 2003}).doc_ids() == want
    c2.close()


def test_rescoring_copy_links_the_segment_and_never_rewrites_it(coll) -> None:
    """An index built over one whole segment hard-links its ``dense.npy`` as the rescoring copy
    (no second 1.5 GB at 1M); saving that index again replaces the link and leaves the
    segment's bytes alone."""
    import os

    from heron.index import load_index

    c, x, _ = coll
    (seg,) = (c.path / "segments").glob("*/dense.npy")
    c.create_index("ivf8", kind="ivf", nlist=8, codec="int8")
    vec = current_folder(c, "ivf8") / "data" / "vectors.npy"
    assert os.path.samefile(seg, vec)
    files = [p for p in c.path.rglob("*") if p.is_file()]
    assert c.info()["bytes_on_disk"] == sum(p.stat().st_size for p in files) - vec.stat().st_size
    exact = c.search(x[:5], 10, using="dense")
    r = c.search(x[:5], 10, using="ivf8", nprobe=8)  # every list, rescored: the exact top-10
    assert r.doc_ids() == exact.doc_ids()
    before = seg.read_bytes()
    idx = c.artifact("ivf8", build="never")[1]
    idx.add(vecs(5, 9), np.arange(10_000, 10_005))
    idx.save(vec.parent)  # two row blocks now: a file of its own, swapped in by rename
    assert seg.read_bytes() == before and not os.path.samefile(seg, vec)
    again = load_index(vec.parent)
    np.testing.assert_array_equal(again.vectors_of(np.arange(305))[:300], x)
    np.testing.assert_array_equal(again.vectors_of(np.arange(300, 305)), vecs(5, 9))
