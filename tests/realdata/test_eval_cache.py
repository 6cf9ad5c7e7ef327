"""The dataset encoding caches of :mod:`heron.eval.cache` (sparse and token vectors) on real text."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from heron.eval import data_root, load_beir
from heron.eval.cache import (
    cache_dir,
    cached_token_ids,
    cached_token_vectors,
    dataset_sparse,
)


@pytest.fixture()
def small_scifact(tmp_path, monkeypatch):
    """The first 40 SciFact documents with all test queries (unknown judged docs dropped)."""
    src = data_root() / "scifact"
    if not src.is_dir():
        pytest.skip(f"SciFact not found under {data_root()}")
    monkeypatch.setenv("HERON_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "scifact-small"
    (root / "qrels").mkdir(parents=True)
    with open(src / "corpus.jsonl", encoding="utf-8") as f:
        (root / "corpus.jsonl").write_text("".join(itertools.islice(f, 40)), encoding="utf-8")
    (root / "queries.jsonl").write_text((src / "queries.jsonl").read_text(encoding="utf-8"))
    (root / "qrels" / "test.tsv").write_text((src / "qrels" / "test.tsv").read_text())
    ds = load_beir(root, strict=False)
    assert len(ds.doc_ids) == 40 and ds.split("test")[0]
    return ds


def test_dataset_sparse_matches_the_encoder_and_is_reused(small_scifact):
    sp = pytest.importorskip("scipy.sparse")
    from heron.encoders.splade import SpladeEncoder

    enc = SpladeEncoder()
    first = dataset_sparse(small_scifact, enc, split="test", progress=False)
    assert sp.issparse(first["doc_vecs"]) and first["doc_vecs"].shape == (40, enc.vocab_size)
    direct = sp.csr_matrix(enc.encode_documents(small_scifact.documents()), dtype=np.float32)
    np.testing.assert_allclose(first["doc_vecs"].toarray(), direct.toarray(), rtol=1e-5, atol=1e-6)
    files = sorted(p.name for p in cache_dir().glob("*.npy"))
    assert len(files) == 6  # nnz / idx / val of documents and of queries
    again = dataset_sparse(small_scifact, enc, split="test", progress=False)
    assert sorted(p.name for p in cache_dir().glob("*.npy")) == files
    assert (again["doc_vecs"] != first["doc_vecs"]).nnz == 0
    assert (again["query_vecs"] != first["query_vecs"]).nnz == 0
    assert again["query_ids"] == first["query_ids"] == small_scifact.split("test")[0]


def test_cached_token_vectors_and_ids_align(small_scifact, encoder):
    data = cached_token_vectors(small_scifact, encoder, split="test", progress=False)
    docs = data["docs"]
    assert len(docs) == 40 and len(data["query_tokens"]) == len(data["query_ids"])
    want = encoder.encode_tokens(small_scifact.documents()[:3])
    for i in range(3):
        np.testing.assert_allclose(np.asarray(docs[i], dtype=np.float32), want[i], atol=2e-3)
    ids = cached_token_ids(small_scifact, encoder, docs)
    assert ids.shape == (docs.values.shape[0],) and ids.dtype == np.int32
    assert (ids >= 0).all()
    again = cached_token_vectors(small_scifact, encoder, split="test", progress=False)
    np.testing.assert_array_equal(np.asarray(again["docs"].values), np.asarray(docs.values))
