"""The artifact lifecycle and snapshot guarantees: resident indexes, leases, filters everywhere."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np
import pytest

import heron
from heron.pipeline import Queries

D = 16


def vecs(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def q(v: np.ndarray) -> Queries:
    return Queries([f"q{i}" for i in range(len(v))], vectors={"none": v})


@pytest.fixture
def coll(tmp_path):
    c = heron.Collection.create(tmp_path / "c", model="none", dim=D)
    x = vecs(300, 0)
    c.add([f"doc {i} about {'cats' if i % 2 else 'dogs'}" for i in range(300)],
          ids=[f"d{i}" for i in range(300)], vectors=x,
          metadata=[{"year": 2000 + i % 30, "even": i % 2 == 0} for i in range(300)])
    return c, x


@pytest.mark.parametrize(
    "kind,params,search",
    [("hnsw", {"M": 8}, {}), ("ivf", {"nlist": 4}, {"nprobe": 4}), ("compressed", {"spec": "int8"}, {})],
)
def test_create_index_resident_and_never_reread(coll, kind, params, search, monkeypatch) -> None:
    c, x = coll
    rec = c.create_index(kind=kind, **params)
    assert rec["built"] and [i["name"] for i in c.indexes()] == [rec["name"]]
    res = c.search(q(x[:5]), 1, using=rec["name"], **search)
    assert [r[0] for r in res.doc_ids()] == [f"d{i}" for i in range(5)]
    # a query never re-reads index files: make every open fail and search again
    from heron.capabilities.base import artifact_kind

    def boom(*a, **k):
        raise AssertionError("an index file was read again")

    monkeypatch.setattr(type(artifact_kind(kind)), "open", boom)
    monkeypatch.setattr(np, "load", boom)
    for _ in range(3):
        res = c.search(q(x[5:8]), 1, using=rec["name"], **search)
    assert [r[0] for r in res.doc_ids()] == ["d5", "d6", "d7"]


def test_retriever_made_before_a_write_sees_it(coll) -> None:
    c, x = coll
    stages = {name: c.retriever(name) for name in ("dense", "hnsw", "compressed", "bm25")}
    for st in stages.values():
        st.search(q(x[:1]) if st.name != "bm25" else ["cats"], 3)
    new = vecs(1, 99)
    c.add(["zebra stripes unique"], ids=["zz"], vectors=new)
    c.delete(["d0"])
    for name, st in stages.items():
        res = st.search(q(new) if name != "bm25" else ["zebra"], 3)
        assert res.doc_ids()[0][0] == "zz", name
        res = st.search(q(x[:1]) if name != "bm25" else ["doc 0"], 10)
        assert "d0" not in res.doc_ids()[0], name


@pytest.mark.parametrize("using", ["dense", "hnsw", "compressed", "bm25", "hybrid:dense+bm25"])
def test_filter_works_with_every_retriever(coll, using) -> None:
    c, x = coll
    flt = {"year": {"$gte": 2025}, "even": True}
    qs = q(x[:4]) if using != "bm25" else ["cats dogs doc"] * 4
    res = c.search(qs, 5, using=using, filter=flt)
    meta = c.snapshot().metadata(res.keys[res.keys >= 0])
    assert meta and all(m["year"] >= 2025 and m["even"] for m in meta)
    assert (res.keys >= 0).sum(axis=1).min() == 5
    if using == "dense":  # exact: the best matching documents, in order
        ok = np.array([m["year"] >= 2025 and m["even"] for m in
                       c.snapshot().metadata(c.snapshot().keys)])
        rows = np.flatnonzero(ok)
        truth = c.snapshot().keys[rows[np.argsort(-(x[:4] @ x[rows].T), axis=1)[:, :5]]]
        np.testing.assert_array_equal(res.keys, truth)


def test_bm25_stale_rebuilt_once_and_old_version_collected(coll) -> None:
    c, _ = coll
    c.search(["cats"], 3, using="bm25")
    v1 = c.snapshot().artifacts["bm25"].version
    c.add(["dogs dogs dogs"], ids=["new"], vectors=vecs(1, 5))
    res = c.search(["dogs dogs"], 1, using="bm25")
    rec = c.snapshot().artifacts["bm25"]
    assert rec.version != v1 and res.doc_ids() == [["new"]]
    del res
    c.collect_garbage()
    assert not (c.path / "indexes" / "bm25" / v1).exists()


def test_drop_index(coll) -> None:
    c, x = coll
    c.create_index("fast", kind="hnsw", M=8)
    folder = c.snapshot().artifacts["fast"].folder(c.path)
    assert c.drop_index("fast") and not c.drop_index("fast")
    c.collect_garbage()
    assert not folder.exists() and c.indexes() == []
    with pytest.raises(ValueError, match="unknown retriever 'fast'"):
        c.search(q(x[:1]), 1, using="fast")


def test_old_snapshot_survives_compaction_in_process(coll) -> None:
    c, x = coll
    c.delete([f"d{i}" for i in range(10)])
    c.add(["late"], ids=["late"], vectors=vecs(1, 3))
    old = c.snapshot()
    c.compact()
    # the old snapshot still reads its segments and resolves every id, deleted ones included
    assert np.asarray(old.dense()).shape == (len(old), D)
    assert "" not in old.ids(old.keys)
    c.delete(["d20"])
    c.compact()
    assert "" not in old.ids(old.keys)
    seg_dirs = sorted(p.name for p in (c.path / "segments").iterdir())
    del old
    c.collect_garbage()
    assert len(sorted(p.name for p in (c.path / "segments").iterdir())) < len(seg_dirs)


def _reader(path: str, seconds: float, out: mp.Queue) -> None:  # pragma: no cover - subprocess
    c = heron.Collection.open(path)
    rng = np.random.default_rng(os.getpid())
    n = fails = bad = 0
    end = time.time() + seconds
    while time.time() < end and n < 5000:
        v = rng.standard_normal((1, D)).astype(np.float32)
        using = ["dense", "hnsw", "compressed"][n % 3]
        try:
            res = c.search(q(v), 5, using=using)
            ids = res.doc_ids()[0]
            snap = res.resolver.__self__  # the snapshot the search read
            keys = res.keys[0][res.keys[0] >= 0]
            if "" in ids or len(keys) < 5 or not np.isin(keys, snap.keys).all():
                bad += 1
                out.put(f"bad hits from {using}: ids={ids} live={np.isin(keys, snap.keys)} {res.info}")
        except Exception as exc:  # noqa: BLE001 - counted and reported
            fails += 1
            out.put(repr(exc))
        n += 1
    out.put((n, fails, bad))


def test_readers_in_other_processes_while_writer_compacts(coll) -> None:
    c, x = coll
    c.create_index("hnsw", kind="hnsw", M=8)
    c.create_index(kind="compressed", spec="bin")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_reader, args=(str(c.path), 8.0, out)) for _ in range(2)]
    for p in procs:
        p.start()
    rng = np.random.default_rng(1)
    end, i = time.time() + 8.0, 0
    while time.time() < end and i < 200:
        c.add([f"w{i}"], ids=[f"w{i}"], vectors=vecs(1, 1000 + i))
        c.delete([f"d{rng.integers(300)}"])
        if i % 5 == 0:
            c.compact()
        if i % 7 == 0:
            c.create_index("hnsw", kind="hnsw", M=8)
        i += 1
    results, errors = [], []
    for _ in procs:
        while True:
            item = out.get(timeout=120)
            if isinstance(item, tuple):
                results.append(item)
                break
            errors.append(item)
    for p in procs:
        p.join(timeout=60)
    assert not errors, errors[:3]
    assert all(n > 10 and fails == 0 and bad == 0 for n, fails, bad in results), results


def test_many_small_writes_are_merged_into_few_segments(tmp_path) -> None:
    from heron.collection.collection import MAX_SEGMENTS

    c = heron.Collection.create(tmp_path / "m", model="none", dim=D)
    x = vecs(60, 4)
    for i in range(40):
        c.add([f"t{i}"], ids=[f"t{i}"], vectors=x[i : i + 1])
        assert len(c.snapshot().segments) <= MAX_SEGMENTS
    c.delete(["t3"])
    for i in range(40, 60):
        c.add([f"t{i}"], ids=[f"t{i}"], vectors=x[i : i + 1])
    snap = c.snapshot()
    assert len(snap) == 59 and len(snap.segments) <= MAX_SEGMENTS
    res = c.search(x, 1, using="dense")
    assert [r[0] for r in res.doc_ids()] == [f"t{i}" if i != 3 else res.doc_ids()[3][0] for i in range(60)]
    assert res.doc_ids()[3][0] != "t3"


@pytest.mark.parametrize("using,params", [("compressed", {"codec": "bin"}), ("hnsw", {"M": 8})])
def test_candidates_is_the_first_stage_size_everywhere(coll, using, params) -> None:
    c, x = coll
    a = c.search(q(x[:6]), 5, using=using, candidates=50, **params)
    b = c.search(q(x[:6]), 5, using=using, oversample=10, **params)
    np.testing.assert_array_equal(a.keys, b.keys)
    with pytest.raises(ValueError, match="not both"):
        c.search(q(x[:1]), 5, using=using, candidates=50, oversample=10, **params)


def test_ann_snapshots_see_their_own_tombstones(coll) -> None:
    c, x = coll
    c.create_index("hnsw", kind="hnsw", M=8)
    old = c.search(x[:1], 1, using="hnsw")
    assert old.doc_ids() == [["d0"]]
    c.delete(["d0"])
    new = c.search(x[:1], 1, using="hnsw")
    assert new.doc_ids()[0] != ["d0"] and new.info["tombstones"] == 1
    # the deletion lives on this snapshot's view; the resident index other snapshots share is intact
    idx = c.artifact("hnsw", build="never")[1]
    assert idx.n_dead == 0, "the shared resident index was mutated"


def _add_one(path: str, i: int) -> None:
    c = heron.Collection.open(path)
    c.add([f"from another process {i}"], ids=[f"p{i}"], vectors=vecs(1, 100 + i))
    c.close()


def test_commit_by_another_process_is_seen_by_the_next_search(coll) -> None:
    """A reader's snapshot check reads SQLite's WAL-index header (no query while nothing was
    committed); every commit of another process changes it, so the next search sees the write."""
    c, _ = coll
    assert c.store.change_token() is not None  # WAL mode: the cheap check is in use
    ctx = mp.get_context("spawn")
    for i in range(3):
        before = c.snapshot()
        assert c.snapshot() is before  # nothing committed: the same snapshot, no query
        p = ctx.Process(target=_add_one, args=(str(c.path), i))
        p.start()
        p.join(60)
        assert p.exitcode == 0
        after = c.snapshot()
        assert after is not before and len(after) == len(before) + 1
        assert c.get([f"p{i}"])[0] is not None
        res = c.search(vecs(1, 100 + i), 1, using="dense")
        assert res.doc_ids()[0][0] == f"p{i}"


def test_commit_never_published_is_seen_after_the_trust_window(coll) -> None:
    """A writer killed between its COMMIT and publishing the epoch leaves readers behind for at
    most ``MAX_TRUST_S``: after it, the snapshot check asks SQLite again."""
    import sqlite3

    from heron.collection.store import DB, MAX_TRUST_S

    c, _ = coll
    before = c.snapshot()
    con = sqlite3.connect(c.path / DB, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    con.execute("UPDATE state SET value = value + 1 WHERE name='epoch'")
    con.execute("COMMIT")  # ... and the writer dies here, before Store.published
    con.close()
    time.sleep(MAX_TRUST_S * 1.5)
    assert c.snapshot().epoch == before.epoch + 1


@pytest.mark.parametrize("id_files", [True, False])
def test_resident_id_tables_give_the_ids_sqlite_gives(coll, monkeypatch, tmp_path, id_files) -> None:
    """Each segment keeps its ids in memory, read from its id files (``id_files``) or, for a
    segment written without them, from SQLite after a few lookups; hit ids stay exactly what the
    ``docs`` table says through deletes, upserts (new keys), new segments and compaction, and
    an older snapshot still resolves its own keys."""
    from heron.collection import segments

    c, x = coll
    monkeypatch.setattr(segments, "ID_TABLE_AFTER", 2)
    if not id_files:  # segments as written before they carried their ids
        append = segments.SegmentWriter.append
        monkeypatch.setattr(segments.SegmentWriter, "append",
                            lambda self, k, f, ids=None: append(self, k, f, None))
        c = heron.Collection.create(tmp_path / "legacy", model="none", dim=D)
        c.add([f"doc {i}" for i in range(300)], ids=[f"d{i}" for i in range(300)], vectors=x)
        assert not list((c.path / "segments").glob("*/ids.*"))

    def truth(snap, keys):
        return [v if v is not None else "" for v in snap._select("id", keys)]

    def check():
        snap = c.snapshot()
        for _ in range(3):  # the tables get built on the way
            r = c.search(x[:5], 7)
            for row in r.keys:
                assert snap.ids(row) == truth(snap, row)
        assert all("id_table" in sv.segment._cache for sv in snap.segments)
        # every live key, and a key that was never stored
        keys = np.concatenate([snap.keys, [10**12]])
        assert snap.ids(keys) == truth(snap, keys)
        few = np.concatenate([[-1, 10**12], snap.keys[-5:]])  # a hit list's path, keys no table has
        assert snap.ids(few) == truth(snap, few)
        return snap

    old = check()
    old_keys = old.keys.copy()
    # a bulk-loaded segment's keys are one run: rows found by subtraction, not binary search
    assert all(sv.segment._cache["id_table"].base is not None for sv in old.segments)
    c.delete([f"d{i}" for i in range(0, 40)])
    c.upsert(["new text"] * 3, ids=["d50", "d51", "zz"], vectors=vecs(3, 9))
    c.add(["more"] * 2, ids=["ñ-ü", "日本"], vectors=vecs(2, 10))
    new = check()
    assert set(new.ids(new.keys)) >= {"zz", "ñ-ü", "日本", "d50"}
    c.compact()
    gappy = check()  # deleted and upserted keys leave gaps: the binary search path
    assert any(sv.segment._cache["id_table"].base is None for sv in gappy.segments)
    assert old.ids(old_keys) == [f"d{i}" for i in range(300)]  # ids of a key never change
    hits = c.search(vecs(1, 10), 1).doc_ids()[0]
    assert hits == ["ñ-ü"]


def test_a_new_process_reads_hit_ids_from_the_segments(coll, monkeypatch) -> None:
    """Segments carry their ids (``ids.*.npy``): a freshly opened collection resolves hit ids
    on its first search without reading SQLite, also after a merge of small segments (whose
    keys are not in order) and a compaction with deletes."""
    from heron.collection import collection as collection_mod
    from heron.collection.snapshot import Snapshot

    c, x = coll
    monkeypatch.setattr(collection_mod, "MAX_SEGMENTS", 3)
    monkeypatch.setattr(collection_mod, "MERGE_TO", 2)
    for i in range(4):  # segments of 3, 1, 2, 4 rows: merged smallest first
        n = [3, 1, 2, 4][i]
        c.add(["t"] * n, ids=[f"s{i}-{j}" for j in range(n)], vectors=vecs(n, 20 + i))
    c.delete(["d7", "s0-1"])
    want = {sv.segment.id: sv.segment.ids_table(c.store.connect) for sv in c.snapshot().segments}
    assert want and all(t.keys.size for t in want.values())

    def no_sqlite(self, column, keys):
        raise AssertionError(f"SQLite read for {column!r}")

    for step in ("as written", "compacted"):
        fresh = heron.Collection.open(c.path)
        truth = dict(zip(fresh.snapshot().keys.tolist(), c.snapshot().ids(fresh.snapshot().keys)))
        with monkeypatch.context() as m:
            m.setattr(Snapshot, "_select", no_sqlite)
            r = fresh.search(np.concatenate([x[:3], vecs(2, 21)]), 5)
            assert r.doc_ids() == [[truth[k] for k in row] for row in r.keys.tolist()]
        assert {"d0", "d1", "d2", "s1-0"} <= {i for row in r.doc_ids() for i in row}, step
        fresh.close()
        c.compact()
