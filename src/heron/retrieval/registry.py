"""Registry of named retrievers: ``collection.retriever(name, **params)``.

A factory ``factory(collection, **params) -> Stage`` is registered under a name. Packages that
live outside ``heron.retrieval`` register theirs when imported; the modules in
:data:`PLUGIN_MODULES` are imported on a registry miss.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

_FACTORIES: dict[str, Callable[..., Any]] = {}
PLUGIN_MODULES = [
    "heron.retrieval.dense",
    "heron.retrieval.bm25",
    "heron.codecs.collection",
    "heron.index.collection",
    "heron.sparse.collection",
    "heron.multivector.collection",
    "heron.rerank.collection",
    "heron.drift.collection",
    "heron.calibration.collection",
]


def register_retriever(name: str, factory: Callable[..., Any]) -> None:
    """Register ``factory(collection, **params) -> Stage`` as retriever ``name``."""
    _FACTORIES[name] = factory


def _load_plugins() -> None:
    for mod in PLUGIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name and mod.startswith(exc.name):
                continue  # that package is not part of this build
            raise


def retriever_names() -> list[str]:
    _load_plugins()
    return sorted(_FACTORIES)


def get_retriever(collection: Any, name: str, **params: Any) -> Any:
    """Build retriever ``name`` over ``collection``."""
    if not isinstance(name, str):
        raise TypeError(f"retriever must be a name (str), got {type(name).__name__}")
    if name not in _FACTORIES:
        _load_plugins()
    if name not in _FACTORIES:
        raise ValueError(f"unknown retriever {name!r}; choose one of {sorted(_FACTORIES)}")
    return _FACTORIES[name](collection, **params)
