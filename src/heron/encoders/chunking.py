"""Split long documents into passages and give each its situated context.

A dense encoder sees at most ``max_seq_length`` word pieces (256 for all-MiniLM-L6-v2): the rest
of a long document is silently cut. Splitting a document into passages that each fit, encoding
each one, and scoring a document by its best passage(s) keeps all of its text searchable.

Following SitEmb (Wu et al., "SitEmb-v1.5: Improved Context-Aware Dense Retrieval for Semantic
Association and Long Story Comprehension", 2025), a short passage is encoded *situated* in its
context: the document title, the Markdown heading path, and/or the neighbouring text are
prepended (and appended) to the passage for encoding only; the stored span is the passage's own.
LongEmbed (Zhu et al., "LongEmbed: Extending Embedding Models for Long Context Retrieval",
EMNLP 2024) shows the alternative, stretching the model's window, needs model-specific tricks;
chunking works with any encoder.

Methods (``ChunkSpec.method``)
------------------------------
``"sentences"``  sentences packed greedily into windows of at most ``size`` word pieces (a
                 sentence longer than ``size`` is cut into token windows); ``overlap`` sentences
                 are repeated at the start of the next window.
``"tokens"``     windows of ``size`` word pieces, each starting ``size - overlap`` after the last.
``"markdown"``   sections under ``#`` headings, each split by sentences; every passage keeps its
                 heading path (``("Install", "From source")``).

Context (``ChunkSpec.context``): ``"none"``, ``"title"`` (title and heading path),
``"neighbours"`` (``neighbours`` word pieces before and after the passage) or
``"title+neighbours"``.

A *tokenize* function maps a text to the character spans of its word pieces, shape
``(n_pieces, 2)``; :func:`hf_tokenize` makes one from a Hugging Face fast tokenizer, and
:func:`whitespace_tokenize` (the default) counts whitespace-separated words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

METHODS = ("sentences", "tokens", "markdown")
CONTEXTS = ("none", "title", "neighbours", "title+neighbours")
_CONTEXT_ALIASES = {"neighbors": "neighbours", "title+neighbors": "title+neighbours"}

Tokenize = Callable[[str], np.ndarray]

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n|\n(?=\s*[-*•]\s)")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class ChunkSpec:
    """How documents are split into passages and what context each is encoded with.

    Parameters
    ----------
    method:
        ``"sentences"`` (default), ``"tokens"`` or ``"markdown"`` (see the module docstring).
    size:
        Most word pieces of document text per passage (default 128).
    overlap:
        ``"tokens"``: word pieces shared by consecutive windows; ``"sentences"``/``"markdown"``:
        sentences repeated at the start of the next window. Default 0.
    context:
        ``"none"``, ``"title"`` (default), ``"neighbours"`` or ``"title+neighbours"``.
    neighbours:
        Word pieces of neighbouring text on each side for the ``neighbours`` contexts (default 32).
    """

    method: str = "sentences"
    size: int = 128
    overlap: int = 0
    context: str = "title"
    neighbours: int = 32

    def __post_init__(self) -> None:
        ctx = _CONTEXT_ALIASES.get(self.context, self.context)
        object.__setattr__(self, "context", ctx)
        if self.method not in METHODS:
            raise ValueError(
                f"chunk method must be one of {METHODS}, got {self.method!r} (e.g. 'sentences:128')"
            )
        if ctx not in CONTEXTS:
            raise ValueError(f"chunk context must be one of {CONTEXTS}, got {self.context!r}")
        for name in ("size", "overlap", "neighbours"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "size" else 0):
                floor = ">= 1" if name == "size" else ">= 0"
                raise ValueError(f"chunk {name} must be an int {floor}, got {v!r}")
        if self.method == "tokens" and self.overlap >= self.size:
            raise ValueError(
                f"token overlap {self.overlap} must be smaller than the window size {self.size}"
            )

    @classmethod
    def parse(cls, text: str | ChunkSpec | dict, *, context: str | None = None) -> ChunkSpec:
        """``"sentences:128"``, ``"tokens:200:50"`` (size, overlap), ``"markdown:128"``, a dict
        (the manifest form) or a spec; ``context`` overrides the spec's context."""
        if isinstance(text, ChunkSpec):
            spec = text
        elif isinstance(text, dict):
            spec = cls(**text)
        elif isinstance(text, str):
            parts = text.strip().split(":")
            try:
                nums = [int(p) for p in parts[1:]]
            except ValueError:
                raise ValueError(
                    f"bad chunk spec {text!r}; use METHOD[:SIZE[:OVERLAP]], e.g. 'sentences:128' or 'tokens:200:50'"
                ) from None
            if len(nums) > 2:
                raise ValueError(f"bad chunk spec {text!r}; at most METHOD:SIZE:OVERLAP")
            kw: dict[str, Any] = {"method": parts[0]}
            if nums:
                kw["size"] = nums[0]
            if len(nums) > 1:
                kw["overlap"] = nums[1]
            spec = cls(**kw)
        else:
            raise TypeError(f"a chunk spec is a string like 'sentences:128', got {type(text).__name__}")
        if context is not None:
            spec = cls(**{**asdict(spec), "context": context})
        return spec

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def tag(self) -> str:
        """A short name of the spec, usable in file and field names: ``sentences128-title``."""
        t = f"{self.method}{self.size}"
        if self.overlap:
            t += f"o{self.overlap}"
        t += "-" + self.context.replace("+", "_")
        if "neighbours" in self.context:
            t += str(self.neighbours)
        return t


