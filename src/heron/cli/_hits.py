"""What ``heron search`` shows of a hit: a labelled score, a snippet around the query terms.

Scores of different retrievers live on different scales (cosine 0.45, BM25 3.7, RRF 0.032,
a calibrated probability 0.81), so every printed score carries the label of its kind, taken
from :attr:`heron.results.Results.info` when the retriever records itself there, else from the
retriever spec.
"""

from __future__ import annotations

import re
from typing import Any

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
}
_WORD = re.compile(r"\w+", re.UNICODE)


def score_label(spec: str, info: dict | None = None, *, model: str | None = None) -> str:
    """The kind of score a retriever ``spec`` returns (``cosine``, ``bm25``, ``rrf`` ...).

    ``info`` is the :class:`~heron.results.Results` ``info`` of the search: a calibrated
    threshold stage (it records ``counts``) makes the score a ``probability``; a stage that
    names itself in ``info["retriever"]`` is labelled by that name. Dense scores of a
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
        return "inner product"
    return label


def query_terms(query: str) -> list[str]:
    """Lower-cased words of ``query`` worth highlighting (2+ characters), in order, unique."""
    words = [w.lower() for w in _WORD.findall(query)]
    keep = [w for w in words if len(w) > 2] or [w for w in words if len(w) > 1] or words
    return list(dict.fromkeys(keep))


def snippet(text: str, query: str, width: int = 200) -> tuple[str, list[tuple[int, int]]]:
    """A window of about ``width`` characters of ``text`` around the query terms.

    Whitespace is collapsed; the window holds the most distinct query terms (the earliest such
    window on ties; the start of the text when no term occurs), cut at word boundaries, with
    ``…`` where text was cut. Terms match at word starts, case-insensitively (``pars`` matches
    "parses"). Returns the snippet and the ``(start, end)`` character spans of the matches in it.
    """
    flat = " ".join(text.split())
    terms = query_terms(query)
    if not flat:
        return "", []
    pat = (
        re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\w*", re.IGNORECASE)
        if terms
        else None
    )
    matches = [(m.start(), m.end(), m.group(1).lower()) for m in pat.finditer(flat)] if pat else []
    start = 0
    if matches and len(flat) > width:
        best = (-1, 0)
        for s, _, _ in matches:
            lo = max(0, s - width // 4)
            got = {t for a, b, t in matches if a >= lo and b <= lo + width}
            if len(got) > best[0]:
                best = (len(got), lo)
        start = best[1]
    end = min(len(flat), start + width)
    if start > 0:  # move to the next word start
        sp = flat.find(" ", start)
        start = sp + 1 if 0 <= sp < end else start
    if end < len(flat):  # cut at the last space inside the window
        sp = flat.rfind(" ", start, end)
        end = sp if sp > start else end
    pre, post = ("…" if start > 0 else ""), ("…" if end < len(flat) else "")
    out = pre + flat[start:end] + post
    spans = [
        (a - start + len(pre), b - start + len(pre))
        for a, b, _ in matches
        if a >= start and b <= end
    ]
    return out, spans


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
) -> dict[str, Any]:
    """One hit as ``heron search --json`` prints it."""
    snip, spans = snippet(text, query, width)
    rec: dict[str, Any] = {
        "rank": rank,
        "id": doc_id,
        "score": score,
        "metadata": metadata,
        "snippet": snip,
        "highlights": [list(s) for s in spans],
    }
    if full_text:
        rec["text"] = text
    return rec
