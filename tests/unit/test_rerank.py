import numpy as np
import pytest
from tests._after_fixtures import DOCS, HashEncoder

from heron.pipeline import Queries
from heron.rerank import E2Rank, KeyedTexts, KeyedVectors, Rocchio
from heron.rerank.vectors import VectorSearch
from heron.results import Results


@pytest.fixture()
def setup():
    enc = HashEncoder()
    keys = np.arange(100, 100 + len(DOCS), dtype=np.int64)[::-1].copy()  # non-trivial key order
    kv = KeyedVectors(keys, enc.encode_documents(DOCS), model=enc.name)
    texts = KeyedTexts(lambda ks: [DOCS[list(keys).index(int(k))] for k in ks])
    return enc, kv, texts


def _same_candidates(a: Results, b: Results) -> None:
    for ra, rb in zip(a.keys, b.keys):
        real_a, real_b = ra[ra >= 0], rb[rb >= 0]
        assert len(set(real_b.tolist())) == len(real_b)  # no duplicates
        assert sorted(real_a.tolist()) == sorted(real_b.tolist())  # nothing dropped or added


@pytest.mark.parametrize("make", ["e2rank", "e2rank_alpha", "rocchio", "rocchio_neg"])
def test_reranker_never_drops_or_duplicates(setup, make):
    enc, kv, texts = setup
    stage = {
        "e2rank": lambda: E2Rank(encoder=enc, vectors=kv, texts=texts, num_feedback=2),
        "e2rank_alpha": lambda: E2Rank(
            encoder=enc, vectors=kv, texts=texts, num_feedback=3, alpha=0.5
        ),
        "rocchio": lambda: Rocchio(encoder=enc, vectors=kv, num_feedback=2),
        "rocchio_neg": lambda: Rocchio(
            encoder=enc, vectors=kv, num_feedback=1, gamma=0.3, num_negative=2
        ),
    }[make]()
    dense = VectorSearch(kv, enc)
    q = Queries(["python command line", "cat on a mat", "numpy"])
    first = (dense % 5).search(q)
    # a padded row: drop the last two hits of query 1
    keys, scores = first.keys.copy(), first.scores.copy()
    keys[1, 3:], scores[1, 3:] = -1, -np.inf
    first = Results(keys, scores)
    out = stage.transform(q, first)
    _same_candidates(first, out)
    assert np.all(np.diff(np.where(np.isfinite(out.scores), out.scores, -1e9), axis=1) <= 1e-6)
    # as a pipeline stage
    res = (dense % 6 >> stage % 4).search(["python command line"])
    assert res.keys.shape == (1, 4)


def test_e2rank_prompt_format_and_memo(setup):
    enc, kv, texts = setup
    st = E2Rank(
        encoder=enc,
        vectors=kv,
        texts=texts,
        num_feedback=2,
        template="Q: {query}\n{docs}",
        doc_words=2,
    )
    q = Queries(["cat"])
    first = (VectorSearch(kv, enc) % 4).search(q)
    (p,) = st.prompts(q, first)
    lines = p.split("\n")
    assert lines[0] == "Q: cat" and len(lines) == 3
    assert lines[1].startswith("[1] ") and len(lines[1].split()) == 3
    calls = enc.calls
    st.transform(q, first)
    st.transform(q, first)
    assert enc.calls == calls + 1  # second call served from the memo


def test_rerank_bad_input(setup):
    enc, kv, texts = setup
    with pytest.raises(ValueError, match="num_feedback"):
        E2Rank(encoder=enc, vectors=kv, texts=texts, num_feedback=0)
    with pytest.raises(ValueError, match="alpha"):
        E2Rank(encoder=enc, vectors=kv, texts=texts, alpha=2)
    with pytest.raises(ValueError, match="template"):
        E2Rank(encoder=enc, vectors=kv, texts=texts, template="{query}")
    with pytest.raises(ValueError, match="were made by"):
        Rocchio(encoder=HashEncoder(name="other"), vectors=kv)
    with pytest.raises(ValueError, match="dimension"):
        Rocchio(encoder=HashEncoder(dim=16), vectors=KeyedVectors(kv.keys, kv.vectors))
    with pytest.raises(ValueError, match="retriever before"):
        Rocchio(encoder=enc, vectors=kv).transform(Queries(["x"]), None)
    with pytest.raises(KeyError):
        kv.lookup(np.array([[5]]))
