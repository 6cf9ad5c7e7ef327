"""Sharded collections without Ray: routing, manifest, exact merge, global BM25, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heron.cli.main import main
from heron.collection import Collection, CollectionError
from heron.scale import ShardedCollection
from heron.scale.compare import compare_rankings
from heron.scale.routing import global_keys, read_manifest, route, shard_of, split_keys

TEXTS = [
    "the cat sat on the mat", "dogs chase cats in the park", "a cat and a dog are friends",
    "quantum computing with qubits", "classical computing uses bits", "the park is green in spring",
    "spring rain makes the grass grow", "cats sleep most of the day", "dogs need daily walks",
    "bits and qubits differ", "a green mat for the cat", "rain in the park again",
]


def test_routing_rule_is_the_documented_hash():
    import hashlib

    for doc_id in ("a", "doc-17", "é", "31715818"):
        h = int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")
        assert shard_of(doc_id, 7) == h % 7
    assert shard_of("a", 4) == 3  # fixed forever: changing it would misroute existing shards
    where = route([str(i) for i in range(4000)], 4)
    assert set(np.bincount(where)) and np.bincount(where).min() > 900  # roughly uniform
    g = global_keys(np.array([0, 5, -1]), 3, 4)
    assert g.tolist() == [3, 23, -1]
    s, k = split_keys(g, 4)
    assert s.tolist() == [3, 3, -1] and k.tolist() == [0, 5, -1]


@pytest.fixture()
def pair(tmp_path):
    rng = np.random.default_rng(0)
    vec = rng.normal(size=(len(TEXTS), 8)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(len(TEXTS))]
    meta = [{"n": i} for i in range(len(TEXTS))]
    single = Collection.create(tmp_path / "one", model="none", dim=8)
    single.add(TEXTS, ids=ids, vectors=vec, metadata=meta)
    sharded = ShardedCollection.create(tmp_path / "many", shards=3, model="none", dim=8, threads=3)
    keys = sharded.add(TEXTS, ids=ids, vectors=vec, metadata=meta)
    yield single, sharded, vec, keys
    sharded.close()
    single.close()


def test_manifest_and_shards_open_alone(pair):
    _, sharded, _, keys = pair
    m = read_manifest(sharded.path)
    assert m["format"] == "heron-sharded" and m["shards"] == ["shard-000.heron", "shard-001.heron", "shard-002.heron"]
    assert (keys % 3).tolist() == [shard_of(f"d{i}", 3) for i in range(len(TEXTS))]
    sizes = []
    for name in m["shards"]:
        with Collection.open(sharded.path / name) as c:
            sizes.append(len(c))
    assert sum(sizes) == len(TEXTS) and min(sizes) > 0
    info = sharded.info()
    assert info["documents"] == len(TEXTS) and info["n_shards"] == 3 and len(info["shards"]) == 3
    assert sharded.get("d4")[0].key == keys[4]


@pytest.mark.parametrize("spec,flt", [("dense", None), ("bm25", None), ("dense", {"n": {"$gte": 6}}),
                                      ("bm25", {"n": {"$lt": 6}})])
def test_exact_merge_equals_single_node(pair, spec, flt):
    single, sharded, vec, _ = pair
    from heron.pipeline import Queries

    q = Queries(["cat on a mat", "qubits and bits", "rain in spring"], vectors={"none": vec[[0, 3, 6]] + 0.1})
    a = single.search(q, 5, using=spec, filter=flt)
    b = sharded.search(q, 5, using=spec, filter=flt)
    c = compare_rankings(a.doc_ids(), a.scores, b.doc_ids(), b.scores, atol=1e-6)
    assert c.ok, (c, a.doc_ids(), b.doc_ids())
    assert b.info == {**b.info, "partial": False, "missing_shards": [], "shards": 3}


def test_hybrid_equals_single_node(pair):
    from heron.pipeline import Queries

    single, sharded, vec, _ = pair
    q = Queries(["cat on a mat", "qubits and bits"], vectors={"none": vec[[0, 3]] + 0.1})
    a = single.search(q, 5, using="hybrid:dense+bm25")
    b = sharded.search(q, 5, using="hybrid:dense+bm25")
    c = compare_rankings(a.doc_ids(), a.scores, b.doc_ids(), b.scores, atol=1e-9)
    assert c.ok, (c, a.doc_ids(), b.doc_ids())
    assert (b.counts() == 5).all() and b.info["partial"] is False


def test_bm25_statistics_are_global_not_per_shard(pair):
    single, sharded, _, _ = pair
    a = single.search("cat", 12, using="bm25")
    b = sharded.search("cat", 12, using="bm25")
    np.testing.assert_array_equal(a.scores, b.scores)  # bit-identical scores
    # per-shard statistics would not be: a shard's own BM25 scores differ from the global ones
    with Collection.open(sharded.path / "shard-000.heron") as shard:
        own = shard.search("cat", 12, using="bm25")
    own_scores = dict(zip(own.doc_ids()[0], own.scores[0]))
    glob = dict(zip(b.doc_ids()[0], b.scores[0]))
    assert any(abs(own_scores[d] - glob[d]) > 1e-3 for d in own_scores)


def test_bad_input_is_named(pair, tmp_path):
    _, sharded, _, _ = pair
    with pytest.raises(ValueError, match="shards must be"):
        ShardedCollection.create(tmp_path / "x", shards=0, model="none", dim=4)
    with pytest.raises(FileNotFoundError, match="no sharded collection"):
        ShardedCollection.open(tmp_path / "nothing")
    with pytest.raises(ValueError, match="query vectors must have shape"):
        sharded.search(np.zeros((1, 3)), 3)
    with pytest.raises(ValueError, match="min_relevance"):
        sharded.search(np.zeros((1, 8)), 3, min_relevance=0.5)
    with pytest.raises(ValueError, match="ids"):
        sharded.add(["a", "b"], ids=["x"], vectors=np.zeros((2, 8), np.float32))
    with pytest.raises(ValueError, match="Ray shards"):
        ShardedCollection.open(sharded.path, wait_s=3)
    with pytest.raises(CollectionError, match="is a sharded collection: open it with heron.ShardedCollection"):
        Collection.open(sharded.path)
    bad = json.loads((sharded.path / "shards.json").read_text())
    bad["version"] = 99
    (tmp_path / "v99").mkdir()
    (tmp_path / "v99" / "shards.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="expected heron-sharded v1"):
        ShardedCollection.open(tmp_path / "v99")


def test_cli_shards_need_ray_and_valid_counts(tmp_path, capsys):
    src = tmp_path / "d.jsonl"
    src.write_text('{"_id": "1", "text": "hello"}\n')
    assert main(["index", str(src), "-c", str(tmp_path / "c"), "--shards", "2"]) == 2
    assert "--ray" in capsys.readouterr().err
    assert main(["index", str(src), "-c", str(tmp_path / "c"), "--shards", "0", "--ray"]) == 2
    assert "shards must be" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("threads", [1, 3])
def test_bulk_load_one_segment_per_shard_and_one_commit(tmp_path, threads):
    """``with sc.bulk() as b`` routes each batch to every shard's own bulk load: one segment
    per shard, nothing visible before the block ends, and the same top-10 as ``add``."""
    rng = np.random.default_rng(3)
    n = 300
    vec = rng.normal(size=(n, 8)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    ids = [f"doc-{i}" for i in range(n)]
    texts = [f"text {i}" for i in range(n)]
    plain = ShardedCollection.create(tmp_path / "plain", shards=3, model="none", dim=8)
    for s in range(0, n, 100):
        plain.add(texts[s:s + 100], ids=ids[s:s + 100], vectors=vec[s:s + 100])
    bulk = ShardedCollection.create(tmp_path / "bulk", shards=3, model="none", dim=8, threads=threads)
    with bulk.bulk() as b:
        for s in range(0, n, 100):
            keys = b.add(texts[s:s + 100], ids=ids[s:s + 100], vectors=vec[s:s + 100],
                         metadata=[{"i": i} for i in range(s, s + 100)])
            assert (keys % 3).tolist() == [shard_of(i, 3) for i in ids[s:s + 100]]
        assert len(bulk) == 0  # not yet
    assert len(bulk) == n
    info = bulk.info()
    assert [sh["segments"] for sh in info["shards"]] == [1, 1, 1]
    q = vec[:5]
    assert bulk.search(q, 10).doc_ids() == plain.search(q, 10).doc_ids()
    assert bulk.get(["doc-7"])[0].metadata == {"i": 7}
    with pytest.raises(RuntimeError, match="stop"):  # an error in the block: no shard commits
        with bulk.bulk() as b:
            b.add(["late"], ids=["late"], vectors=vec[:1])
            raise RuntimeError("stop")
    with pytest.raises(ValueError, match="already added in this bulk load"):
        with bulk.bulk() as b:  # an id routes to the same shard, whose load refuses it twice
            b.add(["x"], ids=["x"], vectors=vec[:1])
            b.add(["x again"], ids=["x"], vectors=vec[:1])
    assert len(bulk) == n and bulk.get(["late", "x"]) == [None, None]
    bulk.add(["after"], ids=["after"], vectors=vec[:1])  # every shard's lock was let go
    assert len(bulk) == n + 1
    plain.close()
    bulk.close()


def test_bulk_commit_failing_on_one_shard_lets_every_other_shard_go(tmp_path, monkeypatch):
    """Each shard commits its own part at the end of the block. A shard whose commit fails
    raises; shards before it keep their part, shards after it abandon theirs, and no shard is
    left holding its write lock."""
    from heron.scale.worker import ShardWorker

    monkeypatch.setenv("HERON_LOCK_TIMEOUT", "5")  # a lock left held fails here, not in 600 s
    real = ShardWorker.bulk_end

    def end(self, commit):
        if commit and self.index == 1:
            real(self, False)
            raise OSError(28, "No space left on device")
        return real(self, commit)

    monkeypatch.setattr(ShardWorker, "bulk_end", end)
    rng = np.random.default_rng(4)
    vec = rng.normal(size=(60, 8)).astype(np.float32)
    ids = [f"doc-{i}" for i in range(60)]
    sc = ShardedCollection.create(tmp_path / "s", shards=3, model="none", dim=8)
    with pytest.raises(OSError, match="No space"):
        with sc.bulk() as b:
            b.add(ids, ids=ids, vectors=vec)
    where = route(ids, 3)
    kept = {i for i, s in zip(ids, where) if s == 0}
    assert {d.id for d in sc.get(ids) if d is not None} == kept
    monkeypatch.setattr(ShardWorker, "bulk_end", real)
    sc.add(ids[:30], ids=[f"new-{i}" for i in range(30)], vectors=vec[:30])  # every lock is free
    assert len(sc) == len(kept) + 30
    sc.close()
