"""The HTTP server end to end: a real uvicorn server on 127.0.0.1 (free port) over a real MiniLM
collection; the sync and async clients against it; structured errors, keys, limits, metrics."""

from __future__ import annotations

import asyncio
import re

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from heron.collection import Collection  # noqa: E402
from heron.server.auth import hash_key  # noqa: E402

DOCS = [
    ("gz", "gzip compresses files with the deflate algorithm", {"lang": "en", "year": 2020}),
    ("cat", "the cat sat on the mat and purred", {"lang": "en", "year": 2021}),
    ("json", "json parses text into Python objects & dicts", {"lang": "fr", "year": 2019}),
    ("tar", "tar archives many files into one file", {"lang": "en", "year": 2018}),
    ("re", "regular expressions match patterns in strings", {"lang": "de", "year": 2022}),
    ("sock", "sockets send bytes over a network connection", {"lang": "en", "year": 2023}),
]
QUERIES = ["compress a file", "pattern matching in text", "network bytes"]
READ, WRITE = "reader-key", "writer-key"


@pytest.fixture(scope="module")
def served(tmp_path_factory, encoder):
    from heron.server import create_app
    from heron.server.catalog import ServerLimits
    from heron.server.threaded import ThreadedServer

    root = tmp_path_factory.mktemp("served")
    coll = Collection.create(root / "docs.heron", encoder=encoder)
    coll.add([t for _, t, _ in DOCS], ids=[i for i, _, _ in DOCS], metadata=[m for _, _, m in DOCS])
    coll.create_index(kind="bm25")
    (root / "docs.heron" / "reports" / "bench-codecs").mkdir(parents=True)
    (root / "docs.heron" / "reports" / "bench-codecs" / "pareto.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    limits = ServerLimits(max_k=100, max_queries=8, max_query_chars=2000, max_documents=50, max_body_bytes=200_000)
    app = create_app(
        [root], api_keys={hash_key(READ): "read", hash_key(WRITE): "read,write"}, limits=limits,
        encoders={encoder.name: encoder},
    )
    with ThreadedServer(app) as srv:
        yield srv.url, coll
    coll.close()


@pytest.fixture(scope="module")
def url(served):
    return served[0]


def call(url, method, path, body=None, key=WRITE, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, url + path, json=body, headers=headers, timeout=60, **kw)


def test_operations_endpoints(url):
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(url + "/readyz").json() == {"status": "ready", "collections": 1}
    schema = httpx.get(url + "/openapi.json").json()
    assert "/v1/collections/{name}/search" in schema["paths"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_remote_equals_embedded(served):
    """The same queries through the client and in-process: identical ids, scores and metadata."""
    import heron

    url, coll = served
    remote = heron.Client(url, api_key=READ).collection("docs")
    for using in ("dense", "bm25", "hybrid:dense+bm25"):
        here = coll.search(QUERIES, k=4, using=using)
        there = remote.search(QUERIES, k=4, using=using)
        assert isinstance(there, heron.Results)
        assert there.doc_ids() == here.doc_ids(), using
        np.testing.assert_array_equal(there.scores, here.scores)
        assert [[(h.id, h.metadata, h.text) for h in row] for row in there.hits()] == [
            [(h.id, h.metadata, h.text) for h in row] for row in here.hits()
        ]
    vec = coll.encoder.encode_queries(["compress a file"])
    assert remote.search(vec, k=3).doc_ids() == coll.search(vec, k=3).doc_ids()
    filt = {"lang": "en"}
    assert remote.search("files", k=5, filter=filt).doc_ids() == coll.search("files", k=5, filter=filt).doc_ids()


def test_search_response_snippet_and_explain(url):
    r = call(url, "POST", "/v1/collections/docs/search", {
        "queries": ["json text objects"], "k": 2, "using": "hybrid:dense+bm25", "explain": True,
        "with_text": True,
    }, key=READ)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["score_kind"] == "rrf" and body["using"] == "hybrid:dense+bm25"
    top = body["results"][0]["hits"][0]
    assert top["id"] == "json" and top["rank"] == 1 and top["metadata"] == {"lang": "fr", "year": 2019}
    assert "<mark>json</mark>" in top["snippet"] and "&amp;" in top["snippet"]  # escaped otherwise
    assert set(top["explain"]["parts"]) == {"dense", "bm25"} and top["explain"]["parts"]["bm25"] > 0
    assert {t for t, _ in top["explain"]["terms"]} >= {"json", "text"}
    assert top["explain"]["weights"] == {"dense": 1.0, "bm25": 1.0}
    dense = call(url, "POST", "/v1/collections/docs/search", {"queries": ["cat"], "k": 1, "snippet": False,
                                                              "with_metadata": False}, key=READ).json()
    assert dense["score_kind"] == "cosine" and set(dense["results"][0]["hits"][0]) == {"id", "score", "rank"}


def test_client_round_trip_writes(url):
    import heron

    cl = heron.Client(url, api_key=WRITE)
    c = cl.create_collection("scratch")
    assert "scratch" in {x["name"] for x in cl.collections()}
    keys = c.add(["alpha beta", "gamma delta"], ids=["a", "b"], metadata=[{"n": 1}, None])
    assert keys.shape == (2,) and len(c) == 2
    with pytest.raises(ValueError, match="already"):
        c.add(["again"], ids=["a"])
    c.upsert(["alpha beta replaced"], ids=["a"], metadata=[{"n": 2}])
    doc_a, missing = c.get(["a", "zz"])
    assert (doc_a.text, doc_a.metadata, missing) == ("alpha beta replaced", {"n": 2}, None)
    assert c.search("alpha", k=1).hits()[0][0].metadata == {"n": 2}
    rec = c.create_index(kind="bm25")
    assert rec["name"] == "bm25" and [r["name"] for r in c.indexes()] == ["bm25"]
    assert c.drop_index("bm25") and not c.drop_index("bm25")
    assert c.delete(["a", "nope"]) == 1 and len(c) == 1
    assert c.compact()["purged"] >= 1
    assert cl.drop_collection("scratch")
    with pytest.raises(KeyError, match="scratch"):
        cl.collection("scratch")


def test_async_client(served):
    import heron

    url, coll = served

    async def go():
        async with heron.AsyncClient(url, api_key=READ) as cl:
            c = await cl.collection("docs")
            res = await asyncio.gather(*(c.search(q, k=3) for q in QUERIES))
            return [r.doc_ids()[0] for r in res], (await c.info())["documents"]

    ids, n = asyncio.run(go())
    assert ids == [row for row in coll.search(QUERIES, k=3).doc_ids()]
    assert n == len(DOCS)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "field"),
    [
        ("POST", "/v1/collections/nope/search", {"queries": ["x"]}, 404, "not_found", None),
        ("GET", "/v1/nothing", None, 404, "not_found", None),
        ("POST", "/v1/collections/docs/search", {"queries": ["x"], "k": 0}, 422, "bad_request", "k"),
        ("POST", "/v1/collections/docs/search", {"queries": [1]}, 422, "bad_request", "queries[0]"),
        ("POST", "/v1/collections/docs/search", {"queries": ["x"], "bogus": 1}, 422, "bad_request", "bogus"),
        ("POST", "/v1/collections/docs/search", {}, 400, "bad_request", "queries"),
        ("POST", "/v1/collections/docs/search", {"queries": ["x"], "using": "nope"}, 400, "bad_request", None),
        ("POST", "/v1/collections/docs/search", {"vectors": [[0.1, 0.2]]}, 400, "bad_request", "vectors[0]"),
        ("POST", "/v1/collections/docs/search", {"queries": ["x"], "filter": {"year": {"$bad": 1}}}, 400, "bad_request", None),
        ("POST", "/v1/collections/docs/search", {"queries": ["x"], "k": 101}, 400, "bad_request", "k"),
        ("POST", "/v1/collections/docs/search", {"queries": ["x"] * 9}, 413, "too_large", "queries"),
        ("POST", "/v1/collections/docs/search", {"queries": ["x" * 2001]}, 413, "too_large", "queries[0]"),
        ("POST", "/v1/collections/docs/add", {"ids": ["x"], "texts": ["a", "b"]}, 400, "bad_request", "texts"),
        ("POST", "/v1/collections/docs/add", {"ids": ["gz"], "texts": ["dup"]}, 409, "conflict", "ids"),
        ("POST", "/v1/collections/docs/add", {"ids": [str(i) for i in range(51)], "texts": ["t"] * 51}, 413, "too_large", "texts"),
        ("POST", "/v1/collections", {"name": "docs"}, 409, "conflict", "name"),
        ("POST", "/v1/collections", {"name": "../evil"}, 400, "bad_request", "name"),
        ("POST", "/v1/collections", {"name": "v", "model": "none"}, 400, "bad_request", "dim"),
        ("DELETE", "/v1/collections/docs/indexes/nope", None, 404, "not_found", "index"),
        ("POST", "/v1/collections/docs/indexes", {"kind": "nope"}, 400, "bad_request", None),
        ("GET", "/v1/collections/docs/reports/bench-codecs/secret.py", None, 404, "not_found", None),
    ],
)
def test_structured_errors(url, method, path, body, status, code, field):
    r = call(url, method, path, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["field"] == field and err["message"]


def test_body_limit(url):
    r = httpx.post(url + "/v1/collections/docs/search", content=b"{" + b" " * 300_000 + b"}",
                   headers={"Authorization": f"Bearer {READ}", "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunks():  # no Content-Length: counted while it streams in
        for _ in range(30):
            yield b" " * 10_000
        yield b"{}"

    r = httpx.post(url + "/v1/collections/docs/search", content=chunks(),
                   headers={"Authorization": f"Bearer {READ}", "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text


def test_keys_and_scopes(url):
    import heron

    search = {"queries": ["cat"], "k": 1}
    assert call(url, "POST", "/v1/collections/docs/search", search, key=None).status_code == 401
    assert call(url, "POST", "/v1/collections/docs/search", search, key="wrong").json()["error"]["code"] == "unauthorized"
    assert call(url, "POST", "/v1/collections/docs/search", search, key=READ).status_code == 200
    r = httpx.post(url + "/v1/collections/docs/search", json=search, headers={"X-API-Key": READ})
    assert r.status_code == 200
    r = call(url, "POST", "/v1/collections/docs/delete", {"ids": ["gz"]}, key=READ)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert httpx.get(url + "/healthz").status_code == 200  # operations stay open
    with pytest.raises(PermissionError, match="write"):
        heron.Client(url, api_key=READ).collection("docs").delete(["gz"])
    with pytest.raises(PermissionError):
        heron.Client(url).collection("docs")


def test_info_and_reports(url):
    info = call(url, "GET", "/v1/collections/docs", key=READ).json()
    assert info["name"] == "docs" and info["documents"] == len(DOCS) and "path" not in info
    assert "hybrid:dense+bm25" in info["retrievers"] and "bm25" in info["retrievers"]
    fields = {f["name"]: f for f in info["metadata_fields"]}
    assert fields["lang"]["type"] == "string" and "fr" in fields["lang"]["examples"]
    assert fields["year"]["type"] == "number"
    reps = call(url, "GET", "/v1/collections/docs/reports", key=READ).json()["reports"]
    assert reps == [{"name": "bench-codecs", "kind": "bench", "files": ["pareto.svg"],
                     "plot": "/v1/collections/docs/reports/bench-codecs/pareto.svg"}]
    svg = call(url, "GET", reps[0]["plot"], key=READ)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")


def _count(text, route, status):
    pat = rf'heron_http_requests_total{{method="GET",route="{re.escape(route)}",status="{status}"}} (\S+)'
    m = re.search(pat, text)
    return float(m.group(1)) if m else 0.0


def test_metrics_count_requests(url):
    before = _count(httpx.get(url + "/metrics").text, "/healthz", 200)
    for _ in range(3):
        httpx.get(url + "/healthz")
    text = httpx.get(url + "/metrics").text
    assert _count(text, "/healthz", 200) == before + 3
    assert 'heron_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/healthz"}' in text


def test_write_while_another_process_holds_the_lock_is_503_naming_it(served, monkeypatch):
    """A write that waited out another writer's lock answers 503 with Retry-After, naming the
    holder (heron.WriteLockTimeout), not a 500; reads keep working meanwhile."""
    import subprocess
    import sys

    url, coll = served
    code = (
        "import sys, time\nfrom heron.collection import Collection\n"
        "c = Collection.open(sys.argv[1])\nwith c._writer():\n"
        "    print('holding', flush=True)\n    time.sleep(30)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(coll.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "holding"
        monkeypatch.setenv("HERON_LOCK_TIMEOUT", "0.5")
        r = call(url, "POST", "/v1/collections/docs/add", {"ids": ["busy"], "texts": ["busy day"]})
        assert r.status_code == 503 and r.headers.get("retry-after") == "5", r.text
        err = r.json()["error"]
        assert err["code"] == "unavailable" and f"pid {p.pid}" in err["message"]
        assert call(url, "POST", "/v1/collections/docs/search", {"queries": ["cat"], "k": 1}).status_code == 200
    finally:
        p.kill()
        p.wait()


#: members of the in-process Collection a remote one does not have: opening/creating by path,
#: the resident encoder and snapshot objects, offline maintenance run where the folder is
IN_PROCESS_ONLY = {
    "open", "create", "encoder", "field_encoder", "artifact", "snapshot", "resolver", "retriever",
    "index_dir", "generation", "lock_timeout", "config", "set_config", "add_field", "backfill",
    "calibrate", "collect_garbage", "migrate", "queries", "update_index", "iter_documents",
    "bulk",  # a load held open across calls; over HTTP, add() takes the batches
}


def _public(cls):
    return {n for n in dir(cls) if not n.startswith("_")} | ({"__len__", "__contains__"} & set(dir(cls)))


@pytest.mark.parametrize("remote", ["sync", "async"])
def test_client_collection_mirrors_in_process_api(remote):
    """Every other method/property of Collection is on the remote collection, with the same
    parameter names in the same order (so code moves by changing one line)."""
    import inspect

    from heron.client._async import AsyncRemoteCollection
    from heron.client._sync import RemoteCollection

    cls = RemoteCollection if remote == "sync" else AsyncRemoteCollection
    wanted = _public(Collection) - IN_PROCESS_ONLY
    if remote == "async":  # a dunder cannot be awaited
        wanted -= {"__len__", "__contains__"}
    assert wanted - _public(cls) == set()
    for name in wanted:
        local, other = getattr(Collection, name), getattr(cls, name)
        if isinstance(local, property):
            assert isinstance(other, property), name
            continue
        assert list(inspect.signature(local).parameters) == list(inspect.signature(other).parameters), name


def test_remote_collection_describes_itself_and_closes(served):
    import heron

    url, coll = served
    with heron.Client(url, api_key=WRITE) as cl, cl.collection("docs") as c:
        assert (c.model, c.dim) == (coll.model, coll.dim) and set(c.fields) == set(coll.fields)
        with pytest.raises(ValueError, match="fields"):
            c.add(["x"], ids=["x"], fields={"splade": None})
        rec = c.create_index("declared", kind="bm25", build=False)
        assert rec["built"] is False and "declared" in [r["name"] for r in c.indexes()]
        assert c.drop_index("declared")

    async def go():
        cl = heron.AsyncClient(url, api_key=READ)
        async with await cl.collection("docs") as c:
            got = (c.model, c.dim)
        await cl.close()
        return got

    assert asyncio.run(go()) == (coll.model, coll.dim)


def test_cors_off_by_default_on_with_an_origin(url, tmp_path):
    from heron.server import create_app
    from heron.server.threaded import ThreadedServer

    pre = {"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"}
    r = httpx.options(url + "/v1/collections/docs/search", headers=pre)
    assert "access-control-allow-origin" not in r.headers
    r = httpx.post(url + "/v1/collections/docs/search", json={"queries": ["cat"], "k": 1},
                   headers={"Origin": "http://elsewhere.example", "X-API-Key": READ})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    Collection.create(tmp_path / "v.heron", model="none", dim=3).close()
    with ThreadedServer(create_app([tmp_path], cors_origins=["http://elsewhere.example"])) as srv:
        r = httpx.options(srv.url + "/v1/collections/v/search", headers=pre)
        assert r.headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_eval_report_listed_and_search_latency_per_route(served):
    url, coll = served
    import shutil

    rep = coll.path / "reports" / "eval-scifact"
    rep.mkdir(parents=True)
    (rep / "report.json").write_text('{"ndcg@10": 0.5}')
    try:
        reps = {r["name"]: r for r in call(url, "GET", "/v1/collections/docs/reports", key=READ).json()["reports"]}
        got = call(url, "GET", "/v1/collections/docs/reports/eval-scifact/report.json", key=READ).json()
    finally:
        shutil.rmtree(rep)
    assert reps["eval-scifact"] == {"name": "eval-scifact", "kind": "eval", "files": ["report.json"], "plot": None}
    assert got == {"ndcg@10": 0.5}
    call(url, "POST", "/v1/collections/docs/search", {"queries": ["cat"], "k": 1}, key=READ)
    text = httpx.get(url + "/metrics").text
    assert re.search(r'heron_http_request_duration_seconds_count\{method="POST",'
                     r'route="/v1/collections/\{name\}/search"\} [1-9]', text)


def test_min_relevance_over_http_matches_in_process(tmp_path, encoder):
    """A calibrated collection: ``min_relevance`` keeps the hits whose probability is over it,
    the same as in-process, and the score kind says ``probability``."""
    import heron
    from heron.capabilities.calibrated import calibrate
    from heron.server import create_app
    from heron.server.threaded import ThreadedServer

    topics = ["gzip compression", "cats purring", "json parsing", "tar archives", "regex patterns",
              "network sockets", "sql joins", "http caching", "unit testing", "git branches"]
    angles = ["history of", "bugs in", "speed of", "tutorial on", "security of"]
    texts = [f"{a} {t}" for t in topics for a in angles]
    coll = Collection.create(tmp_path / "cal.heron", encoder=encoder)
    coll.add(texts, ids=[f"d{i}" for i in range(len(texts))])
    queries = texts[:40]  # each query's own document is relevant (40 positives, 240 pairs)
    calibrate(coll, queries, [f"q{i}" for i in range(40)], {f"q{i}": {f"d{i}": 1} for i in range(40)}, depth=6)
    held_out = texts[40:]
    local = coll.search(held_out, k=6, min_relevance=0.3)
    coll.close()
    with ThreadedServer(create_app([tmp_path], encoders={encoder.name: encoder})) as srv:
        remote = heron.Client(srv.url).collection("cal").search(held_out, k=6, min_relevance=0.3)
    assert remote.info["score_kind"] == "probability"
    assert remote.doc_ids() == local.doc_ids()
    assert np.allclose(remote.scores[np.isfinite(remote.scores)], local.scores[np.isfinite(local.scores)], atol=1e-5)
    assert all(s >= 0.3 for s in remote.scores[np.isfinite(remote.scores)])
    kept = int(np.isfinite(remote.scores).sum())
    assert 0 < kept < remote.scores.size  # the threshold kept some hits and dropped others


@pytest.mark.parametrize("using", ["rocchio?depth=6", "hybrid:dense+bm25?k1=1.5", "bm25"])
def test_pipeline_specs_over_http_equal_in_process(served, using):
    """A registered pipeline (dense % depth >> Rocchio) and a hybrid with per-part parameters,
    by their spec string, rank as the in-process collection does."""
    import heron

    url, coll = served
    remote = heron.Client(url, api_key=READ).collection("docs").search(QUERIES, k=3, using=using)
    local = coll.search(QUERIES, k=3, using=using)
    assert remote.doc_ids() == local.doc_ids()
    assert np.allclose(remote.scores, local.scores, atol=1e-5)
