"""What the sync and async clients share: request bodies, error mapping, and turning a search
response back into the in-process :class:`heron.Results`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from heron.results import Results

#: HTTP status -> the exception the in-process collection raises for the same mistake
ERRORS: dict[int, type[Exception]] = {
    400: ValueError, 409: ValueError, 413: ValueError, 422: ValueError,
    401: PermissionError, 403: PermissionError, 404: KeyError,
}


def raise_for(status: int, body: Any, text: str = "") -> None:
    """Raise the error a response with ``status`` and JSON ``body`` stands for (none if 2xx)."""
    if status < 400:
        return
    err = body.get("error") if isinstance(body, dict) else None
    msg = err.get("message", "") if isinstance(err, dict) else (text[:500] or f"HTTP {status}")
    if isinstance(err, dict) and err.get("field"):
        msg = f"{msg} (field {err['field']})"
    raise ERRORS.get(status, RuntimeError)(f"{msg} [HTTP {status}]")


def headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def documents_body(
    texts: Sequence[str], ids: Sequence[str] | None, metadata: Any, vectors: Any, fields: Any = None
) -> dict[str, Any]:
    if fields is not None:
        raise ValueError(
            f"precomputed field values (fields={sorted(fields)!r}) are not sent over HTTP; "
            "let the server encode the field, or add them in-process with heron.Collection"
        )
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got a single str; wrap it in a list")
    body: dict[str, Any] = {"texts": list(texts), "ids": None if ids is None else [str(i) for i in ids]}
    if metadata is not None:
        body["metadata"] = [None if m is None else dict(m) for m in metadata]
    if vectors is not None:
        body["vectors"] = np.asarray(vectors, dtype=np.float64).tolist()
    return body


def search_body(
    queries: Any, k: int, using: Any, retriever: str | None, filter: Any,
    min_relevance: float | None, min_hits: int, params: Mapping[str, Any],
) -> dict[str, Any]:
    if using is not None and retriever is not None and using != retriever:
        raise ValueError(f"pass using= or retriever=, not both ({using!r} vs {retriever!r})")
    using = using if using is not None else (retriever or "dense")
    if not isinstance(using, str):
        raise TypeError("a remote collection searches with a spec string (using='hybrid:dense+bm25'), not a Stage")
    body: dict[str, Any] = {"k": k, "using": using, "with_metadata": True, "with_text": True, "snippet": False}
    if isinstance(queries, str):
        body["queries"] = [queries]
    elif isinstance(queries, np.ndarray) or (isinstance(queries, list) and queries and not isinstance(queries[0], str)):
        v = np.asarray(queries, dtype=np.float32)
        body["vectors"] = (v[None, :] if v.ndim == 1 else v).tolist()
    else:
        body["queries"] = list(queries)
    if filter is not None:
        body["filter"] = filter
    if min_relevance is not None:
        body["min_relevance"] = min_relevance
    if min_hits:
        params = {**params, "min_hits": min_hits}
    if params:
        body["params"] = dict(params)
    return body


def results_from(resp: Mapping[str, Any], k: int) -> Results:
    """A :class:`Results` of shape ``(n_queries, k)`` from a search response.

    Keys are local to this result (the server's internal keys stay on the server); the resolver
    maps them back to document ids and :meth:`Results.hits` reads the returned metadata/text.
    """
    rows = resp["results"]
    keys = np.full((len(rows), k), -1, dtype=np.int64)
    scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
    ids: list[str] = []
    docs: dict[str, _Doc] = {}
    index: dict[str, int] = {}
    for i, row in enumerate(rows):
        for j, h in enumerate(row["hits"][:k]):
            key = index.setdefault(h["id"], len(ids))
            if key == len(ids):
                ids.append(h["id"])
            keys[i, j] = key
            scores[i, j] = h["score"] if h.get("score") is not None else -np.inf
            docs[h["id"]] = _Doc(h.get("text"), h.get("metadata") or {})
    table = np.array(ids, dtype=object)
    info = {**resp.get("info", {}), "score_kind": resp.get("score_kind"), "took_ms": resp.get("took_ms")}
    return Results(
        keys, scores, lambda ks: [str(x) for x in table[np.asarray(ks, dtype=np.int64)]], info,
        lambda wanted: [docs.get(w) for w in wanted],
    )


class _Doc:
    __slots__ = ("text", "metadata")

    def __init__(self, text: str | None, metadata: dict) -> None:
        self.text, self.metadata = text, metadata


def documents_from(resp: Mapping[str, Any]) -> list[Any]:
    from heron.collection import Document

    return [None if d is None else Document(d["id"], d["text"], d["metadata"]) for d in resp["documents"]]


class Described:
    """``model``, ``dim`` and ``fields`` of a remote collection, read from its info when opened
    (as the in-process :class:`heron.Collection` reads them from its manifest)."""

    _info: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self._info["model"])

    @property
    def dim(self) -> int:
        return int(self._info["dim"])

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        return dict(self._info.get("fields") or {})


def index_body(name: str | None, kind: str, on: str | None, build: bool, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": name, "kind": kind, "on": on, "build": bool(build), "params": dict(params) or None}
