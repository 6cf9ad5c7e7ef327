"""Registry of per-field document encoders.

A field spec in the manifest may name an ``encoder``; :func:`field_encoder` builds it from the
registry. Other packages register theirs with :func:`register_field_encoder`, e.g. the SPLADE
encoder for a ``sparse`` field or the token encoder for a ``ragged`` field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from heron._plugins import registry_of

#: field encoders, found through the ``heron.field_encoders`` entry-point group
FIELD_ENCODERS = registry_of("heron.field_encoders", "field encoder")


def register_field_encoder(name: str, factory: Callable[[dict[str, Any]], Any]) -> None:
    """Register ``factory(spec) -> encoder`` under ``name`` (the spec's ``encoder`` value)."""
    FIELD_ENCODERS.register(name, factory)


def field_encoder(spec: dict[str, Any]) -> Any:
    name = spec.get("encoder")
    if not name:
        raise ValueError(
            f"field spec {spec} names no encoder; pass its data with add(..., fields={{name: data}})"
        )
    return FIELD_ENCODERS.get(name)(spec)
