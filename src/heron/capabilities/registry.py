"""Registry of named retrievers: ``collection.retriever(name, **params)``.

A factory ``factory(collection, **params) -> Stage`` is registered under a name with
:func:`register_retriever` (a decorator or a call). heron's own capability modules and any
third-party package are found through the ``heron.capabilities`` entry-point group (see
:mod:`heron._plugins`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from heron._plugins import registry_of

RETRIEVERS = registry_of("heron.capabilities", "retriever")


def register_retriever(name: str, factory: Callable[..., Any] | None = None) -> Any:
    """Register ``factory(collection, **params) -> Stage`` as retriever ``name``."""
    return RETRIEVERS.register(name, factory)


def retriever_names() -> list[str]:
    return RETRIEVERS.names()


def get_retriever(collection: Any, name: str, **params: Any) -> Any:
    """Build retriever ``name`` over ``collection``."""
    if not isinstance(name, str):
        raise TypeError(f"retriever must be a name (str), got {type(name).__name__}")
    return RETRIEVERS.get(name)(collection, **params)
