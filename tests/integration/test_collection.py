"""Collection storage: round trips, deletes, upserts, crash safety, concurrent readers, errors."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from heron.collection import Collection, CollectionError
from heron.collection.repair import check


def unit(rng, n, d=8):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def coll(tmp_path):
    return Collection.create(tmp_path / "c", model="none", dim=8)


def test_add_reopen_same_results(coll, tmp_path):
    rng = np.random.default_rng(1)
    v = unit(rng, 50)
    coll.add(
        [f"doc {i}" for i in range(50)],
        ids=[f"d{i}" for i in range(50)],
        vectors=v,
        metadata=[{"i": i} for i in range(50)],
    )
    q = unit(rng, 5)
    r1 = coll.retriever("dense").search(_q(q), 10)
    again = Collection.open(tmp_path / "c")
    r2 = again.retriever("dense").search(_q(q), 10)
    np.testing.assert_array_equal(r1.keys, r2.keys)
    np.testing.assert_array_equal(r1.scores, r2.scores)
    # exact: equals a brute-force argsort
    ref = np.argsort(-(q @ v.T), axis=1)[:, :10]
    assert [[f"d{j}" for j in row] for row in ref] == r2.doc_ids()
    assert again.get(["d3"])[0].metadata == {"i": 3}


def _q(vectors):
    from heron.pipeline import Queries

    return Queries([f"q{i}" for i in range(len(vectors))], vectors={"none": vectors})


def test_delete_and_upsert(coll):
    rng = np.random.default_rng(2)
    v = unit(rng, 20)
    coll.add([f"t{i}" for i in range(20)], ids=[str(i) for i in range(20)], vectors=v)
    assert coll.delete(["3", "nope"]) == 1
    res = coll.retriever("dense").search(_q(v[3:4]), 20)
    assert "3" not in res.doc_ids()[0] and len(res.doc_ids()[0]) == 19
    new = -v[5]
    coll.upsert(["t5 new"], ids=["5"], vectors=new[None])
    res = coll.retriever("dense").search(_q(new[None]), 1)
    assert res.doc_ids() == [["5"]]
    assert coll.get("5")[0].text == "t5 new"
    assert len(coll) == 19
    stats = coll.compact()
    assert stats["purged"] == 2 and len(coll) == 19
    res2 = coll.retriever("dense").search(_q(new[None]), 1)
    assert res2.doc_ids() == [["5"]]


def test_compact_streams_rows_and_writes_what_np_save_writes(coll, monkeypatch):
    import heron.collection.segments as segments

    monkeypatch.setattr(segments, "CHUNK_ROWS", 7)  # blocks end inside every segment
    rng = np.random.default_rng(5)
    for b in range(4):
        coll.add([f"t{b}-{i}" for i in range(30)], ids=[f"{b}-{i}" for i in range(30)],
                 vectors=unit(rng, 30))
    # segments 0-2 lose rows (updated row by row); segment 3 stays whole (one range update)
    coll.delete([f"1-{i}" for i in range(0, 30, 4)] + ["2-29", "0-0"])
    snap = coll.snapshot()
    before = {k: v for k, v in zip(snap.ids(snap.keys), np.asarray(snap.dense()))}
    assert coll.compact()["segments_after"] == 1
    snap = coll.snapshot()
    (seg,) = snap.segments
    after = np.asarray(snap.dense())
    assert len(after) == len(before) == 120 - 10
    for i, v in zip(snap.ids(snap.keys), after):
        np.testing.assert_array_equal(v, before[i])
    # every live document points at its row of the new segment
    rows = coll.store.connect().execute(
        "SELECT key, segment, row FROM docs WHERE deleted = 0 ORDER BY key").fetchall()
    assert [(k, s, r) for k, s, r in rows] == [
        (int(k), seg.segment.id, r) for r, k in sorted(enumerate(snap.keys.tolist()), key=lambda t: t[1])
    ]
    path = seg.segment.dir / "dense.npy"
    ref = path.with_name("ref.npy")
    np.save(ref, after)
    assert path.read_bytes() == ref.read_bytes()


def test_compact_gives_the_space_back_at_once(coll):
    rng = np.random.default_rng(7)
    for b in range(3):
        coll.add([f"{b}-{i}" for i in range(50)], ids=[f"{b}-{i}" for i in range(50)],
                 vectors=unit(rng, 50))
    held = coll.search(unit(rng, 1), 3)  # a live result keeps its snapshot's segments
    coll.compact()
    assert len(list((coll.path / "segments").iterdir())) == 4
    assert len(held.doc_ids()[0]) == 3
    del held
    coll.add(["x"], ids=["x"], vectors=unit(rng, 1))
    coll.compact()  # no reader left: the old segments go now, not at the next write
    assert [p.name for p in (coll.path / "segments").iterdir()] == ["00000006"]


def test_supplied_vectors_stay_out_of_the_hash_index(coll):
    from heron.collection.writes import REUSE_SQL

    coll.add(["a", "b"], ids=["a", "b"], vectors=unit(np.random.default_rng(6), 2))
    con = coll.store.connect()
    (sql,) = con.execute("SELECT sql FROM sqlite_master WHERE name = 'docs_hash'").fetchone()
    assert "WHERE hash NOT LIKE 'supplied:%'" in sql  # a partial index: bulk loads skip it
    plan = con.execute("EXPLAIN QUERY PLAN " + REUSE_SQL.format(marks="?, ?"), ["x", "y"]).fetchall()
    assert any("USING INDEX docs_hash" in row[-1] for row in plan), plan  # reuse still reads it


def test_duplicate_ids_rejected_and_nothing_written(coll):
    v = unit(np.random.default_rng(3), 2)
    coll.add(["a", "b"], ids=["x", "y"], vectors=v)
    gen = coll.generation
    with pytest.raises(ValueError, match="already in the collection"):
        coll.add(["c"], ids=["x"], vectors=v[:1])
    with pytest.raises(ValueError, match="appears twice"):
        coll.add(["c", "d"], ids=["z", "z"], vectors=v)
    with pytest.raises(ValueError, match=r"shape \(1, 8\)"):
        coll.add(["c"], ids=["z"], vectors=np.zeros((1, 4)))
    with pytest.raises(ValueError, match="NaN"):
        coll.add(["c"], ids=["z"], vectors=np.full((1, 8), np.nan))
    assert coll.generation == gen and len(coll) == 2


def test_open_errors(tmp_path):
    with pytest.raises(CollectionError, match="does not exist"):
        Collection.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CollectionError, match="heron.json is missing"):
        Collection.open(tmp_path / "empty")
    c = Collection.create(tmp_path / "v", model="none", dim=4)
    m = json.loads((c.path / "heron.json").read_text())
    m["version"] = 99
    (c.path / "heron.json").write_text(json.dumps(m))
    with pytest.raises(CollectionError, match="format version 99"):
        Collection.open(tmp_path / "v")
    (c.path / "heron.json").write_text("{not json")
    with pytest.raises(CollectionError, match="corrupt"):
        Collection.open(tmp_path / "v")
    with pytest.raises(FileExistsError):
        Collection.create(tmp_path / "v", model="none", dim=4)


def test_k_and_query_validation(coll):
    coll.add(["a"], ids=["a"], vectors=unit(np.random.default_rng(0), 1))
    with pytest.raises(ValueError, match="k must be a positive int"):
        coll.search("x", k=0)
    with pytest.raises(ValueError, match="precomputed vectors"):
        coll.search("x", k=1)
    with pytest.raises(ValueError, match="dimension is 8"):
        coll.retriever("dense").search(_q(np.zeros((1, 3), np.float32)), 1)
    with pytest.raises(ValueError, match="unknown retriever"):
        coll.retriever("nope")


def test_text_dedupe_reuses_embeddings(tmp_path, encoder):
    c = Collection.create(tmp_path / "t", encoder=encoder)
    c.add(["alpha beta", "gamma"], ids=["1", "2"])
    assert c.last_encoded == 2
    c.add(["gamma", "delta", "delta"], ids=["3", "4", "5"])
    assert c.last_encoded == 1  # "gamma" reused, "delta" encoded once
    snap = c.snapshot()
    d = snap.dense()
    rows = snap.rows_of(np.array([2, 3, 4, 5]))
    np.testing.assert_array_equal(d[rows[0]], d[rows[1]])
    np.testing.assert_array_equal(d[rows[2]], d[rows[3]])


def test_bm25_respects_deletes(tmp_path, encoder):
    c = Collection.create(tmp_path / "b", encoder=encoder)
    c.add(
        ["the quick brown fox", "a lazy dog sleeps", "fox hunting in winter"], ids=["a", "b", "c"]
    )
    assert set(c.search("fox", k=3, retriever="bm25").doc_ids()[0]) == {"a", "c"}
    c.delete(["c"])
    assert c.search("fox", k=3, retriever="bm25").doc_ids()[0] == ["a"]
    for name in ("dense", "bm25"):
        assert "c" not in c.search("fox hunting in winter", k=3, retriever=name).doc_ids()[0]


WRITER = r"""
import sys, numpy as np
from heron.collection import Collection
c = Collection.open(sys.argv[1])
rng = np.random.default_rng(0)
i = 0
while True:
    v = rng.standard_normal((500, 8)).astype(np.float32)
    c.add([f"t{i}-{j}" for j in range(500)], ids=[f"{i}-{j}" for j in range(500)], vectors=v)
    print(i, flush=True)
    i += 1
