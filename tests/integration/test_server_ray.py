"""``heron serve --ray``: a sharded collection behind the HTTP API (one local Ray session here).

About 400 SciFact documents (the documents judged for the test queries, then the first ones)
with their cached MiniLM vectors (``model="none"``) and texts for BM25, in 4 shards hosted by
Ray actors and served by ``create_app(..., ray=True)`` on 127.0.0.1 (a free port), queried with
:class:`heron.Client`. Checked: the HTTP top-10 equals the in-process
:class:`~heron.scale.ShardedCollection` search and a single collection of the same documents
(ids and scores to 1e-5, exactly tied hits in any order) for dense and BM25; reads, writes and
``min_relevance`` on a sharded collection; a killed shard actor (searches complete or flagged
partial over HTTP, ``/readyz`` degraded while a shard is down); the same folder served without
Ray; ``heron serve --ray ADDRESS`` as a process.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

import heron  # noqa: E402
from heron.collection import Collection  # noqa: E402
from heron.scale import ShardedCollection  # noqa: E402
from heron.scale.compare import compare_rankings  # noqa: E402
from heron.scale.routing import shard_of  # noqa: E402
from heron.server import create_app  # noqa: E402
from heron.server.threaded import ThreadedServer  # noqa: E402

log = logging.getLogger(__name__)
N_DOCS = 400
N_QUERIES = 40
WAIT_S = 2.0  # the bounded wait for a dead shard (default 10 s), short so the dead-shard test is quick


@pytest.fixture(scope="module")
def ray_session():
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2,
                 log_to_driver=False, logging_level="WARNING")
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def corpus(scifact, scifact_emb):
    """Judged documents first (so calibration has positives), then the first documents of SciFact."""
    row = {d: i for i, d in enumerate(scifact.doc_ids)}
    judged = sorted({d for rel in scifact_emb["qrels"].values() for d in rel if d in row}, key=row.get)
    chosen = list(dict.fromkeys([*judged, *scifact.doc_ids]))[:N_DOCS]
    rows = np.array([row[d] for d in chosen])
    texts = [scifact.documents()[i] for i in rows]
    meta = [{"year": 2000 + i % 10} for i in range(len(chosen))]
    return texts, chosen, meta, np.asarray(scifact_emb["doc_emb"])[rows]


@pytest.fixture(scope="module")
def served(tmp_path_factory, ray_session, corpus):
    """``single.heron``, ``docs.sharded`` (Ray) served by one app; ``local.sharded`` by another (no Ray)."""
    texts, ids, meta, vec = corpus
    root = tmp_path_factory.mktemp("serve_ray")
    with Collection.create(root / "single.heron", model="none", dim=vec.shape[1]) as single:
        single.add(texts, ids=ids, metadata=meta, vectors=vec)
    for name in ("docs.sharded", "local.sharded"):
        with ShardedCollection.create(root / name, shards=4, model="none", dim=vec.shape[1]) as sc:
            sc.add(texts, ids=ids, metadata=meta, vectors=vec)
    app = create_app([root / "single.heron", root / "docs.sharded"], ray=True, shard_options={"wait_s": WAIT_S})
    local = create_app([root / "local.sharded"])
    with ThreadedServer(app) as srv, ThreadedServer(local) as lsrv:
        yield {"root": root, "app": app, "url": srv.url, "local_url": lsrv.url, "local_app": local,
               "client": heron.Client(srv.url), "local_client": heron.Client(lsrv.url)}


def _same(a, b, *, exact: bool = False):
    c = compare_rankings(a.doc_ids(), a.scores, b.doc_ids(), b.scores, atol=1e-5)
    assert c.ok, c
    if exact:  # the same engine on both sides: the same order, ties included
        assert a.doc_ids() == b.doc_ids(), c
    return c


def test_http_top10_equals_in_process_and_single_node(served, scifact_emb):
    client, cat = served["client"], served["app"].state.catalog
    sharded, single = cat.get("docs.sharded"), cat.get("single")
    assert type(sharded).__name__ == "ShardedCollection" and sharded.backend.kind == "ray"
    qv = np.asarray(scifact_emb["query_emb"][:N_QUERIES], np.float32)
    qt = list(scifact_emb["queries"][:N_QUERIES])
    for using, q in (("dense", qv), ("bm25", qt)):
        http = client.collection("docs.sharded").search(q, 10, using=using)
        assert http.info["partial"] is False and http.info["missing_shards"] == []
        assert http.info["shards"] == 4
        _same(http, sharded.search(q, 10, using=using), exact=True)
        _same(http, single.search(q, 10, using=using))
        _same(http, client.collection("single").search(q, 10, using=using))
    # a filter, on the sharded collection as on one
    flt = {"year": {"$gte": 2005}}
    got = client.collection("docs.sharded").search(qv[:10], 10, filter=flt)
    _same(got, single.search(qv[:10], 10, filter=flt))
    assert all(h.metadata["year"] >= 2005 for row in got.hits() for h in row)


def test_reads_and_writes_on_a_sharded_collection(served, corpus):
    texts, ids, _, vec = corpus
    client = served["client"]
    coll = client.collection("docs.sharded")
    listed = {c["name"]: c for c in client.collections()}
    assert listed["docs.sharded"]["documents"] == N_DOCS and listed["docs.sharded"]["dim"] == vec.shape[1]
    assert listed["docs.sharded"]["partial"] is False
    info = coll.info()
    assert info["n_shards"] == 4 and info["backend"] == "ray" and info["documents"] == N_DOCS
    assert sum(s["documents"] for s in info["shards"]) == N_DOCS and all("path" not in s for s in info["shards"])
    assert "bm25" in info["retrievers"] and [f["name"] for f in info["metadata_fields"]] == ["year"]
    docs = coll.get([ids[3], "no-such-id"])
    assert docs[0].text == texts[3] and docs[1] is None
    # writes: routed by id, visible to search, deleted again
    coll.upsert(["a new document about gzip"], ids=["new-1"], vectors=vec[:1] * -1.0, metadata=[{"year": 1}])
    assert coll.get(["new-1"])[0].metadata == {"year": 1}
    top = coll.search(vec[:1] * -1.0, 1)
    assert top.doc_ids() == [["new-1"]]
    assert coll.delete(["new-1"]) == 1 and coll.get(["new-1"]) == [None]
    # an index built on every shard, searched by name, dropped
    assert coll.create_index("flat8", kind="flat")["name"] == "flat8"
    assert "flat8" in [r["name"] for r in coll.indexes()]
    _same(coll.search(vec[:5], 10, using="flat8"), coll.search(vec[:5], 10), exact=True)
    assert coll.drop_index("flat8") and "flat8" not in [r["name"] for r in coll.indexes()]
    # what a sharded collection cannot do: a structured 400, never a 500
    r = httpx.post(served["url"] + "/v1/collections/docs.sharded/search",
                   json={"vectors": vec[:1].tolist(), "explain": True})
    assert r.status_code == 400 and r.json()["error"]["field"] == "explain", r.text
    assert "sharded" in r.json()["error"]["message"]
    r = httpx.post(served["url"] + "/v1/collections/docs.sharded/search",
                   json={"vectors": vec[:1].tolist(), "min_relevance": 0.5})
    assert r.status_code == 400 and "calibrate" in r.json()["error"]["message"], r.text


def test_min_relevance_after_the_exact_merge(served, scifact_emb):
    """Calibrated on merged scores, thresholded after the merge: as one collection with that adapter."""
    from heron.calibration.cosine_adapter import threshold_results
    from heron.scale.calibration import adapter_of

    sc = served["local_app"].state.catalog.get("local.sharded")
    qids = scifact_emb["query_ids"]
    qv = np.asarray(scifact_emb["query_emb"], np.float32)
    sc.calibrate(qv[50:], qids[50:], scifact_emb["qrels"], epochs=100)
    adapter = adapter_of(sc.path, sc.manifest)
    http = served["local_client"].collection("local.sharded").search(qv[:N_QUERIES], 10, min_relevance=0.3)
    assert http.info["score_kind"] == "probability"
    inproc = sc.search(qv[:N_QUERIES], 10, min_relevance=0.3)
    _same(http, inproc, exact=True)
    # one collection: its exact top-100, the same adapter, the same threshold
    with Collection.open(served["root"] / "single.heron") as single:
        first = single.search(qv[:N_QUERIES], 100)
        ref = threshold_results(first, adapter.predict(qv[:N_QUERIES], first.scores, model="none"), 0.3).cut(10)
    _same(http, ref)
    kept = [len(r) for r in http.doc_ids()]
    assert 0 < sum(kept) < 10 * N_QUERIES, kept  # a threshold, not a no-op


def test_local_sharded_collection_served(served, scifact_emb):
    coll = served["local_client"].collection("local.sharded")
    assert coll.info()["backend"] == "local"
    qt = list(scifact_emb["queries"][:N_QUERIES])
    with Collection.open(served["root"] / "single.heron") as single:
        _same(coll.search(qt, 10, using="bm25"), single.search(qt, 10, using="bm25"))
    assert httpx.get(served["local_url"] + "/readyz").json()["status"] == "ready"


def _search_loop(coll, q, seconds: float) -> list:
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        out.append(coll.search(q, 10))
    return out


def test_killed_shard_actor_complete_or_flagged_partial(served, scifact_emb):
    sharded = served["app"].state.catalog.get("docs.sharded")
    coll = served["client"].collection("docs.sharded")
    q = np.asarray(scifact_emb["query_emb"][:2], np.float32)
    full = sharded.search(q, 10)
    ray.kill(sharded.backend.actors[1], no_restart=False)
    answers = _search_loop(coll, q, 4.0)
    partial = sum(bool(r.info["partial"]) for r in answers)
    log.info("during the restart: %d answers, %d complete, %d flagged partial", len(answers), len(answers) - partial, partial)
    for res in answers:
        if res.info["partial"]:
            assert res.info["missing_shards"] == [1]
        else:
            assert res.info["missing_shards"] == [] and res.doc_ids() == full.doc_ids()
    deadline = time.monotonic() + 60
    while httpx.get(served["url"] + "/readyz").status_code != 200:  # the actor is back
        assert time.monotonic() < deadline, "shard actor not back within 60 s"
        time.sleep(0.2)
    assert coll.search(q, 10).info["partial"] is False


def test_dead_shard_readyz_degraded_and_partial(served, corpus):
    """Last in the module: the actor is killed for good (no restart)."""
    _, ids, _, vec = corpus
    sharded = served["app"].state.catalog.get("docs.sharded")
    ray.kill(sharded.backend.actors[2], no_restart=True)
    r = httpx.get(served["url"] + "/readyz")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["status"] == "degraded" and body["shards_down"] == {"docs.sharded": [2]}
    assert body["error"]["code"] == "unavailable"
    coll = served["client"].collection("docs.sharded")
    res = coll.search(vec[:3], 10)
    assert res.info["partial"] is True and res.info["missing_shards"] == [2]
    info = coll.info()  # reads answer from the live shards, flagged
    assert info["partial"] is True and info["missing_shards"] == [2] and info["documents"] < N_DOCS
    listed = {c["name"]: c for c in served["client"].collections()}
    assert listed["docs.sharded"]["partial"] is True and "partial" not in listed["single"]
    doc = next(i for i in ids if shard_of(i, 4) == 2)
    assert all(doc not in row for row in res.doc_ids())
    r = httpx.post(served["url"] + "/v1/collections/docs.sharded/upsert",
                   json={"ids": [doc], "texts": ["x"], "vectors": vec[:1].tolist()})
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable", r.text


@pytest.mark.slow  # a second driver process joining the cluster: about 10-25 s on 2 loaded cores
def test_heron_serve_ray_process(served, ray_session):
    """``heron serve PATH --ray ADDRESS`` joins this module's Ray cluster and answers /readyz."""
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = ray.get_runtime_context().gcs_address
    proc = subprocess.Popen(
        [sys.executable, "-m", "heron", "serve", str(served["root"] / "local.sharded"), "--port", str(port),
         "--ray", address],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                r = httpx.get(url + "/readyz", timeout=5)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "heron serve --ray did not become ready"
            time.sleep(0.3)
        assert r.json() == {"status": "ready", "collections": 1}
        info = httpx.get(url + "/v1/collections/local.sharded").json()
        assert info["backend"] == "ray" and info["documents"] == N_DOCS
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
