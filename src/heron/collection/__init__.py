"""On-disk collections: documents + metadata in SQLite, vectors in memory-mapped segments."""

from heron.collection.collection import Collection, Document
from heron.collection.diskfull import DiskFullError
from heron.collection.fields import DenseField, FieldSpec, SparseField, TokensField
from heron.collection.integrity import CorruptionError
from heron.collection.manifest import CollectionError
from heron.collection.snapshot import Snapshot
from heron.collection.writelock import WriteLockTimeout

__all__ = [
    "Collection",
    "CollectionError",
    "CorruptionError",
    "DenseField",
    "DiskFullError",
    "Document",
    "FieldSpec",
    "Snapshot",
    "SparseField",
    "TokensField",
    "WriteLockTimeout",
]
