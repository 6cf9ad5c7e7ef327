"""Turn one file into text to index: plain text, Markdown, HTML and PDF through well-kept parsers.

Each parser is a small function registered by file suffix in :data:`PARSERS`; it returns a
:class:`Parsed` (text, title and format-specific metadata). The parsers of the ``docs`` extra
are imported lazily and fail with the install hint ``pip install "heron[docs]"``:

* Markdown: `markdown-it-py <https://github.com/executablebooks/markdown-it-py>`_ (CommonMark);
  the text is the Markdown source, the title the ``title:`` of its YAML front matter or else its
  first heading, and ``headings`` lists
  ``{"level", "text", "offset"}`` (character offset of the heading line) for heading-aware
  chunking. Without markdown-it-py a ``.md`` file is read as plain text.
* HTML: `selectolax <https://github.com/rushter/selectolax>`_ (its Lexbor backend); the visible text of
  ``<body>`` (scripts, styles and templates dropped), the title from ``<title>`` (else the first
  ``<h1>``), and the headings as for Markdown.
* Text is UTF-8 (a byte-order mark dropped); a file that is not UTF-8 and holds no UTF-8
  multi-byte character is read as Windows-1252 (Latin-1).
* PDF: `pypdf <https://github.com/py-pdf/pypdf>`_; the text of each page, pages separated by a
  blank line, ``page_offsets`` the character offset where each page starts, the title from the
  document information (else the first line).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heron._deps import MissingDependencyError

log = logging.getLogger(__name__)

#: the extra that installs every optional parser
DOCS_HINT = 'pip install "heron[docs]"'


class MissingParser(MissingDependencyError):
    """The parser a file format needs is not installed (the message names the extra)."""


@dataclass
class Parsed:
    """One parsed file: the text to index, its title and format-specific metadata."""

    text: str
    title: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def _require(module: str, fmt: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingParser(
            f"reading {fmt} files needs the {module.split('.')[0]!r} package: {DOCS_HINT}"
        ) from exc


#: a valid multi-byte UTF-8 sequence (a file holding one is UTF-8 with a few bad bytes)
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xf4][\x80-\xbf]")


def _decode(data: bytes) -> str:
    """The text of a file: UTF-8 (a byte-order mark dropped); a file that is not UTF-8 and holds
    no UTF-8 multi-byte character is read as Windows-1252 (Latin-1 and its superset, what
    editors wrote before UTF-8), so ``café`` in Latin-1 is not indexed as ``caf\ufffd``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    if _UTF8_MULTIBYTE.search(data) is None:
        log.debug("not UTF-8: read as Windows-1252")
        return _cp1252(data)
    return data.decode("utf-8", errors="replace")


#: the bytes Windows-1252 leaves undefined: read with their Latin-1 meaning (C1 controls)
_CP1252_UNDEFINED = frozenset((0x81, 0x8D, 0x8F, 0x90, 0x9D))


def _cp1252(data: bytes) -> str:
    if not _CP1252_UNDEFINED.intersection(data):
        return data.decode("cp1252")
    return "".join(chr(c) if c in _CP1252_UNDEFINED else bytes([c]).decode("cp1252") for c in data)


#: YAML front matter at the very start of a Markdown file (Jekyll, Hugo, Obsidian ...)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_FM_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.M)


def parse_text(data: bytes) -> Parsed:
    """A plain-text file (``.txt``, ``.rst``): the text as it is; no title."""
    return Parsed(_decode(data))


