"""The capability contract: how an index kind builds, opens and searches its artifact.

An *artifact* is a derived structure (an ANN index, fitted codec + codes, a BM25 index, a
Seismic index) kept in its own folder per published version; the collection owns its
lifecycle (:mod:`heron.collection.artifacts`: build from a snapshot, publish atomically, stay
resident while current, collect when no reader holds it). An :class:`ArtifactKind` says how to
do the parts that depend on the method; it registers itself with :func:`register_kind` and is
found through the ``heron.capabilities`` entry-point group like every retriever.

``build`` writes files into a fresh folder; ``open`` turns that folder into the resident object
searches use (memory-mapped arrays where possible); ``fresh`` tells whether a published
version still serves a later snapshot (methods that fold a delta in at search time say yes;
methods whose scores depend on global statistics, such as BM25, say no and are rebuilt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from heron._plugins import Registry


class ArtifactKind:
    """Base class of an index kind. Subclasses set the class attributes and implement the methods.

    Attributes
    ----------
    kind: the name users pass as ``kind=`` (``"hnsw"``, ``"bm25"``, ...).
    field_kind: the kind of field it indexes: ``"dense"``, ``"sparse"`` or ``"text"``.
    build_params: keyword parameters fixed at build time, named as the papers name them.
    search_params: keyword parameters of a search.
    """

    kind: ClassVar[str] = ""
    field_kind: ClassVar[str] = "dense"
    default_field: ClassVar[str] = "dense"
    build_params: ClassVar[tuple[str, ...]] = ()
    search_params: ClassVar[tuple[str, ...]] = ()

    def normalise(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validate build parameters (raise ``ValueError`` naming the bad one); return them."""
        bad = sorted(set(params) - set(self.build_params))
        if bad:
            raise ValueError(
                f"unknown build parameter(s) {bad} for index kind {self.kind!r}; "
                f"valid: {sorted(self.build_params)}"
            )
        return dict(params)

    def rebuild_params(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """The parameters of a rebuild: the previous build's ``old`` overridden by ``new``."""
        return {**old, **new}

    def build(
        self, snap: Any, field: str, params: dict[str, Any], folder: Path, *, progress: bool
    ) -> None:
        """Build from the snapshot's live documents and write the artifact's files into ``folder``."""
        raise NotImplementedError

    def open(self, folder: Path, record: Any, collection: Any) -> Any:
        """The resident object of a published version (kept in memory while it is current)."""
        raise NotImplementedError

    def fresh(self, record: Any, snap: Any) -> bool:
        """Whether the published version can serve ``snap`` (default: deltas are folded in at search)."""
        return True

    def retriever(self, collection: Any, name: str, **params: Any) -> Any:
        """A pipeline stage searching artifact ``name`` of this kind."""
        raise NotImplementedError


#: index kinds by name (entry-point group ``heron.capabilities``)
ARTIFACT_KINDS: Registry[ArtifactKind] = Registry("heron.capabilities", "index kind")


def register_kind(cls: type[ArtifactKind]) -> type[ArtifactKind]:
    """Class decorator: register an :class:`ArtifactKind` under ``cls.kind``."""
    ARTIFACT_KINDS.register(cls.kind, cls())
    return cls


def artifact_kind(kind: str) -> ArtifactKind:
    return ARTIFACT_KINDS.get(kind)


__all__ = ["ARTIFACT_KINDS", "ArtifactKind", "artifact_kind", "register_kind"]
