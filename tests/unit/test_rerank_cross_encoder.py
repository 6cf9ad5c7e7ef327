"""Cross-encoder plumbing. No cross-encoder ships offline, so this test builds a tiny randomly
initialised BERT sequence classifier (and a word-level tokenizer), saves it to ``tmp_path`` and
loads it through the real ``sentence_transformers.CrossEncoder`` path. Its scores are random:
the test checks the plumbing (loading, batching, padding, re-sorting), not ranking quality."""

import numpy as np
import pytest
from tests._after_fixtures import DOCS, HashEncoder

from heron.pipeline import Queries
from heron.rerank import CrossEncoderReranker, KeyedTexts, KeyedVectors
from heron.rerank.vectors import VectorSearch

pytest.importorskip("sentence_transformers")


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-ce")
    words = sorted(
        {w for d in DOCS for w in d.split()} | {"python", "cat", "numpy", "command", "line"}
    )
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=1,
    )
    BertForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_cross_encoder_reranks_without_dropping(tiny_cross_encoder):
    enc = HashEncoder()
    keys = np.arange(len(DOCS), dtype=np.int64)
    kv = KeyedVectors(keys, enc.encode_documents(DOCS), model=enc.name)
    ce = CrossEncoderReranker(
        tiny_cross_encoder, texts=KeyedTexts(DOCS), batch_size=3, max_length=32
    )
    q = Queries(["python command line", "cat mat"])
    first = (VectorSearch(kv, enc) % 5).search(q)
    out = ce.transform(q, first)
    for a, b in zip(first.keys, out.keys):
        assert sorted(a.tolist()) == sorted(b.tolist())
    assert np.all(np.diff(out.scores, axis=1) <= 0)
    # the scores are the model's own: re-predicting one pair gives the same number
    top = int(out.keys[0, 0])
    direct = ce.model.predict([(q.texts[0], DOCS[top])])
    assert np.isclose(float(np.ravel(direct)[0]), out.scores[0, 0], atol=1e-5)
    res = (VectorSearch(kv, enc) % 4 >> ce % 2).search(["numpy arrays"])
    assert res.keys.shape == (1, 2)