def parse_markdown(data: bytes) -> Parsed:
    """A Markdown file: its source as text, the title of its YAML front matter or else its first
    heading, the heading outline (front matter is not parsed as Markdown: its closing ``---``
    would make its last line a heading)."""
    text = _decode(data)
    body, fm_title = text, ""
    fm = _FRONT_MATTER.match(text)
    if fm:
        m = _FM_TITLE.search(fm.group(1) or "")
        fm_title = m.group(1).strip().strip("'\"").strip() if m else ""
        # blank lines in its place: markdown-it's line numbers stay those of the text
        body = "\n" * fm.group(0).count("\n") + text[fm.end() :]
    try:
        mdit = _require("markdown_it", "Markdown")
    except MissingParser:
        log.info("markdown-it-py is not installed: .md files are read as plain text (%s)", DOCS_HINT)
        return Parsed(text, fm_title)
    tokens = mdit.MarkdownIt("commonmark").parse(body)
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    headings = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and i + 1 < len(tokens):
            line = tok.map[0] if tok.map else 0
            headings.append(
                {
                    "level": int(tok.tag[1]),
                    "text": tokens[i + 1].content.strip(),
                    "offset": line_starts[min(line, len(line_starts) - 1)],
                }
            )
    title = fm_title or (headings[0]["text"] if headings else "")
    return Parsed(text, title, {"headings": headings} if headings else {})


def parse_html(data: bytes) -> Parsed:
    """An HTML page: the visible text of its body, ``<title>`` as title, the heading outline."""
    sx = _require("selectolax.lexbor", "HTML")
    tree = sx.LexborHTMLParser(data)
    node = tree.css_first("title")
    title = " ".join(node.text().split()) if node is not None else ""
    tree.strip_tags(["script", "style", "noscript", "template", "svg"])
    root = tree.body or tree.root
    if root is None:
        return Parsed("", title)
    lines = [" ".join(x.split()) for x in root.text(separator="\n").splitlines()]
    text = "\n".join(x for x in lines if x)
    headings, pos = [], 0
    for h in root.css("h1, h2, h3, h4, h5, h6"):
        ht = " ".join(h.text().split())
        if not ht:
            continue
        off = text.find(ht, pos)
        pos = off + len(ht) if off >= 0 else pos
        headings.append({"level": int(h.tag[1]), "text": ht, "offset": max(off, 0)})
    if not title and headings:
        title = next((h["text"] for h in headings if h["level"] == 1), "")
    return Parsed(text, title, {"headings": headings} if headings else {})


def parse_pdf(data: bytes) -> Parsed:
    """A PDF: the text of every page (blank line between pages), title from its metadata."""
    import io

    pypdf = _require("pypdf", "PDF")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        pages = [(p.extract_text() or "").strip() for p in reader.pages]
        info_title = (reader.metadata.title if reader.metadata else None) or ""
    except Exception as exc:  # pypdf raises many types on a damaged file
        raise ValueError(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
    offsets, parts, at = [], [], 0
    for page in pages:
        offsets.append(at)
        parts.append(page)
        at += len(page) + 2
    text = "\n\n".join(parts)
    title = str(info_title).strip() or next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return Parsed(text, title, {"pages": len(pages), "page_offsets": offsets})


#: parser of each file suffix (lower case); a file with another suffix is skipped and counted
PARSERS: dict[str, Callable[[bytes], Parsed]] = {
    ".txt": parse_text,
    ".rst": parse_text,
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".html": parse_html,
    ".htm": parse_html,
    ".pdf": parse_pdf,
}


def format_of(path: str | Path) -> str | None:
    """The format name of a file (``"markdown"``, ``"pdf"``...), ``None`` when heron cannot read it."""
    parser = PARSERS.get(Path(path).suffix.lower())
    return None if parser is None else parser.__name__.removeprefix("parse_")


def parse_file(path: str | Path, data: bytes | None = None) -> Parsed:
    """Parse one file by its suffix (``data``: its bytes, when already read).

    Raises
    ------
    ValueError: the suffix has no parser (the message lists the known ones).
    MissingParser: the format's parser is not installed (the message names the extra).
    """
    p = Path(path)
    parser = PARSERS.get(p.suffix.lower())
    if parser is None:
        raise ValueError(
            f"cannot read {p.name!r}: no parser for {p.suffix or 'files without a suffix'!r}; "
            f"known: {' '.join(sorted(PARSERS))}"
        )
    return parser(p.read_bytes() if data is None else data)
