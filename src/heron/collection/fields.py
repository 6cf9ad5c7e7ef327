"""Typed field specs and the registry of per-field document encoders.

A collection has a ``dense`` field and any number of extra fields, declared with a typed spec::

    Collection.create(path, fields={"splade": SparseField(), "tokens": TokensField()})
    coll.add_field("splade", SparseField(encoder="splade", model="splade-tiny"))

A spec is stored in the manifest as a plain dict; a spec naming an ``encoder`` is encoded from
the text of every document (the encoder fills in its model name and vocabulary), otherwise the
data is passed with ``add(..., fields={name: data})``. Encoders register with
:func:`register_field_encoder` (the ``heron.field_encoders`` entry-point group).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from heron.encoders.registry import FIELD_ENCODERS, register_field_encoder


@dataclass(frozen=True)
class FieldSpec:
    """A field's kind (``"dense"``, ``"sparse"``, ``"ragged"``) and how its data is made."""

    kind: str
    encoder: str | None = None
    model: str | None = None
    dim: int | None = None
    vocab: int | None = None

    chunking: dict[str, Any] | None = None
    precision: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def DenseField(*, dim: int | None = None, encoder: str | None = None, model: str | None = None) -> FieldSpec:  # noqa: N802
    """An extra dense field (vectors passed with ``add(..., fields=)`` unless an encoder is named)."""
    return FieldSpec("dense", encoder=encoder, model=model, dim=dim)


def SparseField(*, encoder: str | None = "splade", model: str | None = None, vocab: int | None = None) -> FieldSpec:  # noqa: N802
    """A learned-sparse field (default: the bundled SPLADE encoder; CSR per segment)."""
    return FieldSpec("sparse", encoder=encoder, model=model, vocab=vocab)


def TokensField(*, encoder: str | None = "tokens", model: str | None = None) -> FieldSpec:  # noqa: N802
    """Per-token vectors for late interaction (a ragged field; default: the dense model's tokens)."""
    return FieldSpec("ragged", encoder=encoder, model=model)


def PassagesField(  # noqa: N802
    *, chunking: str | dict[str, Any] = "sentences:128", context: str | None = None,
    model: str | None = None, precision: str | None = None,
) -> FieldSpec:
    """Situated passages of each document (a ragged field of passage vectors; see
    :mod:`heron.encoders.passages`), searched with ``coll.retriever("passages")``."""
    from heron.encoders.chunking import ChunkSpec

    spec = ChunkSpec.parse(chunking, context=context)
    return FieldSpec(
        "ragged", encoder="passages", model=model, chunking=spec.as_dict(), precision=precision
    )


def as_spec(spec: FieldSpec | dict[str, Any]) -> dict[str, Any]:
    """A field spec as the manifest's dict (typed specs or plain dicts)."""
    if isinstance(spec, FieldSpec):
        return spec.as_dict()
    if isinstance(spec, dict):
        return dict(spec)
    raise TypeError(
        f"a field spec is a FieldSpec (SparseField(), TokensField(), DenseField(dim=...)) or a dict, "
        f"got {type(spec).__name__}"
    )


def field_encoder(spec: dict[str, Any]) -> Any:
    name = spec.get("encoder")
    if not name:
        raise ValueError(
            f"field spec {spec} names no encoder; pass its data with add(..., fields={{name: data}})"
        )
    return FIELD_ENCODERS.get(name)(spec)


__all__ = [
    "FIELD_ENCODERS",
    "DenseField",
    "FieldSpec",
    "PassagesField",
    "SparseField",
    "TokensField",
    "as_spec",
    "field_encoder",
    "register_field_encoder",
]
