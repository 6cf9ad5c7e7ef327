"""Index sweep (``heron bench --indexes``), index-aware recommendation and the ``ann`` retriever."""

from __future__ import annotations

import json

import numpy as np
import pytest

import heron
from heron.bench.index_sweep import (
    default_nlist,
    latency_scale,
    parse_index_spec,
    run_index_sweep,
    search_grid,
)
from heron.bench.pareto import pareto_front
from heron.bench.recommend import recommend
from heron.capabilities.ann import write_index_config
from heron.pipeline import Queries

D = 24


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, D))
    x = centres[rng.integers(0, 40, n)] + 0.6 * rng.standard_normal((n, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def rows():
    x, q = clustered(4000, 0), clustered(40, 1)
    return run_index_sweep(
        x, q, indexes=["flat:fp32", "hnsw:fp32", "ivf:int8", "ivf:bin"], n_latency=5, progress=False
    )


def test_parse_index_spec():
    assert parse_index_spec("hnsw") == ("hnsw", "fp32")
    assert parse_index_spec("IVF:int8") == ("ivf", "int8")
    with pytest.raises(ValueError, match="unknown index type 'tree'"):
        parse_index_spec("tree:fp32")
    assert default_nlist(1_000_000) == 4096 and default_nlist(1) == 8
    assert [p["ef_search"] for p in search_grid("hnsw", "fp32", 100)] == [16, 32, 64, 128]
    assert {p["oversample"] for p in search_grid("ivf", "bin", 10_000)} == {10, 20}
    assert latency_scale("flat", 10) == 10 and latency_scale("ivf", 100) == 10
    assert 1 < latency_scale("hnsw", 100) < 2


def test_index_sweep_rows(rows):
    kinds = {(r["index"], r["codec"]) for r in rows}
    assert kinds == {("flat", "fp32"), ("hnsw", "fp32"), ("ivf", "int8"), ("ivf", "bin")}
    flat = [r for r in rows if r["index"] == "flat"]
    assert len(flat) == 1 and flat[0]["recall10_exact"] == 1.0  # exact scan = the oracle
    for r in rows:
        assert 0 <= r["recall10_exact"] <= 1 and r["memory_bytes"] > 0 and r["latency_ms"] > 0
        json.dumps(r)  # the report is JSON
    ivf = sorted(
        (r for r in rows if r["index"] == "ivf" and r["codec"] == "int8" and r["oversample"] == 2),
        key=lambda r: r["params"]["nprobe"],
    )
    rec = [r["recall10_exact"] for r in ivf]
    assert rec == sorted(rec) and rec[-1] > rec[0]  # probing more lists never loses neighbours
    binr = [r for r in rows if r["codec"] == "bin"]
    assert min(r["bytes_per_vector"] for r in binr) < min(
        r["bytes_per_vector"] for r in rows if r["codec"] == "int8"
    )


def test_recommend_index_rows(rows):
    budget = int(np.median([r["memory_bytes"] for r in rows]))
    rec = recommend(rows, memory=budget, min_quality=0.9, latency_ms=1e6)
    assert rec.row is not None
    assert rec.row["memory_bytes"] <= budget and rec.row["recall10_exact"] >= 0.9
    keys = [("memory_bytes", "min"), ("recall10_exact", "max"), ("latency_ms", "min")]
    front = [rows[i] for i in pareto_front(rows, keys)]
    assert any(r["label"] == rec.row["label"] for r in front)
    cfg = rec.config
    assert cfg["kind"] == rec.row["index"] and cfg["codec"] == rec.row["codec"]
    assert rec.row["label"] in " ".join(rec.explanation)
    grown = recommend(rows, min_quality=0.5, n_docs=40_000)  # sample of 4000 -> 10x corpus
    assert any("HNSW walks as log n" in e for e in grown.extrapolated)


def test_ann_retriever_uses_written_config(tmp_path):
    x = clustered(500, 2)
    c = heron.Collection.create(tmp_path / "c", model="none", dim=D)
    c.add([f"t{i}" for i in range(500)], ids=[f"d{i}" for i in range(500)], vectors=x)
    qv = clustered(5, 3)
    qs = Queries([f"q{i}" for i in range(5)], vectors={"none": qv})
    with pytest.raises(ValueError, match="no index configuration"):
        c.retriever("ann")
    with pytest.raises(ValueError, match="unknown parameter"):
        write_index_config(c, {"kind": "hnsw", "nprobe": 3})
    with pytest.raises(ValueError, match="needs 'kind'"):
        write_index_config(c, {"kind": "btree"})
    cfg = write_index_config(c, {"kind": "hnsw", "codec": "fp32", "M": 8, "ef_search": 200})
    assert c.config["index"] == cfg
    got = c.retriever("ann").search(qs)
    want = c.retriever("hnsw", M=8, ef_search=200).search(qs)
    np.testing.assert_array_equal(got.keys[:, :10], want.keys[:, :10])
    exact = c.retriever("dense").search(qs)  # 500 vectors, ef 200: the graph finds them all
    np.testing.assert_array_equal(got.keys[:, :10], exact.keys[:, :10])
    c.close()


def test_hnsw_memory_counts_vectors_and_links():
    from heron.index import make_index

    x = clustered(300, 4)
    for codec, code_bytes in (("fp32", 4 * D), ("int8", D)):
        idx = make_index("hnsw", codec=codec, M=8).build(x, np.arange(300))
        per = idx.memory_bytes() / 300
        assert code_bytes + 2 * 8 * 4 <= per < code_bytes + 2 * 8 * 4 + 64  # codes + layer-0 links
