"""Read documents to index from a folder of files (text, Markdown, HTML, PDF), a JSONL file, or a BEIR folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from heron.ingest.parsers import PARSERS

TEXT_SUFFIXES = (".txt", ".md", ".rst")
#: every suffix a folder of files may hold (HTML, PDF and Markdown structure need ``heron[docs]``)
SUFFIXES = tuple(sorted(PARSERS))


def iter_documents(path: str | Path) -> Iterator[tuple[str, str, dict]]:
    """Yield ``(id, text, metadata)`` from ``path``.

    * a BEIR folder (holds ``corpus.jsonl``): one document per corpus row, title + text;
    * a ``.jsonl`` file: rows with ``text`` (and optional ``id``/``_id``, ``title``, ``metadata``);
    * a folder of files (``.txt``/``.md``/``.rst``/``.html``/``.pdf``, see
      :mod:`heron.ingest.parsers`): one document per file, id = relative path, metadata from
      :func:`heron.ingest.folder.file_document` (path, source, sha256, format, title...).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"nothing to index at {str(p)!r}; pass a folder of files (.txt .md .html .pdf ...), a .jsonl file or a BEIR folder"
        )
    if p.is_dir() and (p / "corpus.jsonl").is_file():
        yield from _jsonl(p / "corpus.jsonl")
    elif p.is_file() and p.suffix == ".jsonl":
        yield from _jsonl(p)
    elif p.is_dir():
        from heron.ingest.folder import iter_folder

        yield from iter_folder(p)
    else:
        raise ValueError(
            f"cannot index {str(p)!r}: expected a folder, a .jsonl file or a BEIR folder"
        )


def _jsonl(path: Path) -> Iterator[tuple[str, str, dict]]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict) or "text" not in row:
                raise ValueError(f"{path}:{n}: each row needs a 'text' field")
            if not isinstance(row["text"], str):  # null would become the text "None"
                raise ValueError(
                    f"{path}:{n}: 'text' must be a string, got {type(row['text']).__name__} "
                    f"{row['text']!r}; use \"\" for a document without text"
                )
            doc_id = str(row.get("_id", row.get("id", n)))
            title = str(row.get("title") or "")
            text = (title + " " + str(row["text"])).strip() if title else str(row["text"])
            meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
            if title:
                meta = {**meta, "title": title}
            yield doc_id, text, meta
