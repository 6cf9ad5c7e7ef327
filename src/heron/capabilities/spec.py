"""One spec grammar for retrievers and pipelines, shared by the API, the CLI and evaluation.

``NAME``                 a registered retriever or an index of the collection (``dense``, ``bm25``, ``hnsw``, ...)
``NAME?key=value&...``   with parameters (numbers and true/false parsed): ``hnsw?ef_search=64``
``hybrid:A+B+...``       reciprocal-rank fusion of the named specs: ``hybrid:dense+bm25``
"""

from __future__ import annotations

from typing import Any

from heron.pipeline import RRF, Stage


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name?k=v&k2=v2"`` into ``(name, params)``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a retriever spec must be a non-empty string like 'dense' or 'hnsw?ef_search=64', got {spec!r}")
    name, _, query = spec.partition("?")
    params: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        k, eq, v = part.partition("=")
        if not eq or not k:
            raise ValueError(
                f"bad retriever parameter {part!r} in {spec!r}; write name?key=value&key2=value2"
            )
        params[k] = parse_value(v)
    return name, params


def parse_value(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def stage_from_spec(collection: Any, spec: str, *, depth: int | None = None, **params: Any) -> Stage:
    """A pipeline stage for ``spec`` over ``collection`` (``params`` override the spec's)."""
    if spec.startswith("hybrid:"):
        parts = [p for p in spec[len("hybrid:") :].split("+") if p]
        if len(parts) < 2:
            raise ValueError(
                f"hybrid needs at least two retrievers, e.g. hybrid:dense+bm25; got {spec!r}"
            )
        stages = [stage_from_spec(collection, p, depth=depth) for p in parts]
        return RRF(*stages, depth=depth) if depth else RRF(*stages)
    name, sp = parse_spec(spec)
    if ":" in name or not name:
        raise ValueError(
            f"bad retriever spec {spec!r}: write NAME, NAME?key=value or hybrid:A+B "
            "(only 'hybrid:' may use ':')"
        )
    sp.update(params)
    if depth is not None:
        sp.setdefault("depth", depth)
    return collection.retriever(name, **sp)


__all__ = ["parse_spec", "parse_value", "stage_from_spec"]