"""


def test_sigkill_mid_write_leaves_last_commit(tmp_path):
    path = tmp_path / "k"
    Collection.create(path, model="none", dim=8)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    seen = 0
    deadline = time.time() + 60
    while seen < 3 and time.time() < deadline:
        line = proc.stdout.readline()
        if line:
            seen += 1
    time.sleep(0.013)  # land somewhere inside the next write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    c = Collection.open(path)
    n = len(c)
    assert n % 500 == 0 and n >= 1500
    snap = c.snapshot()
    assert len(snap) == n and snap.dense().shape == (n, 8)
    c.add(
        ["after"], ids=["after"], vectors=np.ones((1, 8), np.float32)
    )  # writable again, orphans cleaned
    assert len(c) == n + 1
    names = {p.name for p in (path / "segments").iterdir()}
    assert not any(x.startswith(".") for x in names)


def test_readers_only_see_committed_states(tmp_path):
    path = tmp_path / "r"
    c = Collection.create(path, model="none", dim=8)
    rng = np.random.default_rng(5)
    errors: list[str] = []
    stop = threading.Event()

    def reader():
        r = Collection.open(path)
        while not stop.is_set():
            try:
                snap = r.snapshot()
                n = len(snap)
                if n % 100 != 0 or snap.dense().shape[0] != n:
                    errors.append(f"partial state: {n}")
                if n:
                    res = r.retriever("dense").search(_q(unit(rng, 1)), 5)
                    if (res.keys[0] < 0).any() and n >= 5:
                        errors.append("missing hits")
            except Exception as exc:  # a reader that dies must fail the test, not go quiet
                errors.append(f"{type(exc).__name__}: {exc}")
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(15):
        c.add([f"x{i}-{j}" for j in range(100)], vectors=unit(rng, 100))
        if i % 5 == 4:
            c.delete([str(k) for k in range(i * 100 + 1, i * 100 + 101)])  # delete a whole batch
            c.add([f"y{i}-{j}" for j in range(100)], vectors=unit(rng, 100))
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_process_reader_sees_commits(tmp_path):
    path = tmp_path / "p"
    c = Collection.create(path, model="none", dim=8)
    c.add(["a"], ids=["a"], vectors=np.ones((1, 8), np.float32))
    code = "import sys; from heron.collection import Collection; print(len(Collection.open(sys.argv[1])))"
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1"


def test_fields_sparse_and_ragged(tmp_path):
    sp = pytest.importorskip("scipy.sparse")
    c = Collection.create(
        tmp_path / "f",
        model="none",
        dim=4,
        fields={"lex": {"kind": "sparse", "vocab": 10}, "tok": {"kind": "ragged", "dim": 4}},
    )
    m = sp.csr_matrix(
        np.array(
            [[0, 1.0, 0, 0, 0, 0, 0, 0, 0, 2.0], [3.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=np.float32
        )
    )
    toks = [np.ones((2, 4), np.float32), np.zeros((3, 4), np.float32)]
    c.add(
        ["a", "b"],
        ids=["a", "b"],
        vectors=np.eye(4, dtype=np.float32)[:2],
        fields={"lex": m, "tok": toks},
    )
    c.add(
        ["c"],
        ids=["c"],
        vectors=np.eye(4, dtype=np.float32)[2:3],
        fields={"lex": m[:1], "tok": toks[:1]},
    )
    c.delete(["a"])
    snap = Collection.open(tmp_path / "f").snapshot()
    lex = snap.field("lex")
    assert lex.shape == (2, 10) and lex[0, 0] == 3.0 and lex[1, 9] == 2.0
    offsets, values = snap.field("tok")
    assert offsets.tolist() == [0, 3, 5] and values.shape == (5, 4)
    c.compact()  # ragged and sparse fields survive compaction
    snap2 = c.snapshot()
    assert snap2.field("tok")[0].tolist() == [0, 3, 5]
    assert (snap2.field("lex") != lex).nnz == 0
    with pytest.raises(ValueError, match="unknown field"):
        c.add(
            ["d"],
            ids=["d"],
            vectors=np.eye(4, dtype=np.float32)[:1],
            fields={"lex": m[:1], "tok": toks[:1], "zzz": 1},
        )


def test_import_has_no_side_effects():
    code = (
        "import os, sys; before = dict(os.environ); mods = set(sys.modules)\n"
        "import heron, heron.collection, heron.pipeline, heron.retrieval\n"
        "assert dict(os.environ) == before\n"
        "heavy = {'torch', 'faiss', 'bm25s', 'sentence_transformers'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_bulk_load_is_one_segment_and_one_commit(coll, tmp_path):
    """``with coll.bulk() as b`` writes every batch into one segment, byte for byte what one
    ``add`` of all the documents writes, and commits once: nothing shows before the block ends,
    in this thread or another process."""
    rng = np.random.default_rng(7)
    v = unit(rng, 90)
    coll.add(["first"], ids=["first"], vectors=unit(rng, 1))
    gen = coll.snapshot().generation
    code = ("import heron, sys; c = heron.Collection.open(sys.argv[1]); "
            "print(len(c), c.snapshot().generation)")
    with coll.bulk() as b:
        for s in range(0, 90, 40):
            keys = b.add([f"doc {i}" for i in range(s, min(90, s + 40))],
                         ids=[f"d{i}" for i in range(s, min(90, s + 40))],
                         vectors=v[s:s + 40], metadata=[{"i": i} for i in range(s, min(90, s + 40))])
            assert len(keys) == min(90, s + 40) - s
        assert len(coll) == 1 and coll.get(["d0"]) == [None]  # not yet, on this thread
        out = subprocess.run([sys.executable, "-c", code, str(coll.path)],
                             capture_output=True, text=True, timeout=120)
        assert out.stdout.split() == ["1", str(gen)], out.stderr  # nor in another process
    assert len(coll) == 91 and coll.snapshot().generation == gen + 1
    assert coll.info()["segments"] == 2
    assert coll.get(["d41"])[0].metadata == {"i": 41}
    r = coll.search(v[:3], 1, using="dense")
    assert r.doc_ids() == [["d0"], ["d1"], ["d2"]]
    assert coll.search(v[50:51], 1, filter={"i": 50}).doc_ids() == [["d50"]]
    # the same documents in one add, in a fresh collection: the same segment files
    other = Collection.create(tmp_path / "o", model="none", dim=8)
    other.add(["first"], ids=["first"], vectors=np.zeros((1, 8), np.float32) + 0.5)
    other.add([f"doc {i}" for i in range(90)], ids=[f"d{i}" for i in range(90)], vectors=v,
              metadata=[{"i": i} for i in range(90)])
    a, o = coll.path / "segments" / "00000002", other.path / "segments" / "00000002"
    for name in ("dense.npy", "keys.npy", "ids.offsets.npy", "ids.bytes.npy", "segment.json"):
        assert (a / name).read_bytes() == (o / name).read_bytes(), name


def test_bulk_load_failures_leave_the_last_commit(coll):
    rng = np.random.default_rng(8)
    coll.add(["first"], ids=["first"], vectors=unit(rng, 1))
    gen = coll.snapshot().generation
    with pytest.raises(RuntimeError, match="stop"):  # an error in the block: nothing committed
        with coll.bulk() as b:
            b.add(["a"], ids=["a"], vectors=unit(rng, 1))
            raise RuntimeError("stop")
    with pytest.raises(ValueError, match="already added in this bulk load"):
        with coll.bulk() as b:
            b.add(["a"], ids=["a"], vectors=unit(rng, 1))
            b.add(["a again"], ids=["a"], vectors=unit(rng, 1))
    with pytest.raises(ValueError, match="already in the collection"):
        with coll.bulk() as b:
            b.add(["f"], ids=["first"], vectors=unit(rng, 1))
    with coll.bulk() as b:  # a batch refused for its input writes nothing; the load goes on
        with pytest.raises(ValueError, match="shape"):
            b.add(["bad"], ids=["bad"], vectors=unit(rng, 1, d=4))
        b.add(["good"], ids=["good"], vectors=unit(rng, 1))
    with coll.bulk():  # nothing added: no commit
        pass
    with coll.bulk() as b:  # a plain write on the same thread would wait for the bulk's lock
        b.add(["x"], ids=["x"], vectors=unit(rng, 1))
        with pytest.raises(RuntimeError, match="b.add"):
            coll.add(["y"], ids=["y"], vectors=unit(rng, 1))
    assert coll.get(["y"]) == [None] and coll.get(["x"])[0].text == "x"
    coll.delete(["x"])
    assert coll.snapshot().generation == gen + 3  # the good batch, x, and x deleted
    assert sorted(d.id for d in coll.iter_documents()) == ["first", "good"]
    assert not [p for p in (coll.path / "segments").iterdir() if p.name.startswith(".")]
    coll.add(["later"], ids=["later"], vectors=unit(rng, 1))  # the next writer goes on
    assert len(coll) == 3


def test_bulk_load_that_failed_while_writing_commits_nothing(coll, monkeypatch):
    """A write error (a full disk) inside a batch ends the load, even if the caller catches it."""
    import heron.collection.segments as segments

    rng = np.random.default_rng(9)
    real = segments.NpyAppender.append
    with pytest.raises(ValueError, match="nothing was committed"):
        with coll.bulk() as b:
            b.add(["a"], ids=["a"], vectors=unit(rng, 1))

            def full(*args):
                raise OSError(28, "No space left on device")

            monkeypatch.setattr(segments.NpyAppender, "append", full)
            with pytest.raises(OSError):
                b.add(["b"], ids=["b"], vectors=unit(rng, 1))
            monkeypatch.setattr(segments.NpyAppender, "append", real)
            with pytest.raises(ValueError, match="failed while writing"):
                b.add(["c"], ids=["c"], vectors=unit(rng, 1))
    assert len(coll) == 0
    coll.add(["d"], ids=["d"], vectors=unit(rng, 1))
    assert [d.id for d in coll.iter_documents()] == ["d"]


def test_bulk_rows_inserted_on_their_own_thread_fail_the_load(coll, monkeypatch):
    """The SQLite rows of a batch go in on a thread while the next batch is prepared: an error
    there ends the load at the next ``b.add`` or at the block's end, commits nothing, and leaves
    no segment behind (not even one already finished and renamed into place)."""
    import sqlite3

    import heron.collection.writes as writes

    rng = np.random.default_rng(10)
    real, calls = writes._insert_docs, []
    monkeypatch.setattr(writes, "THREAD_ROWS", 1)  # a thread for every batch (default: 2,048 rows)

    def full_on(which):
        def insert(*args):
            calls.append(len(args[1]))
            if len(calls) == which:
                raise sqlite3.OperationalError("database or disk is full")
            return real(*args)
        return insert

    monkeypatch.setattr(writes, "_insert_docs", full_on(2))
    with pytest.raises(ValueError, match="nothing was committed"):
        with coll.bulk() as b:
            b.add(["a"], ids=["a"], vectors=unit(rng, 1))
            b.add(["b"], ids=["b"], vectors=unit(rng, 1))  # its rows fail on the thread
            with pytest.raises(sqlite3.OperationalError, match="full"):
                b.add(["c"], ids=["c"], vectors=unit(rng, 1))  # ... and the next batch says so
            with pytest.raises(ValueError, match="failed while writing"):
                b.add(["d"], ids=["d"], vectors=unit(rng, 1))
    calls.clear()
    monkeypatch.setattr(writes, "_insert_docs", full_on(2))
    with pytest.raises(ValueError, match=r"failed while writing \(database or disk is full\)"):
        with coll.bulk() as b:  # the last batch fails after its segment was finished
            b.add(["a"], ids=["a"], vectors=unit(rng, 1))
            b.add(["b"], ids=["b"], vectors=unit(rng, 1))
    assert len(coll) == 0 and coll.snapshot().generation == 0
    assert not list((coll.path / "segments").iterdir())
    monkeypatch.setattr(writes, "THREAD_ROWS", 2048)  # small batches: rows inserted at once
    calls.clear()
    monkeypatch.setattr(writes, "_insert_docs", full_on(1))
    with pytest.raises(ValueError, match="nothing was committed"):
        with coll.bulk() as b:
            with pytest.raises(sqlite3.OperationalError, match="full"):
                b.add(["a"], ids=["a"], vectors=unit(rng, 1))
    monkeypatch.setattr(writes, "_insert_docs", real)
    with coll.bulk() as b:
        b.add(["a"], ids=["a"], vectors=unit(rng, 1))
    assert [d.id for d in coll.iter_documents()] == ["a"]


def test_bulk_stores_metadata_as_it_was_when_add_returned(coll, monkeypatch):
    """The rows go in on a thread after ``b.add`` returns; a caller that then changes its
    metadata (a nested list here) must not change what is stored."""
    import heron.collection.writes as writes

    monkeypatch.setattr(writes, "THREAD_ROWS", 1)
    real, go = writes.BulkWriter._insert, threading.Event()

    def late_insert(self, *args):
        assert go.wait(30)  # the caller has changed its metadata by now
        return real(self, *args)

    monkeypatch.setattr(writes.BulkWriter, "_insert", late_insert)
    rng = np.random.default_rng(12)
    tags = ["a"]
    with coll.bulk() as b:
        b.add(["x"], ids=["x"], vectors=unit(rng, 1), metadata=[{"tags": tags}])
        tags.append("changed later")
        go.set()
    assert coll.get(["x"])[0].metadata == {"tags": ["a"]}


def test_many_rows_per_insert_statement_round_trip(tmp_path):
    """Rows go into SQLite 128 per statement (and the rest in one): 300 documents, added at once,
    in a bulk load of uneven batches, or one at a time, store the same rows."""
    rng = np.random.default_rng(11)
    v = unit(rng, 300)
    texts, ids = [f"text {i} é" for i in range(300)], [f"id-{i}" for i in range(300)]
    metas = [{"i": i} if i % 3 else None for i in range(300)]
    a = Collection.create(tmp_path / "a", model="none", dim=8)
    a.add(texts, ids=ids, vectors=v, metadata=metas)
    b = Collection.create(tmp_path / "b", model="none", dim=8)
    with b.bulk() as w:
        for s, e in ((0, 129), (129, 131), (131, 300)):
            w.add(texts[s:e], ids=ids[s:e], vectors=v[s:e], metadata=metas[s:e])
    c = Collection.create(tmp_path / "c", model="none", dim=8)
    for i in range(0, 300, 60):
        c.add(texts[i:i + 60], ids=ids[i:i + 60], vectors=v[i:i + 60], metadata=metas[i:i + 60])
    docs = [[(d.key, d.id, d.text, d.metadata) for d in x.iter_documents()] for x in (a, b, c)]
    assert docs[0] == docs[1] == docs[2]
    assert docs[0][299] == (300, "id-299", "text 299 é", {"i": 299}) and docs[0][3][3] == {}
    for x in (a, b, c):
        assert x.search(v[[0, 128, 129, 299]], 1, using="dense").doc_ids() == [["id-0"], ["id-128"], ["id-129"], ["id-299"]]
        assert check(x.path, deep=True).ok  # every text matches its recorded hash