@dataclass(frozen=True)
class Passage:
    """One passage of a document: its span ``text[start:end]``, heading path and the text the
    encoder sees (the span with its situated context)."""

    start: int
    end: int
    heading: tuple[str, ...]
    encoded: str


def whitespace_tokenize(text: str) -> np.ndarray:
    """Character spans of whitespace-separated words, shape ``(n, 2)`` int64."""
    spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    return np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def hf_tokenize(tokenizer: Any) -> Tokenize:
    """A tokenize function from a Hugging Face *fast* tokenizer (its offset mapping)."""

    def tokenize(text: str) -> np.ndarray:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        spans = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        return spans[spans[:, 1] > spans[:, 0]]

    return tokenize


def chunk_document(
    text: str,
    spec: ChunkSpec,
    *,
    title: str = "",
    tokenize: Tokenize = whitespace_tokenize,
) -> list[Passage]:
    """Split one document into passages with their situated text.

    When ``text`` starts with ``title`` (BEIR documents are stored as title + text), the title is
    not chunked as body text; it is context. A document always yields at least one passage.

    Returns
    -------
    list of :class:`Passage`, in document order; spans are character offsets into ``text``.
    """
    body_start = 0
    title = title.strip()
    if title and text.startswith(title):
        body_start = len(title)
    spans_tok = tokenize(text)
    if spec.method == "markdown":
        sections = _markdown_sections(text, body_start)
    else:
        sections = [((), body_start, len(text))]
    raw: list[tuple[int, int, tuple[str, ...]]] = []
    for heading, s0, s1 in sections:
        if spec.method == "tokens":
            pieces = _token_windows(spans_tok, s0, s1, spec.size, spec.overlap)
        else:
            pieces = _sentence_windows(text, spans_tok, s0, s1, spec.size, spec.overlap)
        raw.extend((a, b, heading) for a, b in pieces)
    if not raw:  # a title-only or empty document: one passage
        raw = [(body_start, len(text), ())]
    out = []
    for a, b, heading in raw:
        situated = _situate(text, a, b, heading, title, spans_tok, body_start, spec)
        out.append(Passage(a, b, heading, situated))
    return out


def chunk_documents(
    texts: Sequence[str],
    spec: ChunkSpec,
    *,
    titles: Sequence[str] | None = None,
    tokenize: Tokenize = whitespace_tokenize,
) -> tuple[np.ndarray, list[Passage]]:
    """Chunk many documents.

    Returns
    -------
    offsets:
        ``(n_docs + 1,)`` int64; the passages of document ``i`` are ``passages[offsets[i]:offsets[i+1]]``.
    passages:
        every document's passages, in order.
    """
    if titles is not None and len(titles) != len(texts):
        raise ValueError(f"got {len(titles)} titles for {len(texts)} texts; pass one per text")
    offsets = [0]
    passages: list[Passage] = []
    for i, t in enumerate(texts):
        ps = chunk_document(t, spec, title=titles[i] if titles else "", tokenize=tokenize)
        passages.extend(ps)
        offsets.append(len(passages))
    return np.asarray(offsets, dtype=np.int64), passages


