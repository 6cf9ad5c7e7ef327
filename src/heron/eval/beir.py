"""Load a BEIR-layout dataset folder.

Layout (Thakur et al., "BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation of
Information Retrieval Models", NeurIPS 2021 Datasets track)::

    DATASET/corpus.jsonl     {"_id", "title", "text", ...} per line
    DATASET/queries.jsonl    {"_id", "text", ...} per line
    DATASET/qrels/SPLIT.tsv  query-id <tab> corpus-id <tab> score, with a header row
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

SHARED_DATA_ENV = "HERON_DATA"
log = logging.getLogger(__name__)


def data_root() -> Path:
    """Folder holding the shared BEIR datasets: ``$HERON_DATA`` or ``../shared/data`` beside the repo."""
    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "shared" / "data"
        if cand.is_dir():
            return cand
        cand = parent.parent / "shared" / "data"
        if (parent / ".git").exists() and cand.is_dir():
            return cand
    return Path.cwd().parent / "shared" / "data"


def resolve_dataset(name_or_path: str | os.PathLike) -> Path:
    """A dataset folder: an existing path, or a name under :func:`data_root`."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    q = data_root() / str(name_or_path)
    if q.is_dir():
        return q
    raise FileNotFoundError(
        f"no BEIR dataset folder at {str(p)!r} nor {str(q)!r}; pass a folder holding corpus.jsonl, "
        f"queries.jsonl and qrels/, or set ${SHARED_DATA_ENV} to the folder of datasets"
    )


@dataclass
class BeirDataset:
    """A loaded BEIR dataset.

    Attributes
    ----------
    name: folder name.
    doc_ids: corpus ids in file order.
    titles, texts: per document.
    query_ids, queries: all queries in file order.
    qrels: ``{split: {query_id: {doc_id: relevance}}}``; rows naming documents missing from the
        corpus are kept (they count as misses, as in BEIR and MTEB) unless loaded ``strict``.
    missing_docs: per split, how many qrels rows name a document missing from the corpus.
    dropped_queries: per split, how many qrels rows named a query missing from
        ``queries.jsonl`` (dropped: a query without text cannot be run).
    """

    name: str
    path: Path
    doc_ids: list[str]
    titles: list[str]
    texts: list[str]
    query_ids: list[str]
    queries: list[str]
    qrels: dict[str, dict[str, dict[str, int]]]
    missing_docs: dict[str, int] = field(default_factory=dict)
    dropped_queries: dict[str, int] = field(default_factory=dict)

    def documents(self, sep: str = " ") -> list[str]:
        """Title and text joined (what MTEB encodes), one string per document."""
        return [(t + sep + x).strip() if t else x for t, x in zip(self.titles, self.texts)]

    def split(self, split: str = "test") -> tuple[list[str], list[str], dict[str, dict[str, int]]]:
        """``(query_ids, query_texts, qrels)`` for the queries judged in ``split``."""
        if split not in self.qrels:
            raise ValueError(
                f"dataset {self.name!r} has no qrels split {split!r}; available: {sorted(self.qrels)}"
            )
        qrels = self.qrels[split]
        text = dict(zip(self.query_ids, self.queries))
        ids = [q for q in self.query_ids if q in qrels]
        return ids, [text[q] for q in ids], {q: qrels[q] for q in ids}


def _read_jsonl(path: Path, what: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{path}:{n}: not valid JSON ({exc.msg}); each line of {what} must be one JSON object"
                ) from exc
            if not isinstance(row, dict):
                raise ValueError(
                    f"{path}:{n}: each line of {what} must be a JSON object with '_id', got a {type(row).__name__}: {line.strip()[:60]!r}"
                )
            if "_id" not in row:
                raise ValueError(
                    f"{path}:{n}: a {what} row needs an '_id' field, got keys {sorted(row)}"
                )
            rows.append(row)
    return rows


