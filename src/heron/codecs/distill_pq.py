"""Ranking-aware fine-tuning of PQ centroids with the float32 scores as teacher.

After Zhan et al., "Jointly Optimizing Query Encoder and Product Quantization to Improve Retrieval
Performance" (JPQ, CIKM 2021) and Xiao et al., "Distill-VQ: Learning Retrieval Oriented Vector
Quantization By Distilling Knowledge from Dense Embeddings" (SIGIR 2022). Plain PQ minimises the
reconstruction error of the documents; here the centroids are then trained so that the asymmetric
scores ``q . x_hat`` rank like the exact scores ``q . x``: for each training query the candidate
list is the teacher's top ``L`` plus the student's current top ``L``, and the loss is the listwise
KL divergence ``KL(softmax(q.x / T) || softmax(q.x_hat / T))``, minimised with Adam on the
centroids (the encoder is frozen, so this is the "centroid" half of JPQ). Codes are re-assigned to
the nearest centroid after every epoch, so :meth:`encode` stays consistent with training.

Training queries are the corpus' own vectors (pseudo-queries) unless ``queries`` are passed to
:meth:`fit`; test queries are never needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heron.codecs.base import as_matrix, topk_from_scores
from heron.codecs.pq import PQCodec


class DistilledPQCodec(PQCodec):
    """PQ whose centroids are fine-tuned to preserve the float32 ranking (Distill-VQ / JPQ).

    Parameters
    ----------
    M, opq, max_train, seed: as :class:`~heron.codecs.pq.PQCodec`.
    epochs: passes over the training queries.
    n_queries: pseudo-queries sampled from the corpus when ``fit`` gets no ``queries``.
    candidates: ``L``, the teacher's and the student's top list lengths per query.
    temperature: ``T`` of the listwise softmax.
    lr: Adam learning rate on the centroids.
    batch_size: queries per gradient step.
    """

    kind = "dpq"

    def __init__(
        self,
        *,
        M: int = 48,
        opq: bool = False,
        epochs: int = 3,
        n_queries: int = 2048,
        candidates: int = 100,
        temperature: float = 0.02,
        lr: float = 1e-3,
        batch_size: int = 64,
        max_train: int = 65536,
        seed: int = 0,
    ) -> None:
        super().__init__(M=M, opq=opq, max_train=max_train, seed=seed)
        if epochs < 0 or candidates < 2 or temperature <= 0 or lr <= 0 or batch_size < 1:
            raise ValueError(
                f"bad distillation settings (epochs={epochs}, candidates={candidates}, temperature={temperature}, lr={lr}, batch_size={batch_size}); all must be positive (candidates >= 2)"
            )
        self.epochs, self.n_queries, self.L = int(epochs), int(n_queries), int(candidates)
        self.temperature, self.lr, self.batch_size = float(temperature), float(lr), int(batch_size)
        self.spec = f"d{'opq' if opq else 'pq'}{M}"
        self.history: list[float] = []

    def _fit(
        self,
        x: np.ndarray,
        *,
        queries: np.ndarray | None = None,
        progress: bool = False,
        **kwargs: Any,
    ) -> None:
        super()._fit(x)
        rng = np.random.default_rng(self.seed + 1)
        xs = self._sample(x)
        xr = np.ascontiguousarray(xs @ self.R)
        if queries is None:
            qs = xs[rng.choice(len(xs), min(self.n_queries, len(xs)), replace=False)]
        else:
            qs = as_matrix(queries, what="training queries", dim=x.shape[1])
        qr = np.ascontiguousarray(qs @ self.R)
        L = min(self.L, len(xs))
        t_top = np.empty((len(qr), L), dtype=np.int64)
        for s in range(0, len(qr), 256):
            t_top[s : s + 256] = topk_from_scores(qr[s : s + 256] @ xr.T, L)[1]
        M, ksub, dsub = self.centroids.shape
        C = self.centroids.astype(np.float64)
        m1, m2 = np.zeros_like(C), np.zeros_like(C)
        step = 0
        qsub_all = qr.reshape(len(qr), M, dsub)
        for _ in range(self.epochs):
            codes = self.assign(xr, C.astype(np.float32))
            order = rng.permutation(len(qr))
            losses = []
            for s in range(0, len(order), self.batch_size):
                b = order[s : s + self.batch_size]
                B = len(b)
                qsub = qsub_all[b]  # (B, M, dsub)
                lut = np.einsum("bmd,mkd->bmk", qsub, C, optimize=True)  # (B, M, ksub)
                # student's own top L over the whole training set (hard negatives)
                s_all = np.zeros((B, len(xr)))
                for m in range(M):
                    s_all += lut[:, m, codes[:, m]]
                s_top = topk_from_scores(s_all, L)[1]
                cand = np.concatenate([t_top[b], s_top], axis=1)  # (B, 2L)
                teacher = np.einsum("bd,bld->bl", qr[b], xr[cand], optimize=True) / self.temperature
                cc = codes[cand]  # (B, 2L, M)
                student = (
                    np.take_along_axis(lut, cc.transpose(0, 2, 1).astype(np.int64), axis=2).sum(1)
                    / self.temperature
                )
                pt = np.exp(teacher - teacher.max(1, keepdims=True))
                pt /= pt.sum(1, keepdims=True)
                ls = student - student.max(1, keepdims=True)
                ps = np.exp(ls)
                ps /= ps.sum(1, keepdims=True)
                losses.append(
                    float(
                        (pt * (np.log(pt + 1e-12) - ls + np.log(np.exp(ls).sum(1, keepdims=True))))
                        .sum(1)
                        .mean()
                    )
                )
                g = (ps - pt) / self.temperature / B  # dloss/dstudent_score, (B, 2L)
                # W[m, b, j] = sum_l g[b, l] [cc[b, l, m] == j]
                flat = (
                    np.arange(M)[None, None, :] * B + np.arange(B)[:, None, None]
                ) * ksub + cc.astype(np.int64)
                W = np.bincount(
                    flat.ravel(), weights=np.repeat(g.ravel(), M), minlength=M * B * ksub
                ).reshape(M, B, ksub)
                grad = np.einsum("mbj,bmd->mjd", W, qsub, optimize=True)
                step += 1
                m1 = 0.9 * m1 + 0.1 * grad
                m2 = 0.999 * m2 + 0.001 * grad**2
                C -= self.lr * (m1 / (1 - 0.9**step)) / (np.sqrt(m2 / (1 - 0.999**step)) + 1e-8)
            self.history.append(float(np.mean(losses)) if losses else 0.0)
        self.centroids = C.astype(np.float32)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params, arrays = super()._state()
        params.update(
            epochs=self.epochs, candidates=self.L, temperature=self.temperature, lr=self.lr
        )
        return params, arrays
