"""Query-dependent calibration of cosine scores (the Cosine Adapter) and a global threshold stage.

Rossi et al., "Relevance Filtering for Embedding-based Retrieval", CIKM 2024. Raw cosine scores
are not comparable across queries, so one threshold cannot filter all of them. The adapter maps
the raw score ``s`` of a candidate for query ``q`` to a relevance probability

    p(rel | q, s) = sigmoid(a(q) * z(s) + b(q)),   a(q) = softplus(u . phi(q) + u0) > 0,
                                                     b(q) = v . phi(q) + v0,

with ``z`` the globally standardised score and ``phi(q)`` the standardised query features: the
query embedding (as in the paper) and, by default, a few statistics of the query's own
first-stage score profile (top-1 score, top-1 minus top-2, mean and spread of the top 10). ``a``
is positive, so for a fixed query the probability is strictly increasing in the raw score and
the ranking is unchanged. It is fitted by logistic regression (Adam, L2) on labelled
(query, candidate) pairs: the first-stage candidates of training queries, labelled by qrels.
One global threshold on ``p`` then gives a variable number of hits per query.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from heron._state import check_query_model, load_state, save_state
from heron.pipeline import Queries, Stage
from heron.rerank.vectors import query_vectors
from heron.results import PAD_KEY, PAD_SCORE, Results

FORMAT_VERSION = 1
FEATURES = ("embedding", "scores")
MIN_PAIRS = 200
MIN_POSITIVES = 20
PROFILE_DEPTH = 20
TRANSFORMS = ("relative", "raw")


def check_threshold(t: object, what: str = "min_relevance") -> float:
    """A probability threshold in ``[0, 1]``."""
    if isinstance(t, bool) or not isinstance(t, (int, float, np.floating, np.integer)):
        raise TypeError(f"{what} must be a number in [0, 1], got {t!r}")
    t = float(t)
    if not 0.0 <= t <= 1.0 or np.isnan(t):
        raise ValueError(f"{what} must lie in [0, 1] (a relevance probability), got {t}")
    return t


def score_profile(scores: np.ndarray) -> np.ndarray:
    """Per-query statistics of a first-stage score row, shape ``(n_queries, 6)``.

    Columns: top-1 score, top-1 minus top-2, top-1 minus top-5, top-1 minus top-20, mean and
    std of the top 10 (only the first 20 columns are read; padding ``-inf`` ignored).
    """
    s = np.asarray(scores, dtype=np.float64)[:, :PROFILE_DEPTH]
    fin = np.isfinite(s)
    s1 = np.where(fin[:, 0], s[:, 0], 0.0)

    def at(r: int) -> np.ndarray:
        last = np.maximum(fin[:, : r + 1].sum(1) - 1, 0)
        return s[np.arange(len(s)), last] if s.shape[1] else s1

    top, tfin = s[:, :10], fin[:, :10]
    cnt = np.maximum(tfin.sum(1), 1)
    mean = np.where(tfin, top, 0.0).sum(1) / cnt
    var = np.where(tfin, (top - mean[:, None]) ** 2, 0.0).sum(1) / cnt
    return np.stack([s1, s1 - at(1), s1 - at(4), s1 - at(19), mean, np.sqrt(var)], axis=1)


def relative_scores(scores: np.ndarray, spread_rank: int) -> np.ndarray:
    """``(s - s_1) / (s_1 - s_r)`` per row, ``r = spread_rank`` (or the last real hit); pads stay ``-inf``."""
    s = np.asarray(scores, dtype=np.float64)
    fin = np.isfinite(s)
    s1 = np.where(fin[:, 0], s[:, 0], 0.0)
    last = np.clip(np.minimum(fin.sum(1), spread_rank) - 1, 0, None)
    sr = s[np.arange(len(s)), last]
    spread = np.maximum(s1 - np.where(np.isfinite(sr), sr, s1), 1e-6)
    return np.where(fin, (s - s1[:, None]) / spread[:, None], -np.inf)


def label_candidates(
    keys_or_ids: Sequence[Sequence],
    query_ids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
) -> np.ndarray:
    """Binary labels ``(n_queries, k)``: whether each candidate id is judged relevant (> 0)."""
    out = np.zeros((len(query_ids), max((len(r) for r in keys_or_ids), default=0)), dtype=bool)
    for i, (q, row) in enumerate(zip(query_ids, keys_or_ids)):
        rel = qrels.get(str(q), {})
        for j, d in enumerate(row):
            out[i, j] = rel.get(str(d), 0) > 0
    return out


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class CosineAdapter:
    """Maps raw cosine scores to relevance probabilities with query-dependent parameters.

    Parameters
    ----------
    features:
        Query features that predict the mapping: ``("embedding",)`` (the paper's) or
        ``("embedding", "scores")`` (default; adds the query's score profile).
    l2:
        L2 penalty on the feature weights.
    epochs:
        Full-batch Adam steps.
    learning_rate:
        Adam step size.
    seed:
        Initialisation seed.
    score_transform:
        ``"relative"`` (default): the mapping reads ``(s - s_1) / (s_1 - s_r)``, the score relative
        to the query's top score and spread (still strictly increasing in ``s`` for a fixed query;
        with constant ``a, b`` it is per-query min-max normalisation); ``"raw"``: ``s`` itself.
    spread_rank:
        ``r`` in the relative transform.
    f1_weight:
        Weight ``w`` of the set-F1 term. The loss is the mean pairwise log loss minus
        ``w`` times the mean, over training queries and over ``f1_thresholds``, of a smooth
        per-query F1 of the set ``{p >= tau}`` (soft membership
        ``sigmoid((logit p - logit tau) / f1_temperature)``, the first ``f1_min_hits`` hits always
        in, recall over all of the query's judged relevant documents). ``0`` (default): plain
        logistic regression, as in the paper. The F1 term targets what the threshold is used
        for: which queries get more hits (Lipton et al., "Optimal Thresholding of Classifiers
        to Maximize F1 Measure", ECML-PKDD 2014, on why pointwise calibration alone is not
        F1-optimal).
    f1_thresholds, f1_temperature, f1_min_hits:
        Thresholds averaged in the F1 term, softness of set membership (logit units), and the
        hits always returned (match the stage's ``min_hits``).
    """

    def __init__(
        self,
        *,
        features: Sequence[str] = FEATURES,
        l2: float = 1e-2,
        epochs: int = 400,
        learning_rate: float = 0.05,
        seed: int = 0,
        score_transform: str = "relative",
        spread_rank: int = 100,
        f1_weight: float = 0.0,
        f1_thresholds: Sequence[float] = (0.2, 0.3, 0.4, 0.5, 0.6),
        f1_temperature: float = 0.5,
        f1_min_hits: int = 1,
    ) -> None:
        if not (np.isfinite(f1_weight) and f1_weight >= 0):
            raise ValueError(f"f1_weight must be a number >= 0, got {f1_weight!r}")
        if not (np.isfinite(f1_temperature) and f1_temperature > 0):
            raise ValueError(f"f1_temperature must be > 0, got {f1_temperature!r}")
        if isinstance(f1_min_hits, bool) or not isinstance(f1_min_hits, int) or f1_min_hits < 0:
            raise ValueError(f"f1_min_hits must be an int >= 0, got {f1_min_hits!r}")
        self.f1_thresholds = tuple(check_threshold(t, "f1_thresholds") for t in f1_thresholds)
        if f1_weight > 0 and (
            not self.f1_thresholds or any(t in (0.0, 1.0) for t in self.f1_thresholds)
        ):
            raise ValueError(
                f"f1_thresholds must be probabilities strictly inside (0, 1), got {f1_thresholds!r}"
            )
        self.f1_weight, self.f1_temperature = float(f1_weight), float(f1_temperature)
        self.f1_min_hits = f1_min_hits
        if score_transform not in TRANSFORMS:
            raise ValueError(
                f"score_transform must be one of {TRANSFORMS}, got {score_transform!r}"
            )
        if not isinstance(spread_rank, int) or spread_rank < 2:
            raise ValueError(f"spread_rank must be an int >= 2, got {spread_rank!r}")
        self.score_transform, self.spread_rank = score_transform, spread_rank
        features = tuple(features)
        if not features or any(f not in FEATURES for f in features):
            raise ValueError(f"features must be a non-empty subset of {FEATURES}, got {features}")
        if l2 < 0 or epochs < 1 or learning_rate <= 0:
            raise ValueError(
                f"need l2 >= 0, epochs >= 1, learning_rate > 0; got {l2}, {epochs}, {learning_rate}"
            )
        self.features, self.l2, self.epochs, self.learning_rate, self.seed = (
            features,
            float(l2),
            int(epochs),
            float(learning_rate),
            int(seed),
        )
        self.model: str | None = None
        self.dim: int | None = None
        self._p: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ features
    def _phi_raw(self, q: np.ndarray, scores: np.ndarray) -> np.ndarray:
        parts = []
        if "embedding" in self.features:
            parts.append(np.asarray(q, dtype=np.float64))
        if "scores" in self.features:
            parts.append(score_profile(scores))
        return np.concatenate(parts, axis=1)

    def _phi(self, q: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return (self._phi_raw(q, scores) - self._p["phi_mu"]) / self._p["phi_sd"]

    def _transform(self, s: np.ndarray) -> np.ndarray:
        return relative_scores(s, self.spread_rank) if self.score_transform == "relative" else s

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        query_vectors: np.ndarray,
        scores: np.ndarray,
        labels: np.ndarray,
        *,
        model: str | None = None,
        n_relevant: np.ndarray | None = None,
    ) -> CosineAdapter:
        """Fit on labelled first-stage candidates.

        Parameters
        ----------
        query_vectors: ``(n_queries, d)`` training query embeddings.
        scores: ``(n_queries, k)`` raw cosine of each query's first-stage candidates (desc, ``-inf`` pads).
        labels: ``(n_queries, k)`` bool, candidate judged relevant.
        model: name of the encoder (stored; queries of other models are refused later).
        n_relevant: ``(n_queries,)`` number of documents judged relevant per query (recall's
            denominator in the F1 term; default: the relevant candidates in ``labels``).
        """
        q = np.asarray(query_vectors, dtype=np.float64)
        s = np.asarray(scores, dtype=np.float64)
        y = np.asarray(labels, dtype=bool)
        if q.ndim != 2 or s.ndim != 2 or s.shape != y.shape or len(q) != len(s):
            raise ValueError(
                f"need query_vectors (n, d), scores and labels (n, k); got {q.shape}, {s.shape}, {y.shape}"
            )
        valid = np.isfinite(s)
        s = self._transform(s)
        n_pairs, n_pos = int(valid.sum()), int((y & valid).sum())
        if n_pairs < MIN_PAIRS or n_pos < MIN_POSITIVES or n_pos == n_pairs:
            raise ValueError(
                f"calibration needs at least {MIN_PAIRS} labelled (query, candidate) pairs with at least "
                f"{MIN_POSITIVES} relevant and some non-relevant ones; got {n_pairs} pairs, {n_pos} relevant. "
                "Label more training queries (qrels) or take deeper candidate lists"
            )
        self.model, self.dim = model, int(q.shape[1])
        phi = self._phi_raw(q, np.asarray(scores, dtype=np.float64))
        mu, sd = phi.mean(0), phi.std(0) + 1e-6
        s_mu, s_sd = float(s[valid].mean()), float(s[valid].std() + 1e-6)
        self._p = {"phi_mu": mu, "phi_sd": sd, "z": np.array([s_mu, s_sd])}
        phi = (phi - mu) / sd
        z = np.where(valid, (s - s_mu) / s_sd, 0.0)
        yf = y.astype(np.float64)
        n_rel = (
            (y & valid).sum(1).astype(np.float64)
            if n_relevant is None
            else np.asarray(n_relevant, dtype=np.float64)
        )
        if n_rel.shape != (len(q),):
            raise ValueError(f"n_relevant must have shape ({len(q)},), got {n_rel.shape}")
        f = phi.shape[1]
        rng = np.random.default_rng(self.seed)
        prior = np.log(n_pos / (n_pairs - n_pos))
        params = {
            "u": rng.normal(0, 0.01, f),
            "u0": np.array([np.log(np.expm1(1.0))]),
            "v": rng.normal(0, 0.01, f),
            "v0": np.array([prior]),
        }
        m = {k: np.zeros_like(v) for k, v in params.items()}
        v2 = {k: np.zeros_like(v) for k, v in params.items()}
        b1, b2, eps = 0.9, 0.999, 1e-8
        for t in range(1, self.epochs + 1):
            ra = phi @ params["u"] + params["u0"][0]
            a = _softplus(ra)
            b = phi @ params["v"] + params["v0"][0]
            logit = a[:, None] * z + b[:, None]
            p = _sigmoid(logit)
            g = np.where(valid, p - yf, 0.0) / n_pairs
            if self.f1_weight > 0:
                g = g - self.f1_weight * self._soft_f1_grad(logit, valid, yf, n_rel)
            ga = (g * z).sum(1) * _sigmoid(ra)
            gb = g.sum(1)
            grads = {
                "u": phi.T @ ga + self.l2 * params["u"],
                "u0": np.array([ga.sum()]),
                "v": phi.T @ gb + self.l2 * params["v"],
                "v0": np.array([gb.sum()]),
            }
            for k in params:
                m[k] = b1 * m[k] + (1 - b1) * grads[k]
                v2[k] = b2 * v2[k] + (1 - b2) * grads[k] ** 2
                params[k] -= (
                    self.learning_rate * (m[k] / (1 - b1**t)) / (np.sqrt(v2[k] / (1 - b2**t)) + eps)
                )
        self._p.update(params)
        return self

    def _soft_f1_grad(
        self, logit: np.ndarray, valid: np.ndarray, y: np.ndarray, n_rel: np.ndarray
    ) -> np.ndarray:
        """Gradient wrt ``logit`` ``(n, k)`` of the mean smooth set-F1 over queries and thresholds."""
        grad = np.zeros_like(logit)
        forced = np.arange(logit.shape[1])[None, :] < self.f1_min_hits
        for tau in self.f1_thresholds:
            m = np.where(
                valid, _sigmoid((logit - np.log(tau / (1 - tau))) / self.f1_temperature), 0
            )
            dm = m * (1 - m) / self.f1_temperature
            m = np.where(forced & valid, 1.0, m)
            dm = np.where(forced, 0.0, dm)
            denom = np.maximum(m.sum(1) + n_rel, 1e-9)
            tp = (m * y).sum(1)
            dfdm = 2 * y / denom[:, None] - (2 * tp / denom**2)[:, None]
            grad += dfdm * dm
        return grad / (len(logit) * len(self.f1_thresholds))

    # ------------------------------------------------------------------ apply
    def _check(self) -> None:
        if not self._p:
            raise ValueError(
                "this CosineAdapter is not fitted; call fit(...) or CosineAdapter.load(path)"
            )

    def mapping(
        self, query_vectors: np.ndarray, scores: np.ndarray, *, model: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-query ``(a, b)`` of ``p = sigmoid(a * z + b)``, each ``(n_queries,)``."""
        self._check()
        q = np.asarray(query_vectors)
        check_query_model("this CosineAdapter", self.model, int(self.dim or 0), model, q)
        phi = self._phi(q, scores)
        a = _softplus(phi @ self._p["u"] + self._p["u0"][0])
        b = phi @ self._p["v"] + self._p["v0"][0]
        return a, b

    def predict(
        self, query_vectors: np.ndarray, scores: np.ndarray, *, model: str | None = None
    ) -> np.ndarray:
        """Relevance probabilities ``(n_queries, k)`` of the candidates' raw ``scores`` (pads -> 0).

        ``scores`` must be the query's first-stage raw cosine list (descending, ``-inf`` pads):
        its profile is part of the query features.
        """
        s = np.asarray(scores, dtype=np.float64)
        a, b = self.mapping(query_vectors, s, model=model)
        mu, sd = self._p["z"]
        valid = np.isfinite(s)
        s = self._transform(s)
        z = np.where(valid, (s - mu) / sd, 0.0)
        return np.where(valid, _sigmoid(a[:, None] * z + b[:, None]), 0.0)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Store as ``.npy`` arrays + ``manifest.json`` (model, dim, features, format version)."""
        self._check()
        params = {
            "model": self.model,
            "dim": self.dim,
            "features": list(self.features),
            "l2": self.l2,
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "score_transform": self.score_transform,
            "spread_rank": self.spread_rank,
            "f1_weight": self.f1_weight,
            "f1_thresholds": list(self.f1_thresholds),
            "f1_temperature": self.f1_temperature,
            "f1_min_hits": self.f1_min_hits,
        }
        save_state(path, "CosineAdapter", FORMAT_VERSION, params, self._p)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CosineAdapter:
        params, arrays = load_state(path, "CosineAdapter", FORMAT_VERSION)
        self = cls(
            features=params["features"],
            l2=params["l2"],
            epochs=params["epochs"],
            learning_rate=params["learning_rate"],
            seed=params["seed"],
            score_transform=params["score_transform"],
            spread_rank=params["spread_rank"],
            f1_weight=params.get("f1_weight", 0.0),
            f1_thresholds=params.get("f1_thresholds", (0.2, 0.3, 0.4, 0.5, 0.6)),
            f1_temperature=params.get("f1_temperature", 0.5),
            f1_min_hits=params.get("f1_min_hits", 1),
        )
        self.model, self.dim, self._p = params["model"], params["dim"], arrays
        return self


class RelevanceThreshold(Stage):
    """Keep the candidates whose calibrated relevance is at least ``min_relevance``.

    Put it right after a dense retriever (its scores must be the raw cosines):
    ``dense % 100 >> RelevanceThreshold(adapter=..., encoder=..., min_relevance=0.5)``.
    Returns the same width, sorted by probability (the raw order), padded after the last kept
    hit, so the number of real hits varies per query.

    Parameters
    ----------
    adapter: a fitted :class:`CosineAdapter`.
    encoder: the query encoder (must be the adapter's model).
    min_relevance: probability threshold in ``[0, 1]``.
    min_hits: hits always kept per query whatever their probability (0: a query may get none).
    """

    def __init__(
        self,
        *,
        adapter: CosineAdapter,
        encoder: object,
        min_relevance: float = 0.5,
        min_hits: int = 0,
    ) -> None:
        if isinstance(min_hits, bool) or not isinstance(min_hits, int) or min_hits < 0:
            raise ValueError(f"min_hits must be an int >= 0, got {min_hits!r}")
        self.min_hits = min_hits
        adapter._check()
        self.adapter, self.encoder = adapter, encoder
        self.min_relevance = check_threshold(min_relevance)
        name, dim = getattr(encoder, "name", None), getattr(encoder, "dim", None)
        if adapter.model is not None and name is not None and name != adapter.model:
            raise ValueError(
                f"this CosineAdapter was trained for model {adapter.model!r}, not {name!r}; train one for {name!r}"
            )
        if dim is not None and adapter.dim is not None and int(dim) != adapter.dim:
            raise ValueError(
                f"this CosineAdapter was trained for dimension {adapter.dim}, the encoder has {dim}"
            )
        self.name = f"RelevanceThreshold({self.min_relevance})"

    def transform(self, queries: Queries, candidates: Results | None = None) -> Results:
        if candidates is None:
            raise ValueError(
                "RelevanceThreshold filters candidates; put a dense retriever before it"
            )
        q = query_vectors(queries, self.encoder)
        p = self.adapter.predict(q, candidates.scores, model=getattr(self.encoder, "name", None))
        return threshold_results(candidates, p, self.min_relevance, min_hits=self.min_hits)


def threshold_results(
    candidates: Results, new_scores: np.ndarray, threshold: float, *, min_hits: int = 0
) -> Results:
    """Keep hits with ``new_scores >= threshold`` (scores monotone with the row order), pad the rest.

    ``min_hits`` first hits of each row are kept whatever their score.
    """
    ranks = np.arange(candidates.k)[None, :]
    keep = candidates.valid() & ((new_scores >= threshold) | (ranks < min_hits))
    order = np.argsort(~keep, axis=1, kind="stable")  # kept first, original order
    keys = np.take_along_axis(np.where(keep, candidates.keys, PAD_KEY), order, axis=1)
    s = np.take_along_axis(np.where(keep, new_scores, PAD_SCORE), order, axis=1).astype(np.float32)
    info = dict(candidates.info)
    info["counts"] = keep.sum(1)
    return Results(keys, s, candidates.resolver, info)
