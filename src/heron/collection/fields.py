"""Registry of per-field document encoders.

A field spec in the manifest may name an ``encoder``; :func:`field_encoder` builds it from the
registry. Other packages register theirs with :func:`register_field_encoder`, e.g. the SPLADE
encoder for a ``sparse`` field or the token encoder for a ``ragged`` field.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

_FACTORIES: dict[str, Callable[[dict[str, Any]], Any]] = {}
#: modules imported on a registry miss, so their encoders register themselves
PLUGIN_MODULES = ["heron.encoders.splade", "heron.multivector.fields", "heron.encoders.tokens"]


def register_field_encoder(name: str, factory: Callable[[dict[str, Any]], Any]) -> None:
    """Register ``factory(spec) -> encoder`` under ``name`` (the spec's ``encoder`` value)."""
    _FACTORIES[name] = factory


def field_encoder(spec: dict[str, Any]) -> Any:
    name = spec.get("encoder")
    if not name:
        raise ValueError(
            f"field spec {spec} names no encoder; pass its data with add(..., fields={{name: data}})"
        )
    if name not in _FACTORIES:
        for mod in PLUGIN_MODULES:
            try:
                importlib.import_module(mod)
            except ImportError:
                continue
    if name not in _FACTORIES:
        raise ValueError(f"no field encoder registered as {name!r}; known: {sorted(_FACTORIES)}")
    return _FACTORIES[name](spec)
