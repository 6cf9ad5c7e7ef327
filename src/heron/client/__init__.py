"""heron.client: a Python client (sync and async) for the heron HTTP server.

``heron.Client(url, api_key=...).collection(name)`` behaves like an in-process
:class:`heron.Collection` (same methods, same :class:`heron.Results`); :class:`AsyncClient` is
its ``httpx.AsyncClient`` twin. httpx is imported when a client is built, not at import.
"""

from __future__ import annotations

from heron.client._async import AsyncClient, AsyncRemoteCollection
from heron.client._sync import Client, RemoteCollection

__all__ = ["AsyncClient", "AsyncRemoteCollection", "Client", "RemoteCollection"]
