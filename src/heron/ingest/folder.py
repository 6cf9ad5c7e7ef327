"""A folder of documents as files: which files heron reads, their content hashes, their documents.

A file's document id is its path relative to the folder (``/``-separated); its metadata holds
``path`` (the same), ``source`` (the folder, resolved), ``sha256`` (of the file's bytes: what
:func:`heron.collection.sources.sync_folder` compares to re-embed only changed files),
``format``, ``title`` when the parser found one, and the parser's own fields (``headings``,
``pages``, ``page_offsets``; see :mod:`heron.ingest.parsers`).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heron.ingest.parsers import DOCS_HINT, PARSERS, MissingParser, format_of, parse_file

log = logging.getLogger(__name__)


@dataclass
class FolderScan:
    """The files of a folder heron can read, and a count of those it skipped by suffix."""

    root: Path
    files: list[Path]
    skipped: Counter = field(default_factory=Counter)

    def doc_id(self, path: Path) -> str:
        """The document id of ``path``: its ``/``-separated path relative to :attr:`root`."""
        return path.relative_to(self.root).as_posix()


def scan_folder(folder: str | Path, *, exclude: Path | None = None) -> FolderScan:
    """The readable files under ``folder`` (sorted), skipping hidden files and folders and
    symbolic links to files outside the folder.

    Files whose suffix has no parser in :data:`heron.ingest.parsers.PARSERS` are counted in
    ``skipped`` by suffix (one notice is logged); ``exclude`` (e.g. a collection folder inside
    the folder being indexed) is left out entirely.
    """
    root = Path(folder).resolve()
    excl = exclude.resolve() if exclude is not None else None
    files: list[Path] = []
    skipped: Counter = Counter()
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not f.is_file():
            continue
        if excl is not None and (f == excl or excl in f.parents):
            continue
        if f.is_symlink() and root not in f.resolve().parents:
            skipped["(link to outside the folder)"] += 1  # never read files the folder does not hold
            continue
        if f.suffix.lower() in PARSERS:
            files.append(f)
        else:
            skipped[f.suffix.lower() or "(no suffix)"] += 1
    if skipped:
        shown = ", ".join(f"{s}: {n}" for s, n in skipped.most_common(8))
        log.info(
            "skipped %d file(s) of types heron does not read (%s); readable: %s",
            sum(skipped.values()),
            shown,
            " ".join(sorted(PARSERS)),
        )
    return FolderScan(root, files, skipped)


def content_hash(data: bytes) -> str:
    """SHA-256 (hex) of a file's bytes: equal hashes mean an unchanged file."""
    return hashlib.sha256(data).hexdigest()


def file_document(
    scan: FolderScan, path: Path, data: bytes, sha: str
) -> tuple[str, str, dict[str, Any]] | None:
    """``(id, text, metadata)`` of one file, ``None`` when it holds no text.

    The title of an HTML or PDF file is put before its text when the text does not already
    start with it (heading and page offsets are shifted to match).

    Raises
    ------
    MissingParser: the format's parser is not installed.
    ValueError: the file cannot be parsed (e.g. a damaged PDF).
    """
    doc_id = scan.doc_id(path)
    parsed = parse_file(path, data)
    text, meta = parsed.text, dict(parsed.meta)
    if parsed.title and format_of(path) in ("html", "pdf") and not text.lstrip().startswith(parsed.title):
        shift = len(parsed.title) + 2
        text = f"{parsed.title}\n\n{text}"
        for h in meta.get("headings", []):
            h["offset"] += shift
        if "page_offsets" in meta:
            meta["page_offsets"] = [o + shift for o in meta["page_offsets"]]
    if not text.strip():
        return None
    out: dict[str, Any] = {
        "path": doc_id,
        "source": str(scan.root),
        "sha256": sha,
        "format": format_of(path),
    }
    if parsed.title:
        out["title"] = parsed.title
    out.update(meta)
    return doc_id, text, out


def iter_folder(folder: str | Path) -> Any:
    """Yield ``(id, text, metadata)`` for every readable file of ``folder`` (see :func:`scan_folder`).

    A file whose parser is missing or that fails to parse is skipped with one warning per cause.
    """
    scan = scan_folder(folder)
    if not scan.files:
        raise ValueError(
            f"folder {str(folder)!r} holds no files heron reads ({' '.join(sorted(PARSERS))})"
        )
    problems = Problems()
    for f in scan.files:
        data = f.read_bytes()
        try:
            doc = file_document(scan, f, data, content_hash(data))
        except (MissingParser, ValueError) as exc:
            problems.add(f, exc)
            continue
        if doc is not None:
            yield doc
    problems.report()


class Problems:
    """Files skipped because their parser is missing or they failed to parse, reported once."""

    def __init__(self) -> None:
        self.missing: Counter = Counter()
        self.hints: dict[str, str] = {}
        self.failed: list[str] = []

    def add(self, path: Path, exc: Exception) -> None:
        if isinstance(exc, MissingParser):
            self.missing[path.suffix.lower()] += 1
            self.hints[path.suffix.lower()] = str(exc)
        else:
            self.failed.append(path.name)
            log.warning("skipped %s: %s", path, exc)

    def report(self) -> None:
        for suffix, n in self.missing.items():
            log.warning("skipped %d %s file(s): %s", n, suffix, self.hints[suffix])

    def as_dict(self) -> dict[str, Any]:
        return {"missing_parser": dict(self.missing), "failed": list(self.failed)}


__all__ = [
    "DOCS_HINT",
    "FolderScan",
    "Problems",
    "content_hash",
    "file_document",
    "iter_folder",
    "scan_folder",
]