def load_beir(
    path: str | os.PathLike, *, splits: tuple[str, ...] | None = None, strict: bool = False
) -> BeirDataset:
    """Load a BEIR folder.

    Parameters
    ----------
    path:
        The dataset folder (or a name under ``$HERON_DATA``).
    splits:
        qrels splits to load; default all ``qrels/*.tsv``.
    strict:
        Raise when a qrels row names a document missing from the corpus or a query missing from
        ``queries.jsonl``. By default (BEIR's and MTEB's convention) rows naming missing
        documents are kept, so those documents count as relevant and never retrieved (misses),
        and rows naming missing queries are dropped; one logged notice counts both.
    """
    root = resolve_dataset(path)
    for need in ("corpus.jsonl", "queries.jsonl"):
        if not (root / need).is_file():
            raise FileNotFoundError(
                f"BEIR folder {str(root)!r} is missing {need}; a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv"
            )
    qdir = root / "qrels"
    if not qdir.is_dir() or not any(qdir.glob("*.tsv")):
        raise FileNotFoundError(
            f"BEIR folder {str(root)!r} has no qrels/*.tsv; add qrels/test.tsv (query-id, corpus-id, score)"
        )
    corpus = _read_jsonl(root / "corpus.jsonl", "corpus")
    queries = _read_jsonl(root / "queries.jsonl", "queries")
    doc_ids = [str(r["_id"]) for r in corpus]
    known_docs = set(doc_ids)
    query_ids = [str(r["_id"]) for r in queries]
    known_q = set(query_ids)
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    files = sorted(qdir.glob("*.tsv"))
    if splits is not None:
        files = [f for f in files if f.stem in splits]
        missing = set(splits) - {f.stem for f in files}
        if missing:
            raise FileNotFoundError(
                f"BEIR folder {str(root)!r} has no qrels for split(s) {sorted(missing)}"
            )
    missing_docs: dict[str, int] = {}
    dropped_queries: dict[str, int] = {}
    for f in files:
        split: dict[str, dict[str, int]] = {}
        n_missing = n_dropped = n_rows = 0
        with open(f, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                parts = line.rstrip("\n").split("\t")
                if n == 1 and parts[0] in ("query-id", "query_id", "qid"):
                    continue
                if len(parts) < 3:
                    if not line.strip():
                        continue
                    raise ValueError(
                        f"{f}:{n}: a qrels row needs 3 tab-separated fields (query-id, corpus-id, score), got {line.strip()!r}"
                    )
                q, d, s = parts[0], parts[1], parts[2]
                n_rows += 1
                if d not in known_docs or q not in known_q:
                    if strict:
                        bad = (
                            f"document {d!r} (not in corpus.jsonl)"
                            if d not in known_docs
                            else f"query {q!r} (not in queries.jsonl)"
                        )
                        raise ValueError(
                            f"{f}:{n}: qrels row names unknown {bad}; fix the qrels, or load without "
                            "strict (heron eval without --strict) to score missing documents as misses "
                            "and drop unknown queries, as BEIR does"
                        )
                    if q not in known_q:
                        n_dropped += 1
                        continue
                    n_missing += 1
                try:
                    score = float(s)
                except ValueError as exc:
                    raise ValueError(f"{f}:{n}: relevance score {s!r} is not a number") from exc
                if not math.isfinite(score) or abs(score) > 1e9:
                    raise ValueError(
                        f"{f}:{n}: relevance score {s!r} is not a finite grade; use a small integer (0, 1, 2)"
                    )
                split.setdefault(q, {})[d] = int(score)
        if not n_rows:
            raise ValueError(
                f"{f} holds no judgments (only a header, or nothing); add rows 'query-id<TAB>corpus-id<TAB>score' "
                "or remove the file"
            )
        qrels[f.stem] = split
        missing_docs[f.stem], dropped_queries[f.stem] = n_missing, n_dropped
    if any(missing_docs.values()) or any(dropped_queries.values()):
        log.warning(
            "%s: %d qrels row(s) name documents missing from corpus.jsonl (%s), kept and scored as "
            "misses as BEIR does; %d row(s) name queries missing from queries.jsonl, dropped; "
            "strict=True (heron eval --strict) refuses such qrels",
            root.name,
            sum(missing_docs.values()),
            ", ".join(f"{k}: {v}" for k, v in missing_docs.items() if v) or "none",
            sum(dropped_queries.values()),
        )
    return BeirDataset(
        name=root.name,
        path=root,
        doc_ids=doc_ids,
        titles=[str(r.get("title") or "") for r in corpus],
        texts=[str(r.get("text") or "") for r in corpus],
        query_ids=query_ids,
        queries=[str(r.get("text") or "") for r in queries],
        qrels=qrels,
        missing_docs=missing_docs,
        dropped_queries=dropped_queries,
    )
