"""Registry of per-field document encoders (the ``encoder`` of a collection's field spec).

Encoders register a factory ``factory(spec) -> encoder`` by name when their module is imported
(the SPLADE encoder as ``"splade"``, the per-token encoder as ``"tokens"``); a registry miss
loads the ``heron.field_encoders`` entry points (see :mod:`heron._plugins`), so a third-party
package adds a field encoder by declaring one. The registry lives at the encoder layer so that
encoders register themselves without importing the collection built on them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from heron._plugins import registry_of

#: entry-point group of field encoders
GROUP = "heron.field_encoders"
#: field encoders by name, filled by registration and by the ``heron.field_encoders`` entry points
FIELD_ENCODERS = registry_of(GROUP, "field encoder")


def register_field_encoder(name: str, factory: Callable[[dict[str, Any]], Any]) -> None:
    """Register ``factory(spec) -> encoder`` under ``name`` (the spec's ``encoder`` value)."""
    FIELD_ENCODERS.register(name, factory)


def field_encoder(spec: dict[str, Any]) -> Any:
    """Build the encoder a field spec names (``spec["encoder"]``) from the registry."""
    name = spec.get("encoder")
    if not name:
        raise ValueError(
            f"field spec {spec} names no encoder; pass its data with add(..., fields={{name: data}})"
        )
    return FIELD_ENCODERS.get(name)(spec)


__all__ = ["FIELD_ENCODERS", "GROUP", "field_encoder", "register_field_encoder"]
