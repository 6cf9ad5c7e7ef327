"""`heron export` / `heron import` round trips (JSONL, Parquet), `heron snapshot` while a writer
commits, and `heron list`: ids, texts, metadata and vectors come back exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest

from heron.collection import Collection
from heron.collection.transfer import export_collection, import_collection, snapshot_to

DIM = 16


def heron(*args, check=True):
    out = subprocess.run([sys.executable, "-m", "heron", *args], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if check:
        assert out.returncode == 0, out.stderr
    return out


def vec(doc_id: str) -> np.ndarray:
    """A fixed vector per id, with values whose decimal forms are long (float32 noise)."""
    rng = np.random.default_rng(zlib.crc32(doc_id.encode()))
    return rng.standard_normal(DIM).astype(np.float32)


def build(path, n=300):
    coll = Collection.create(path, model="none", dim=DIM)
    ids = [f"doc-{i}" for i in range(n)]
    texts = [f"Text {i}: naïve café — 北京 \"quoted\" \\ back\nslash {'x' * (i % 7)}" for i in range(n)]
    metas = [{"n": i, "ratio": i / 7, "ok": i % 2 == 0, "none": None, "tags": ["a", f"t{i % 3}"],
              "nested": {"deep": {"emoji": "🐦"}}} if i % 5 else {} for i in range(n)]
    for s in range(0, n, 100):  # three commits, then a delete: the export skips deleted rows
        coll.add(texts[s:s + 100], ids=ids[s:s + 100], metadata=metas[s:s + 100],
                 vectors=np.stack([vec(i) for i in ids[s:s + 100]]))
    coll.delete(["doc-3", "doc-150"])
    return coll


def contents(coll):
    snap = coll.snapshot()
    keys = snap.keys
    return snap.ids(keys), snap.texts(keys), snap.metadata(keys), np.asarray(snap.dense())


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_round_trip_exact(tmp_path, suffix):
    src = build(tmp_path / "src")
    want = contents(src)
    src.close()
    f = tmp_path / f"out.{suffix}"
    head = json.loads(heron("export", str(tmp_path / "src"), str(f), "--vectors", "--json").stdout)
    assert head["count"] == 298 and head["vectors"] and head["dim"] == DIM
    out = json.loads(heron("import", str(f), "--collection", str(tmp_path / "dst"), "--json").stdout)
    assert out["imported"] == 298 and out["vectors"]
    dst = Collection.open(tmp_path / "dst")
    got = contents(dst)
    assert got[0] == want[0] and got[1] == want[1] and got[2] == want[2]
    assert got[3].dtype == want[3].dtype == np.float32
    assert np.array_equal(got[3].view(np.uint32), want[3].view(np.uint32))  # bit-identical
    assert dst.model == "none" and dst.dim == DIM
    # importing again replaces by id (no duplicates)
    assert import_collection(dst, f) == 298 and len(dst) == 298


def test_export_without_vectors_and_errors(tmp_path):
    src = build(tmp_path / "src", n=20)
    head = export_collection(src, tmp_path / "t.jsonl")
    assert not head["vectors"]
    first = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[1])
    assert set(first) == {"id", "text", "metadata"}
    src.close()
    out = heron("export", str(tmp_path / "src"), str(tmp_path / "x.csv"), check=False)
    assert out.returncode == 2 and "name the file .jsonl or .parquet" in out.stderr
    assert out.stderr.count("\n") == 1
    # no vectors into a collection of precomputed vectors: one line naming the fix
    out = heron("import", str(tmp_path / "t.jsonl"), "--collection", str(tmp_path / "d"), check=False)
    assert out.returncode == 2 and "pass vectors" in out.stderr and out.stderr.count("\n") == 1
    assert not (tmp_path / "d").exists()  # nothing half-made left behind
    out = heron("import", str(tmp_path / "nope.parquet"), "--collection", str(tmp_path / "d"), check=False)
    assert out.returncode == 2 and "no export file" in out.stderr


def test_snapshot_while_writing(tmp_path):
    root = tmp_path / "live"
    build(root, n=100).close()
    record: dict[int, list[str]] = {}
    stop = threading.Event()

    def writer():
        w = Collection.open(root)

        def note():  # the documents at each committed generation
            record[w.generation] = sorted(d.id for d in w.iter_documents())

        i = 0
        while not stop.is_set() and i < 60:
            ids = [f"w{i}-{j}" for j in range(20)]
            w.add([f"written {x}" for x in ids], ids=ids, vectors=np.stack([vec(x) for x in ids]))
            note()
            if i % 3 == 2:
                w.delete([f"w{i - 1}-{j}" for j in range(10)])
                note()
            if i % 7 == 6:
                w.compact()
                note()
            i += 1
        w.close()

    reader = Collection.open(root)
    record[reader.generation] = sorted(d.id for d in reader.iter_documents())
    t = threading.Thread(target=writer)
    t.start()
    copies = []
    try:
        for n in range(4):
            copies.append(snapshot_to(reader, tmp_path / f"copy{n}"))
    finally:
        stop.set()
        t.join()
    reader.close()
    assert len({c["generation"] for c in copies}) > 1  # the writer was committing meanwhile
    for n, c in enumerate(copies):
        cp = Collection.open(tmp_path / f"copy{n}")
        ids, texts, _, dense = contents(cp)
        assert cp.generation == c["generation"] and sorted(ids) == record[c["generation"]]
        assert np.array_equal(dense, np.stack([vec(i) for i in ids]))
        cp.add(["after the copy"], ids=["new"], vectors=vec("new")[None])  # a working collection
        cp.close()


def test_snapshot_and_list_cli(tmp_path):
    alpha = build(tmp_path / "cols" / "alpha", n=50)
    alpha.create_index("bm25", kind="bm25")
    (alpha.index_dir("calibration") / "adapter.json").write_text('{"kind": "test"}')
    (alpha.index_dir("calibration") / ".build.lock").write_text("")
    alpha.close()
    (tmp_path / "cols" / "not-a-collection").mkdir()
    out = heron("snapshot", str(tmp_path / "cols" / "alpha"), str(tmp_path / "cols" / "beta"))
    assert "49 documents, 1 index(es)" in out.stdout
    alpha, beta = (Collection.open(tmp_path / "cols" / n) for n in ("alpha", "beta"))
    assert beta.indexes() == alpha.indexes() and beta.indexes()[0]["generation"] == beta.generation
    q = ["Text 17 naïve xxx", "quoted slash 4"]
    a, b = alpha.search(q, k=5, using="bm25"), beta.search(q, k=5, using="bm25")
    assert b.doc_ids() == a.doc_ids() and np.array_equal(a.scores, b.scores)
    def versions(n):
        return sorted(p.name for p in (tmp_path / "cols" / n / "indexes" / "bm25").iterdir()
                      if p.is_dir() and not p.name.startswith("."))

    assert versions("beta") == versions("alpha")  # searched with the copied index, not a rebuilt one
    cal = tmp_path / "cols" / "beta" / "indexes" / "calibration"
    assert [p.name for p in cal.iterdir()] == ["adapter.json"]  # derived folders too, no locks
    alpha.close()
    beta.close()
    out = heron("snapshot", str(tmp_path / "cols" / "alpha"), str(tmp_path / "cols" / "beta"), check=False)
    assert out.returncode == 2 and "not empty" in out.stderr
    listing = json.loads(heron("list", str(tmp_path / "cols"), "--json").stdout)
    rows = {r["name"]: r for r in listing["collections"]}
    assert sorted(rows) == ["alpha", "beta"]
    assert rows["alpha"]["documents"] == rows["beta"]["documents"] == 49
    assert rows["alpha"]["model"] == "none" and rows["alpha"]["bytes"] > 0
    text = heron("list", str(tmp_path / "cols")).stdout.splitlines()
    assert text[0].split() == ["name", "documents", "size", "model"] and len(text) == 3
    out = heron("list", str(tmp_path / "nope"), check=False)
    assert out.returncode == 2 and "not a folder" in out.stderr


def test_import_a_parquet_file_written_elsewhere(tmp_path):
    """A Parquet file from another tool: no heron header, metadata as a struct column."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    ids = ["p1", "p2", "p3"]
    vecs = np.stack([vec(i) for i in ids])
    table = pa.table({
        "id": ids,
        "text": ["first", "second", "third"],
        "metadata": [{"year": 2020, "lang": "en"}, {"year": 2021, "lang": "fr"}, {"year": 1999, "lang": "de"}],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), DIM),
    })
    pq.write_table(table, tmp_path / "ext.parquet")
    coll = Collection.create(tmp_path / "c", model="none", dim=DIM)
    assert import_collection(coll, tmp_path / "ext.parquet") == 3
    ids_got, texts, metas, dense = contents(coll)
    assert ids_got == ids and texts == ["first", "second", "third"]
    assert metas[1] == {"year": 2021, "lang": "fr"} and np.array_equal(dense, vecs)
    coll.close()
