"""Keep a collection in sync with a folder of files: re-embed changed files, drop removed ones.

Each file's document carries ``source`` (the folder), ``path`` and ``sha256`` (of its bytes) in
its metadata (:mod:`heron.ingest.folder`). :func:`sync_folder` hashes every readable file,
compares with the stored hashes and then

* parses and upserts only the files that are new or whose hash changed (a file whose text did
  not change still reuses its stored vector: the write path keys vectors by text hash);
* deletes the documents of this folder whose files are gone (or now hold no text);
* writes nothing at all when nothing changed: no segment, no new generation.

Unchanged files are hashed, never parsed, so a no-op sync of a folder costs one read of its
bytes plus one query of the stored hashes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """What :func:`sync_folder` did: counts of documents, skipped files, time, generation."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    #: files skipped by suffix (no parser for it)
    skipped: dict[str, int] = field(default_factory=dict)
    #: files whose parser is missing (by suffix) and files that failed to parse
    problems: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    generation: int = 0
    documents: int = 0

    @property
    def written(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line: ``3 added, 1 changed, 2 removed, 694 unchanged``."""
        out = f"{self.added} added, {self.changed} changed, {self.removed} removed, {self.unchanged} unchanged"
        n_skip = sum(self.skipped.values())
        if n_skip:
            out += f"; {n_skip} file(s) of unknown type skipped"
        return out


def stored_files(coll: Any, source: str) -> dict[str, tuple[str | None, str | None]]:
    """``{id: (sha256, source)}`` of the live documents indexed from files (one query).

    Documents of every folder are returned (the caller matches ids of this folder's files and
    removes only those whose ``source`` is ``source``). Only rows whose id is their ``path``
    count: rows derived from a file under other ids (passages of a chunked document that copy
    its metadata) are never mistaken for files of their own.
    """
    con = coll.store.connect()
    rows = con.execute(
        "SELECT id, json_extract(metadata, '$.sha256'), json_extract(metadata, '$.source') "
        "FROM docs WHERE deleted = 0 AND json_extract(metadata, '$.path') = id"
    ).fetchall()
    return {i: (h, s) for i, h, s in rows}


@dataclass
class SyncPlan:
    """The writes a sync needs: documents to upsert, ids to delete, and the report so far."""

    todo: list[tuple[str, str, dict[str, Any]]]
    removed: list[str]
    report: SyncReport
    started: float


def plan_sync(coll: Any, folder: str | Path, *, exclude: Path | None = None) -> SyncPlan:
    """Hash the files of ``folder``, compare with ``coll``; parse only new and changed files.

    A file whose parser is missing or that fails to parse is skipped with a warning; if it was
    indexed before, its document is kept (the file is still there).
    """
    from heron.ingest.folder import Problems, content_hash, file_document, scan_folder
    from heron.ingest.parsers import MissingParser

    t0 = time.perf_counter()
    scan = scan_folder(folder, exclude=exclude)
    source = str(scan.root)
    stored = stored_files(coll, source)
    report = SyncReport(skipped=dict(scan.skipped))
    problems = Problems()
    present: set[str] = set()
    todo: list[tuple[str, str, dict[str, Any]]] = []
    for f in scan.files:
        doc_id = scan.doc_id(f)
        data = f.read_bytes()
        sha = content_hash(data)
        old = stored.get(doc_id)
        if old is not None and old[0] == sha:
            present.add(doc_id)
            report.unchanged += 1
            continue
        try:
            doc = file_document(scan, f, data, sha)
        except (MissingParser, ValueError) as exc:
            problems.add(f, exc)
            if old is not None:
                present.add(doc_id)
            continue
        if doc is None:  # holds no text (any more)
            continue
        present.add(doc_id)
        todo.append(doc)
        if old is None:
            report.added += 1
        else:
            report.changed += 1
    problems.report()
    report.problems = problems.as_dict()
    mine = {source, None} if _only_folder(coll, source) else {source}
    removed = [i for i, (_, src) in stored.items() if src in mine and i not in present]
    return SyncPlan(todo, removed, report, t0)


def _only_folder(coll: Any, source: str) -> bool:
    """Whether ``source`` is the only folder this collection was indexed from: then documents
    indexed before files carried a ``source`` (collections of older heron versions) are its own."""
    folders = {s.get("path") for s in coll.config.get("sources", []) if Path(str(s.get("path"))).is_dir()}
    return folders == {source}


def apply_sync(
    coll: Any,
    plan: SyncPlan,
    *,
    batch: int = 2048,
    on_write: Callable[[int], None] | None = None,
    progress: bool | None = False,
) -> SyncReport:
    """Upsert the plan's documents (``batch`` per commit), then delete its removed ids."""
    report = plan.report
    for s in range(0, len(plan.todo), batch):
        part = plan.todo[s : s + batch]
        ids, texts, metas = zip(*part)
        coll.upsert(list(texts), ids=list(ids), metadata=list(metas), progress=progress)
        if on_write is not None:
            on_write(len(part))
    if plan.removed:
        report.removed = coll.delete(plan.removed)
        log.debug("removed %d document(s) whose files are gone", report.removed)
    report.seconds = time.perf_counter() - plan.started
    report.generation = coll.generation
    report.documents = len(coll)
    return report


def sync_folder(
    coll: Any,
    folder: str | Path,
    *,
    batch: int = 2048,
    exclude: Path | None = None,
    on_write: Callable[[int], None] | None = None,
    progress: bool | None = False,
) -> SyncReport:
    """Bring ``coll`` in line with the files of ``folder``; returns what changed.

    Parameters
    ----------
    coll: an open :class:`~heron.collection.Collection`.
    folder: the folder of files (see :func:`heron.ingest.folder.scan_folder`).
    batch: documents per commit.
    exclude: a path under ``folder`` to leave out (the collection itself, when inside it).
    on_write: called with the number of documents after each commit (progress across commits).
    progress: the encoder's own progress bar inside each commit.
    """
    plan = plan_sync(coll, folder, exclude=exclude)
    return apply_sync(coll, plan, batch=batch, on_write=on_write, progress=progress)


__all__ = ["SyncPlan", "SyncReport", "apply_sync", "plan_sync", "stored_files", "sync_folder"]
