"""On-disk collections: documents + metadata in SQLite, vectors in memory-mapped segments."""

from heron.collection.collection import Collection, Document
from heron.collection.manifest import CollectionError
from heron.collection.snapshot import Snapshot

__all__ = ["Collection", "CollectionError", "Document", "Snapshot"]
