"""``heron serve``'s safety checks and the server's life cycle, on a model-free collection
(precomputed vectors: no model to load, so these stay fast)."""

from __future__ import annotations

import hashlib
import threading
import time

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from heron.cli.main import main  # noqa: E402
from heron.collection import Collection  # noqa: E402


def test_hash_key_prints_the_key_file_line(capsys):
    assert main(["serve", "--hash-key", "s3cret", "--scopes", "write"]) == 0
    digest, scopes = capsys.readouterr().out.split()
    assert digest == hashlib.sha256(b"s3cret").hexdigest() and scopes == "read,write"


def test_refuses_open_api_off_loopback(tmp_path, capsys):
    Collection.create(tmp_path / "v.heron", model="none", dim=3).close()
    assert main(["serve", str(tmp_path), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("heron: error: refusing to serve without API keys") and err.count("\n") == 1


def test_bad_key_file_is_one_line(tmp_path, capsys):
    Collection.create(tmp_path / "v.heron", model="none", dim=3).close()
    keys = tmp_path / "keys.txt"
    keys.write_text("not-a-digest read\n")
    assert main(["serve", str(tmp_path), "--api-key-file", str(keys)]) == 2
    assert "make the line with heron serve --hash-key" in capsys.readouterr().err


def test_lifecycle_vectors_and_shutdown(tmp_path):
    """A model-free collection served: vectors in and out; in-flight requests finish on
    shutdown, and the lifespan closes the collections."""
    from heron.server import create_app
    from heron.server.threaded import ThreadedServer

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # each vector is its own nearest neighbour
    coll = Collection.create(tmp_path / "vec.heron", model="none", dim=8)
    coll.add([f"doc {i}" for i in range(200)], ids=[f"d{i}" for i in range(200)], vectors=x)
    app = create_app(tmp_path)
    srv = ThreadedServer(app).start()
    url = srv.url
    assert httpx.get(url + "/readyz").json() == {"status": "ready", "collections": 1}
    r = httpx.post(url + "/v1/collections/vec/search", json={"vectors": x[:3].tolist(), "k": 5, "snippet": False})
    body = r.json()
    assert body["score_kind"] == "inner product"
    assert [row["hits"][0]["id"] for row in body["results"]] == ["d0", "d1", "d2"]
    assert [[h["id"] for h in row["hits"]] for row in body["results"]] == coll.search(x[:3], k=5).doc_ids()
    r = httpx.post(url + "/v1/collections/vec/add", json={"ids": ["t"], "texts": ["text only"]})
    assert r.status_code == 400 and r.json()["error"]["field"] == "vectors"
    # shut down while requests are in flight: each one gets its full answer
    got: list[int] = []

    def hammer():
        with httpx.Client(base_url=url, timeout=30) as h:
            for _ in range(20):
                try:
                    got.append(h.post("/v1/collections/vec/search", json={"vectors": x.tolist()[:64], "k": 50}).status_code)
                except httpx.HTTPError:
                    return

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    while len(got) < 4 and any(t.is_alive() for t in threads):
        time.sleep(0.01)
    srv.stop()
    for t in threads:
        t.join()
    assert got and set(got) == {200}
    assert app.state.ready is False and app.state.catalog.open == {}
    coll.close()


def test_heron_serve_process_with_keys(tmp_path):
    """``heron serve`` as a process: keys enforced, then SIGTERM stops it cleanly (status 0)."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    Collection.create(tmp_path / "v.heron", model="none", dim=3).close()
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# writer\n{hashlib.sha256(b'k1').hexdigest()} write\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "heron", "serve", str(tmp_path), "--port", str(port), "--api-key-file", str(keys),
         "--log-json"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "heron serve did not become ready"
            time.sleep(0.2)
        assert httpx.get(url + "/v1/collections").status_code == 401
        r = httpx.post(url + "/v1/collections/v/add", headers={"X-API-Key": "k1"},
                       json={"ids": ["a"], "texts": ["t"], "vectors": [[1.0, 0.0, 0.0]]})
        assert r.status_code == 200 and r.json()["count"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: status -SIGTERM
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    err = proc.stderr.read()
    assert "collections closed" in err, err
    import json

    access = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    add = next(a for a in access if a["path"] == "/v1/collections/v/add")
    assert add["route"] == "/v1/collections/{name}/add" and add["status"] == 200 and add["method"] == "POST"
    assert isinstance(add["latency_ms"], float) and add["latency_ms"] > 0
    assert Collection.open(tmp_path / "v.heron").get(["a"])[0].text == "t"
