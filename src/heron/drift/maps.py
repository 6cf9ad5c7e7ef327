"""Query drift compensation: map new-model (B) query embeddings into an old model's (A) space.

Goswami et al., "Query Drift Compensation: Enabling Compatibility in Continual Learning of
Retrieval Embedding Models", CoLLAs 2025. An index embedded with model A answers queries embedded
by model B through a map ``f: R^{d_B} -> R^{d_A}`` fitted on unlabelled corpus text embedded by
both models (``X_B f ~= X_A``):

* ``"lstsq"``: affine ridge least squares ``f(x) = x W + b``;
* ``"procrustes"``: orthogonal Procrustes on centred data, ``f(x) = s (x - mu_B) R + mu_A``,
  ``R = U V^T`` from the SVD of ``(X_B - mu_B)^T (X_A - mu_A)`` (Schönemann, Psychometrika 1966),
  ``s`` the ratio of spreads; needs ``d_A == d_B``; keeps angles between centred vectors;
* ``"mlp"``: one hidden layer (ReLU) plus the affine path, trained by Adam on cosine loss.

Optionally (``knn_k > 0``) a non-parametric local correction is added, from the ``knn_k``
fitting texts nearest to the query in the source space (softmax weights on source cosine,
temperature ``knn_temperature``; the fitting pairs are stored with the map as anchors):

* ``knn_mode="residual"`` (default): ``f'(x) = f(x) + w * sum_j a_j (t_j - f(s_j))``, the
  weighted mean of the neighbours' residuals (what the global map gets wrong around ``x``);
* ``knn_mode="target"``: ``f'(x) = (1 - w) f(x) + w * sum_j a_j t_j``, pulled toward the
  neighbours' target vectors (drifts toward the neighbours' topics; kept for comparison).

``w = knn_weight``. A global linear map cannot bend where the two models disagree locally; the
anchors can (kernel regression on the residuals: Nadaraya, 1964; Watson, 1964).

Mapped queries are L2-normalised. The map is stored as ``.npy`` + a JSON manifest naming the
source and target models and dimensions; applying it to vectors of another model or dimension is
refused.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from heron._state import load_state, save_state
from heron.retrieval.topk import topk_rows

FORMAT_VERSION = 1
KINDS = ("lstsq", "procrustes", "mlp")
KNN_MODES = ("residual", "target")
MIN_PAIRS = 50


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def knn_targets(
    x: np.ndarray,
    anchors_source: np.ndarray,
    anchors_target: np.ndarray,
    *,
    k: int,
    temperature: float,
    normalise: bool = True,
) -> np.ndarray:
    """Softmax-weighted mean of the targets of each row's ``k`` nearest anchors (normalised).

    ``x`` ``(n, d_B)``, anchors ``(m, d_B)`` and ``(m, d_A)``; returns ``(n, d_A)``. Neighbours
    and weights use the inner product in the source space (cosine for normalised vectors).
    """
    x = np.asarray(x, dtype=np.float32)
    k = min(int(k), len(anchors_source))
    out = np.zeros((len(x), anchors_target.shape[1]), dtype=np.float32)
    for s in range(0, len(x), 1024):  # bounded memory: (1024, m) similarities at a time
        sims = x[s : s + 1024] @ anchors_source.T
        st, top = topk_rows(sims, k)  # k <= m: no padding
        w = np.exp((st - st.max(1, keepdims=True)) / temperature)
        w /= w.sum(1, keepdims=True)
        out[s : s + 1024] = (w[:, :, None] * anchors_target[top]).sum(1)
    return _normalise(out) if normalise else out


def heldout_cosine(drift_map: DriftMap, source: np.ndarray, target: np.ndarray) -> float:
    """Mean cosine between mapped ``source`` ``(n, d_B)`` and ``target`` ``(n, d_A)`` vectors.

    A label-free validation score: fit on some texts, score on texts left out of the fit.
    """
    t = _normalise(np.asarray(target, dtype=np.float32))
    return float((drift_map.apply(source) * t).sum(1).mean())


KNN_GRID = {
    "k": (5, 10, 20, 50, 100),
    "temperature": (0.01, 0.02, 0.05),
    "residual": (0.5, 1.0, 1.5, 2.0, 2.5, 3.0),
    "target": (0.2, 0.4, 0.6, 0.8),
}


def tune_knn(
    source: np.ndarray,
    target: np.ndarray,
    heldout_source: np.ndarray,
    heldout_target: np.ndarray,
    *,
    kind: str = "procrustes",
    knn_mode: str = "residual",
    ks: Sequence[int] = KNN_GRID["k"],
    temperatures: Sequence[float] = KNN_GRID["temperature"],
    weights: Sequence[float] | None = None,
    **fit_kw: object,
) -> tuple[dict, dict]:
    """Choose the kNN correction's ``(knn_k, knn_temperature, knn_weight)`` without labels.

    Fits the global map on ``source -> target`` (the anchors), then scores every grid point by
    :func:`heldout_cosine` on texts left out of the fit: the mean cosine between the mapped
    ``heldout_source`` ``(h, d_B)`` and its own old-model vectors ``heldout_target`` ``(h, d_A)``.
    Equivalent to fitting :func:`fit_drift_map` at each grid point and calling
    :func:`heldout_cosine`, but the source similarities are computed once. Use held-out
    *query-like* texts (e.g. a quarter of an unlabelled query log): the correction is meant for
    queries.

    Parameters
    ----------
    source, target: ``(n, d_B)`` / ``(n, d_A)`` fitting pairs (the anchors).
    heldout_source, heldout_target: ``(h, d_B)`` / ``(h, d_A)`` pairs left out of the fit.
    kind, knn_mode: as :func:`fit_drift_map`; ``fit_kw`` goes to it for the global map.
    ks, temperatures, weights: the grid (weights default per mode, ``KNN_GRID``).

    Returns
    -------
    best: ``{"knn_k", "knn_temperature", "knn_weight", "knn_mode", "heldout_cosine"}``.
    grid: ``{(k, temperature, weight): held-out mean cosine}``.
    """
    if knn_mode not in KNN_MODES:
        raise ValueError(f"knn_mode must be one of {KNN_MODES}, got {knn_mode!r}")
    weights = tuple(KNN_GRID[knn_mode] if weights is None else weights)
    hs = np.asarray(heldout_source, dtype=np.float32)
    ht = _normalise(np.asarray(heldout_target, dtype=np.float32))
    if hs.ndim != 2 or len(hs) != len(ht) or len(hs) == 0:
        raise ValueError(
            f"heldout_source and heldout_target must be (h, d) vectors of the same h >= 1 texts, got {hs.shape} and {ht.shape}"
        )
    if not ks or not temperatures or not weights:
        raise ValueError("ks, temperatures and weights must be non-empty grids")
    for k, t in ((k, t) for k in ks for t in temperatures):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 or t <= 0:
            raise ValueError(f"grid values need k >= 1 (int) and temperature > 0, got {k!r}, {t!r}")
    base = fit_drift_map(source, target, kind=kind, **fit_kw)  # type: ignore[arg-type]
    xs = np.asarray(source, dtype=np.float32)
    xt = _normalise(np.asarray(target, dtype=np.float32))
    anchors = xt - base.apply(xs) if knn_mode == "residual" else xt
    y0 = base.apply(hs)
    kmax = min(max(int(k) for k in ks), len(xs))
    sims = hs @ xs.T
    st, top = topk_rows(sims, kmax)  # kmax <= len(xs): no padding
    grid: dict = {}
    for k in ks:
        kk = min(int(k), kmax)
        for t in temperatures:
            a = np.exp((st[:, :kk] - st[:, :1]) / t)
            a /= a.sum(1, keepdims=True)
            local = (a[:, :, None] * anchors[top[:, :kk]]).sum(1)
            for w in weights:
                if knn_mode == "residual":
                    y = y0 + w * local
                else:
                    y = (1 - w) * y0 + w * _normalise(local)
                grid[(int(k), float(t), float(w))] = float((_normalise(y) * ht).sum(1).mean())
    k, t, w = max(grid, key=grid.get)
    best = {
        "knn_k": k,
        "knn_temperature": t,
        "knn_weight": w,
        "knn_mode": knn_mode,
        "heldout_cosine": grid[(k, t, w)],
    }
    return best, grid


class DriftMap:
    """A fitted map from ``source_model`` vectors to ``target_model`` vectors.

    Build with :func:`fit_drift_map` or :meth:`load`.
    """

    def __init__(
        self,
        *,
        kind: str,
        source_model: str,
        target_model: str,
        arrays: dict[str, np.ndarray],
        params: dict | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.source_model, self.target_model = kind, source_model, target_model
        self.arrays = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
        self.params = dict(params or {})
        self.source_dim = (
            int(self.arrays["W"].shape[0]) if kind != "mlp" else int(self.arrays["W1"].shape[0])
        )
        self.target_dim = int(self.arrays["W"].shape[1])

    def apply(self, x: np.ndarray, *, model: str | None = None) -> np.ndarray:
        """Map ``(n, d_source)`` vectors of ``model`` (checked) to normalised ``(n, d_target)``."""
        x = np.asarray(x, dtype=np.float32)
        if model is not None and model != self.source_model:
            raise ValueError(
                f"this drift map takes vectors of {self.source_model!r}, not {model!r}; fit one for {model!r} (heron migrate --new-model {model})"
            )
        if x.ndim != 2 or x.shape[1] != self.source_dim:
            raise ValueError(
                f"this drift map takes ({self.source_dim})-dimensional vectors of {self.source_model!r}; got shape {x.shape}"
            )
        a = self.arrays
        y = x @ a["W"]
        if "b" in a:
            y = y + a["b"]
        if self.kind == "mlp":
            y = y + np.maximum(x @ a["W1"] + a["b1"], 0.0) @ a["W2"]
        if "anchors_source" in a:
            w = float(self.params["knn_weight"])
            local = knn_targets(
                x,
                a["anchors_source"],
                a["anchors_target"],
                k=int(self.params["knn_k"]),
                temperature=float(self.params["knn_temperature"]),
                normalise=False,
            )
            if self.params.get("knn_mode", "target") == "residual":
                y = _normalise(y) + w * local
            else:
                y = (1 - w) * _normalise(y) + w * _normalise(local)
        return _normalise(y)

    def save(self, path: str | os.PathLike) -> None:
        params = {
            **self.params,
            "kind": self.kind,
            "source_model": self.source_model,
            "target_model": self.target_model,
            "source_dim": self.source_dim,
            "target_dim": self.target_dim,
        }
        save_state(path, "DriftMap", FORMAT_VERSION, params, self.arrays)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        source_model: str | None = None,
        target_model: str | None = None,
    ) -> DriftMap:
        """Load a stored map; refuse one for other models than asked."""
        params, arrays = load_state(path, "DriftMap", FORMAT_VERSION)
        for want, key in ((source_model, "source_model"), (target_model, "target_model")):
            if want is not None and params[key] != want:
                raise ValueError(
                    f"the drift map at {str(path)!r} has {key} {params[key]!r}, not {want!r}"
                )
        extra = {
            k: v
            for k, v in params.items()
            if k not in ("kind", "source_model", "target_model", "source_dim", "target_dim")
        }
        return cls(
            kind=params["kind"],
            source_model=params["source_model"],
            target_model=params["target_model"],
            arrays=arrays,
            params=extra,
        )


def fit_drift_map(
    source: np.ndarray,
    target: np.ndarray,
    *,
    kind: str = "lstsq",
    source_model: str,
    target_model: str,
    l2: float = 1e-3,
    hidden: int = 512,
    epochs: int = 300,
    learning_rate: float = 1e-3,
    seed: int = 0,
    knn_k: int = 0,
    knn_temperature: float = 0.02,
    knn_weight: float = 0.5,
    knn_mode: str = "residual",
) -> DriftMap:
    """Fit a map ``source -> target`` on paired embeddings of the same texts.

    Parameters
    ----------
    source: ``(n, d_B)`` new-model embeddings of corpus texts.
    target: ``(n, d_A)`` old-model embeddings of the same texts (what the index holds).
    kind: ``"lstsq"``, ``"procrustes"`` or ``"mlp"``.
    source_model, target_model: model names stored with the map.
    l2: ridge penalty (lstsq, mlp).
    hidden, epochs, learning_rate, seed: MLP settings.
    knn_k, knn_temperature, knn_weight, knn_mode: local correction from the ``knn_k`` nearest
        fitting texts (0: none; the fitting pairs are then stored with the map as anchors);
        ``knn_mode`` ``"residual"`` or ``"target"`` (module docstring).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if isinstance(knn_k, bool) or not isinstance(knn_k, (int, np.integer)) or knn_k < 0:
        raise ValueError(f"knn_k must be an int >= 0 (0: no local correction), got {knn_k!r}")
    if knn_mode not in KNN_MODES:
        raise ValueError(f"knn_mode must be one of {KNN_MODES}, got {knn_mode!r}")
    top_w = 1.0 if knn_mode == "target" else float("inf")
    if knn_k and not (knn_temperature > 0 and 0.0 <= knn_weight <= top_w):
        raise ValueError(
            f"need knn_temperature > 0 and knn_weight in [0, {top_w}] for knn_mode={knn_mode!r}, "
            f"got {knn_temperature!r}, {knn_weight!r}"
        )
    base = _fit_global(
        source, target, kind, source_model, target_model, l2, hidden, epochs, learning_rate, seed
    )
    if not knn_k:
        return base
    xs = np.asarray(source, dtype=np.float32)
    xt = _normalise(np.asarray(target, dtype=np.float32))
    # residual mode stores what the global map gets wrong on each anchor
    base.arrays["anchors_target"] = xt - base.apply(xs) if knn_mode == "residual" else xt
    base.arrays["anchors_source"] = xs
    base.params.update(
        {
            "knn_k": int(knn_k),
            "knn_temperature": float(knn_temperature),
            "knn_weight": float(knn_weight),
            "knn_mode": knn_mode,
        }
    )
    return base


