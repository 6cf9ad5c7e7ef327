"""What ``heron search`` shows of a hit: a labelled score, a snippet around the query terms.

Scores of different retrievers live on different scales (cosine 0.45, BM25 3.7, RRF 0.032,
a calibrated probability 0.81), so every printed score carries the label of its kind, taken
from :attr:`heron.results.Results.info` when the retriever records itself there, else from the
retriever spec.
"""

from __future__ import annotations

from typing import Any

from heron.results import query_terms, snippet  # noqa: F401  (one snippet for the CLI, Python and HTTP)

#: retriever name -> what its score is
SCORE_LABELS = {
    "dense": "cosine",
    "flat": "cosine",
    "ivf": "cosine",
    "hnsw": "cosine",
    "ann": "cosine",
    "compressed": "cosine",
    "mapped": "cosine",
    "rocchio": "cosine",
    "e2rank": "cosine",
    "bm25": "bm25",
    "splade": "splade",
    "calibrated": "probability",
    "cross_encoder": "cross-encoder",
    "maxsim": "maxsim",
    "muvera": "maxsim",
    "pooled": "maxsim",
    "passages": "cosine",
    "passages_bm25": "bm25",
    "passages_splade": "splade",
}


def score_label(spec: str, info: dict | None = None, *, model: str | None = None) -> str:
    """The kind of score a retriever ``spec`` returns (``cosine``, ``bm25``, ``rrf`` ...).

    ``info`` is the :class:`~heron.results.Results` ``info`` of the search: a calibrated
    threshold stage (it records ``counts``) makes the score a ``probability``; a stage that
    names itself in ``info["retriever"]`` is labelled by that name. A passage retriever's score
    is its passages' (``cosine`` for the max or mean, ``cosine sum`` for ``agg=sum``). Dense scores of a
    collection without a model (``model="none"``, vectors supplied by the caller) are labelled
    ``inner product``, as nothing says those vectors are normalised.
    """
    info = info or {}
    if spec.startswith("hybrid:"):
        return "rrf"
    if spec.startswith("fusion:"):
        return "fused"
    name = spec.partition("?")[0]
    if "counts" in info or name == "calibrated":
        return "probability"
    label = SCORE_LABELS.get(str(info.get("retriever", "")), SCORE_LABELS.get(name, "score"))
    if label == "cosine" and model == "none":
        label = "inner product"
    if name.startswith("passages") and "agg=sum" in spec.partition("?")[2]:
        label += " sum"  # the sum of the m best passages' scores, no longer on their scale
    return label


def highlight(
    text: str, spans: list[tuple[int, int]], on: str = "\033[1m", off: str = "\033[0m"
) -> str:
    """``text`` with each span wrapped in ``on``/``off`` (bold on a terminal by default)."""
    out, last = [], 0
    for a, b in spans:
        out += [text[last:a], on, text[a:b], off]
        last = b
    out.append(text[last:])
    return "".join(out)


def hit_record(
    rank: int,
    doc_id: str,
    score: float,
    text: str,
    metadata: dict[str, Any],
    query: str,
    *,
    width: int = 200,
    full_text: bool = False,
    passage: tuple[int, int, int] | None = None,
) -> dict[str, Any]:
    """One hit as ``heron search --json`` prints it.

    ``passage`` is ``(index, start, end)`` of the passage that matched (passage retrievers):
    the snippet is then taken from that passage, and the record names it."""
    source = text if passage is None else text[passage[1] : passage[2]]
    snip, spans = snippet(source, query, width)
    rec: dict[str, Any] = {
        "rank": rank,
        "id": doc_id,
        "score": score,
        "metadata": metadata,
        "snippet": snip,
        "highlights": [list(s) for s in spans],
    }
    if passage is not None:
        rec["passage"] = {"index": passage[0], "start": passage[1], "end": passage[2]}
    if full_text:
        rec["text"] = text
    return rec
