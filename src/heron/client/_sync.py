"""The synchronous client: :class:`Client` and its :class:`RemoteCollection`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from heron.client import _common as c
from heron.results import Results


class Client:
    """A heron server at ``url`` (``heron serve``), with an optional API key.

    ``Client(url).collection(name)`` has the methods and return types of the in-process
    :class:`heron.Collection` (``add``/``upsert``/``delete``/``get``/``search`` -> :class:`heron.Results`),
    so code moves between embedded and remote by changing the line that opens the collection.
    Errors come back as ``ValueError`` (bad input, 400/409/413/422), ``KeyError`` (404),
    ``PermissionError`` (401/403) with the server's message.
    """

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        from heron._deps import require

        httpx = require("httpx", extra="server", purpose="heron.Client")
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=c.headers(api_key), timeout=timeout)

    def request(self, method: str, path: str, json: Any = None) -> Any:
        r = self._http.request(method, path, json=json)
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
        c.raise_for(r.status_code, body, r.text)
        return body

    def collection(self, name: str) -> RemoteCollection:
        """The collection ``name`` on the server (checked: ``KeyError`` if it does not exist)."""
        return RemoteCollection(self, name, self.request("GET", f"/v1/collections/{name}"))

    def collections(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/collections")["collections"]

    def create_collection(self, name: str, *, model: str | None = None, dim: int | None = None) -> RemoteCollection:
        info = self.request("POST", "/v1/collections", {"name": name, "model": model, "dim": dim})
        return RemoteCollection(self, name, info)

    def drop_collection(self, name: str) -> bool:
        return bool(self.request("DELETE", f"/v1/collections/{name}")["dropped"])

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/readyz")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RemoteCollection(c.Described):
    """A collection on a heron server; same methods and return types as :class:`heron.Collection`.

    ``model``, ``dim`` and ``fields`` are those of the collection when it was opened; ``close()``
    (or ``with``) closes nothing on the server, the collection stays served.
    """

    def __init__(self, client: Client, name: str, info: dict[str, Any] | None = None) -> None:
        self.client, self.name = client, name
        self._base = f"/v1/collections/{name}"
        self._info = info if info is not None else client.request("GET", self._base)

    def close(self) -> None:
        """Nothing to release (the client's connection pool is :meth:`Client.close`'s)."""

    def __enter__(self) -> RemoteCollection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, op: str, body: Any = None) -> Any:
        return self.client.request("POST", f"{self._base}/{op}", body)

    def add(self, texts: Sequence[str], *, ids: Sequence[str] | None = None, metadata: Any = None,
            vectors: Any = None, fields: Any = None, progress: bool | None = None) -> np.ndarray:
        """Add documents; returns their new keys, shape ``(n,)`` (the server's internal keys)."""
        return np.asarray(self._post("add", c.documents_body(texts, ids, metadata, vectors, fields))["keys"], np.int64)

    def upsert(self, texts: Sequence[str], *, ids: Sequence[str], metadata: Any = None,
               vectors: Any = None, fields: Any = None, progress: bool | None = None) -> np.ndarray:
        return np.asarray(self._post("upsert", c.documents_body(texts, ids, metadata, vectors, fields))["keys"], np.int64)

    def delete(self, ids: Sequence[str] | str) -> int:
        ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
        return int(self._post("delete", {"ids": ids})["deleted"])

    def get(self, ids: Sequence[str] | str) -> list[Any]:
        ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
        return c.documents_from(self._post("get", {"ids": ids}))

    def __contains__(self, doc_id: str) -> bool:
        return self.get([doc_id])[0] is not None

    def __len__(self) -> int:
        return int(self.info()["documents"])

    def search(self, queries: Any, k: int = 10, *, using: str | None = None, retriever: str | None = None,
               filter: Mapping[str, Any] | None = None, min_relevance: float | None = None,
               min_hits: int = 0, **params: Any) -> Results:
        """Search; returns :class:`heron.Results` of shape ``(n_queries, k)`` (see ``Collection.search``)."""
        body = c.search_body(queries, k, using, retriever, filter, min_relevance, min_hits, params)
        return c.results_from(self._post("search", body), k)

    def info(self) -> dict[str, Any]:
        return self.client.request("GET", self._base)

    def indexes(self) -> list[dict[str, Any]]:
        return self.client.request("GET", f"{self._base}/indexes")["indexes"]

    def create_index(self, name: str | None = None, *, kind: str, on: str | None = None,
                     build: bool = True, progress: bool | None = None, **params: Any) -> dict[str, Any]:
        return self._post("indexes", c.index_body(name, kind, on, build, params))

    def drop_index(self, name: str) -> bool:
        try:
            return bool(self.client.request("DELETE", f"{self._base}/indexes/{name}")["dropped"])
        except KeyError:
            return False

    def compact(self) -> dict[str, int]:
        return self._post("compact")

    def __repr__(self) -> str:
        return f"RemoteCollection({self.client.url!r}, {self.name!r})"