# ---------------------------------------------------------------------------- internals
def _tokens_in(spans: np.ndarray, s0: int, s1: int) -> tuple[int, int]:
    """Index range of the word pieces that start in ``[s0, s1)``."""
    starts = spans[:, 0]
    return int(np.searchsorted(starts, s0, "left")), int(np.searchsorted(starts, s1, "left"))


def _token_windows(
    spans: np.ndarray, s0: int, s1: int, size: int, overlap: int
) -> list[tuple[int, int]]:
    i0, i1 = _tokens_in(spans, s0, s1)
    out = []
    step = size - overlap
    for a in range(i0, i1, step):
        b = min(a + size, i1)
        out.append((int(spans[a, 0]), int(spans[b - 1, 1])))
        if b == i1:
            break
    return out


def _sentences(text: str, s0: int, s1: int) -> list[tuple[int, int]]:
    out = []
    pos = s0
    for m in _SENTENCE_END.finditer(text, s0, s1):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, s1))
    trimmed = []
    for a, b in out:
        seg = text[a:b]
        a2 = a + (len(seg) - len(seg.lstrip()))
        b2 = b - (len(seg) - len(seg.rstrip()))
        if b2 > a2:
            trimmed.append((a2, b2))
    return trimmed


def _sentence_windows(
    text: str, spans: np.ndarray, s0: int, s1: int, size: int, overlap: int
) -> list[tuple[int, int]]:
    units: list[tuple[int, int, int]] = []  # (start, end, word pieces)
    for a, b in _sentences(text, s0, s1):
        i0, i1 = _tokens_in(spans, a, b)
        if i1 - i0 <= size:
            units.append((a, b, i1 - i0))
        else:  # a sentence longer than a window: cut it into token windows
            units.extend((x, y, size) for x, y in _token_windows(spans, a, b, size, 0))
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j, n = i, 0
        while j < len(units) and (j == i or n + units[j][2] <= size):
            n += units[j][2]
            j += 1
        out.append((units[i][0], units[j - 1][1]))
        if j >= len(units):
            break
        i = max(i + 1, j - overlap)
    return out


def _markdown_sections(text: str, s0: int) -> list[tuple[tuple[str, ...], int, int]]:
    """``(heading path, start, end)`` of the body under each heading (heading lines excluded)."""
    out: list[tuple[tuple[str, ...], int, int]] = []
    path: list[tuple[int, str]] = []
    pos = s0
    for m in _HEADING.finditer(text, s0):
        if m.start() > pos:
            out.append((tuple(h for _, h in path), pos, m.start()))
        level = len(m.group(1))
        path = [(lv, h) for lv, h in path if lv < level] + [(level, m.group(2).strip())]
        pos = m.end()
    out.append((tuple(h for _, h in path), pos, len(text)))
    return [(h, a, b) for h, a, b in out if text[a:b].strip()]


def _situate(
    text: str,
    a: int,
    b: int,
    heading: tuple[str, ...],
    title: str,
    spans: np.ndarray,
    body_start: int,
    spec: ChunkSpec,
) -> str:
    body = text[a:b]
    if "neighbours" in spec.context and spec.neighbours:
        starts = spans[:, 0]
        first = int(np.searchsorted(starts, body_start, "left"))  # never the title as neighbour
        i0 = int(np.searchsorted(starts, a, "left"))
        i1 = int(np.searchsorted(starts, b, "left"))
        lo = max(first, i0 - spec.neighbours)
        hi = min(len(spans), i1 + spec.neighbours)
        left = text[int(spans[lo, 0]) : a].strip() if lo < i0 else ""
        right = text[b : int(spans[hi - 1, 1])].strip() if hi > i1 else ""
        body = " ".join(x for x in (left, body, right) if x)
    if spec.context.startswith("title"):
        head = " > ".join(x for x in (title, *heading) if x)
        if head:
            body = f"{head}\n{body}" if body.strip() else head
    return body


__all__ = [
    "CONTEXTS",
    "METHODS",
    "ChunkSpec",
    "Passage",
    "chunk_document",
    "chunk_documents",
    "hf_tokenize",
    "whitespace_tokenize",
]