def _fit_global(
    source, target, kind, source_model, target_model, l2, hidden, epochs, learning_rate, seed
) -> DriftMap:
    xs = np.asarray(source, dtype=np.float64)
    xt = np.asarray(target, dtype=np.float64)
    if xs.ndim != 2 or xt.ndim != 2 or len(xs) != len(xt):
        raise ValueError(
            f"source and target must be (n, d) embeddings of the same n texts, got {xs.shape} and {xt.shape}"
        )
    if len(xs) < MIN_PAIRS:
        raise ValueError(
            f"fitting a drift map needs at least {MIN_PAIRS} texts embedded by both models; got {len(xs)}"
        )
    params = {"n_pairs": len(xs), "l2": l2}
    if kind == "procrustes":
        if xs.shape[1] != xt.shape[1]:
            raise ValueError(
                f"procrustes needs equal dimensions, got {xs.shape[1]} -> {xt.shape[1]}; use kind='lstsq'"
            )
        mu_s, mu_t = xs.mean(0), xt.mean(0)
        cs, ct = xs - mu_s, xt - mu_t
        u, _, vt = np.linalg.svd(cs.T @ ct)
        r = u @ vt
        scale = np.linalg.norm(ct) / max(
            np.linalg.norm(cs), 1e-12
        )  # match spreads (a scaled rotation)
        w = scale * r
        return DriftMap(
            kind=kind,
            source_model=source_model,
            target_model=target_model,
            arrays={"W": w, "b": mu_t - mu_s @ w},
            params=params,
        )
    x1 = np.hstack([xs, np.ones((len(xs), 1))])
    reg = l2 * np.eye(x1.shape[1])
    reg[-1, -1] = 0
    wb = np.linalg.solve(x1.T @ x1 + reg, x1.T @ xt)
    arrays = {"W": wb[:-1], "b": wb[-1]}
    if kind == "lstsq":
        return DriftMap(
            kind=kind,
            source_model=source_model,
            target_model=target_model,
            arrays=arrays,
            params=params,
        )
    return _fit_mlp(
        xs,
        xt,
        arrays,
        source_model,
        target_model,
        params | {"hidden": hidden, "epochs": epochs},
        hidden,
        epochs,
        learning_rate,
        l2,
        seed,
    )


