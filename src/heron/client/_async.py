"""The asynchronous client (``httpx.AsyncClient``): :class:`AsyncClient`, :class:`AsyncRemoteCollection`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from heron.client import _common as c
from heron.results import Results


class AsyncClient:
    """The async twin of :class:`heron.Client`: the same methods, awaited."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        from heron._deps import require

        httpx = require("httpx", extra="server", purpose="heron.AsyncClient")
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, headers=c.headers(api_key), timeout=timeout)

    async def request(self, method: str, path: str, json: Any = None) -> Any:
        r = await self._http.request(method, path, json=json)
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
        c.raise_for(r.status_code, body, r.text)
        return body

    async def collection(self, name: str) -> AsyncRemoteCollection:
        return AsyncRemoteCollection(self, name, await self.request("GET", f"/v1/collections/{name}"))

    async def collections(self) -> list[dict[str, Any]]:
        return (await self.request("GET", "/v1/collections"))["collections"]

    async def create_collection(self, name: str, *, model: str | None = None, dim: int | None = None) -> AsyncRemoteCollection:
        info = await self.request("POST", "/v1/collections", {"name": name, "model": model, "dim": dim})
        return AsyncRemoteCollection(self, name, info)

    async def drop_collection(self, name: str) -> bool:
        return bool((await self.request("DELETE", f"/v1/collections/{name}"))["dropped"])

    async def health(self) -> dict[str, Any]:
        return await self.request("GET", "/readyz")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def close(self) -> None:
        """Same as :meth:`aclose` (the name :class:`heron.Client` uses)."""
        await self.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncRemoteCollection(c.Described):
    """A collection on a heron server, awaited; mirrors :class:`heron.client.RemoteCollection`.

    ``len(coll)`` and ``id in coll`` cannot be awaited: use ``(await coll.info())["documents"]``
    and ``(await coll.get([id]))[0] is not None``.
    """

    def __init__(self, client: AsyncClient, name: str, info: dict[str, Any]) -> None:
        self.client, self.name = client, name
        self._base = f"/v1/collections/{name}"
        self._info = info

    async def close(self) -> None:
        """Nothing to release (the client's connection pool is :meth:`AsyncClient.aclose`'s)."""

    async def __aenter__(self) -> AsyncRemoteCollection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _post(self, op: str, body: Any = None) -> Any:
        return await self.client.request("POST", f"{self._base}/{op}", body)

    async def add(self, texts: Sequence[str], *, ids: Sequence[str] | None = None, metadata: Any = None,
                  vectors: Any = None, fields: Any = None, progress: bool | None = None) -> np.ndarray:
        got = await self._post("add", c.documents_body(texts, ids, metadata, vectors, fields))
        return np.asarray(got["keys"], np.int64)

    async def upsert(self, texts: Sequence[str], *, ids: Sequence[str], metadata: Any = None,
                     vectors: Any = None, fields: Any = None, progress: bool | None = None) -> np.ndarray:
        got = await self._post("upsert", c.documents_body(texts, ids, metadata, vectors, fields))
        return np.asarray(got["keys"], np.int64)

    async def delete(self, ids: Sequence[str] | str) -> int:
        ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
        return int((await self._post("delete", {"ids": ids}))["deleted"])

    async def get(self, ids: Sequence[str] | str) -> list[Any]:
        ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
        return c.documents_from(await self._post("get", {"ids": ids}))

    async def search(self, queries: Any, k: int = 10, *, using: str | None = None, retriever: str | None = None,
                     filter: Mapping[str, Any] | None = None, min_relevance: float | None = None,
                     min_hits: int = 0, **params: Any) -> Results:
        body = c.search_body(queries, k, using, retriever, filter, min_relevance, min_hits, params)
        return c.results_from(await self._post("search", body), k)

    async def info(self) -> dict[str, Any]:
        return await self.client.request("GET", self._base)

    async def indexes(self) -> list[dict[str, Any]]:
        return (await self.client.request("GET", f"{self._base}/indexes"))["indexes"]

    async def create_index(self, name: str | None = None, *, kind: str, on: str | None = None,
                           build: bool = True, progress: bool | None = None, **params: Any) -> dict[str, Any]:
        return await self._post("indexes", c.index_body(name, kind, on, build, params))

    async def drop_index(self, name: str) -> bool:
        try:
            return bool((await self.client.request("DELETE", f"{self._base}/indexes/{name}"))["dropped"])
        except KeyError:
            return False

    async def compact(self) -> dict[str, int]:
        return await self._post("compact")