def _fit_mlp(
    xs, xt, arrays, source_model, target_model, params, hidden, epochs, lr, l2, seed
) -> DriftMap:
    rng = np.random.default_rng(seed)
    d_in, d_out = xs.shape[1], xt.shape[1]
    p = {
        "W": arrays["W"].copy(),
        "b": arrays["b"].copy(),
        "W1": rng.normal(0, 1 / np.sqrt(d_in), (d_in, hidden)),
        "b1": np.zeros(hidden),
        "W2": np.zeros((hidden, d_out)),
    }
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    tn = xt / np.maximum(np.linalg.norm(xt, axis=1, keepdims=True), 1e-12)
    n = len(xs)
    for t in range(1, epochs + 1):
        h = np.maximum(xs @ p["W1"] + p["b1"], 0)
        y = xs @ p["W"] + p["b"] + h @ p["W2"]
        norm = np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        yn = y / norm
        cos = (yn * tn).sum(1, keepdims=True)
        gy = -(tn - yn * cos) / norm / n  # d(-mean cos)/dy
        gh = (gy @ p["W2"].T) * (h > 0)
        g = {
            "W": xs.T @ gy + l2 * p["W"] / n,
            "b": gy.sum(0),
            "W1": xs.T @ gh + l2 * p["W1"] / n,
            "b1": gh.sum(0),
            "W2": h.T @ gy + l2 * p["W2"] / n,
        }
        for k in p:
            m[k] = 0.9 * m[k] + 0.1 * g[k]
            v[k] = 0.999 * v[k] + 0.001 * g[k] ** 2
            p[k] -= lr * (m[k] / (1 - 0.9**t)) / (np.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
    return DriftMap(
        kind="mlp", source_model=source_model, target_model=target_model, arrays=p, params=params
    )


class MappedQueryEncoder:
    """Encode queries with the new model and map them into the old model's space.

    Acts as the old model's query encoder for retrievers over the old index: ``name`` is the
    target model's, so stages that check the model accept it.

    Parameters
    ----------
    encoder: the new model (``name``, ``dim``, ``encode_queries``).
    drift_map: a :class:`DriftMap` from ``encoder.name`` to the index's model.
    """

    def __init__(self, encoder: object, drift_map: DriftMap) -> None:
        src = getattr(encoder, "name", None)
        if src != drift_map.source_model:
            raise ValueError(
                f"the drift map maps {drift_map.source_model!r} queries, but the encoder is {src!r}"
            )
        if int(getattr(encoder, "dim", drift_map.source_dim)) != drift_map.source_dim:
            raise ValueError(
                f"the drift map takes {drift_map.source_dim}-d vectors, the encoder makes {encoder.dim}-d ones"
            )  # type: ignore[attr-defined]
        self.encoder, self.map = encoder, drift_map
        self.name, self.dim = drift_map.target_model, drift_map.target_dim
        self.source_name = src

    def encode_queries(self, texts: Sequence[str], **kw: object) -> np.ndarray:
        return self.map.apply(self.encoder.encode_queries(texts, **kw), model=self.source_name)  # type: ignore[attr-defined]

    def encode_documents(self, texts: Sequence[str], **kw: object) -> np.ndarray:
        raise ValueError(
            "a MappedQueryEncoder only encodes queries; documents stay in the old index (re-embed them with the new model to switch)"
        )
