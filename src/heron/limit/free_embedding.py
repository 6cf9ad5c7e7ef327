"""The free-embedding experiment: the largest ``n`` whose every top-2 set a ``d``-dim space realises.

Weller et al., "On the Theoretical Limitations of Embedding-Based Retrieval", 2025, section 4:
query and document vectors are free parameters, optimised directly (Adam, full-batch InfoNCE
over all documents, inner product) so that for each of the ``C(n, 2)`` queries its two
relevant documents score above all others. ``n`` is *solved* for ``d`` when every query's top-2
is exactly its pair; the *critical n* of ``d`` is the largest ``n`` solved, found by increasing
``n`` until optimisation fails. The paper fits a polynomial in ``d`` to these points.
"""

from __future__ import annotations

import itertools

from heron._deps import require


def solve_free_embedding(
    n: int, d: int, *, steps: int = 1500, lr: float = 0.1, seed: int = 0
) -> bool:
    """Whether free ``d``-dim embeddings realise every top-2 set of ``n`` documents."""
    if not isinstance(n, int) or n < 3:
        raise ValueError(f"n must be an int >= 3, got {n!r}")
    if not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be an int >= 1, got {d!r}")
    torch = require("torch", purpose="the free-embedding experiment")
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(seed)
    pairs = torch.tensor(list(itertools.combinations(range(n), 2)))
    m = len(pairs)
    q = torch.randn(m, d, generator=g).requires_grad_(True)
    x = torch.randn(n, d, generator=g).requires_grad_(True)
    opt = torch.optim.Adam([q, x], lr=lr)
    rel = torch.zeros(m, n, dtype=torch.bool)
    rel[torch.arange(m), pairs[:, 0]] = True
    rel[torch.arange(m), pairs[:, 1]] = True
    for step in range(steps):
        s = q @ x.T
        neg = s.masked_fill(rel, -1e9)
        # each relevant doc against all non-relevant ones (InfoNCE per positive)
        lse_neg = torch.logsumexp(neg, dim=1, keepdim=True)
        pos = s[rel].view(m, 2)
        loss = (torch.logaddexp(pos, lse_neg) - pos).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 49 or step == steps - 1:
            with torch.no_grad():
                top2 = torch.topk(s, 2, dim=1).indices
                if bool(rel.gather(1, top2).all()):
                    return True
    return False


def critical_n(
    dims,
    *,
    n_start: int = 4,
    n_max: int = 200,
    steps: int = 1500,
    seeds: int = 1,
    progress: bool = True,
) -> dict[int, int]:
    """The critical ``n`` for each ``d`` in ``dims``: the largest ``n`` solved before the first failure."""
    out: dict[int, int] = {}
    n0 = n_start
    for d in dims:
        n = max(n0, 3)
        best = n - 1
        while n <= n_max:
            ok = any(solve_free_embedding(n, int(d), steps=steps, seed=s) for s in range(seeds))
            if progress:
                print(f"d={d} n={n} {'solved' if ok else 'failed'}", flush=True)
            if not ok:
                break
            best = n
            n += 1
        out[int(d)] = best
        n0 = best  # critical n grows with d: start the next search there
    return out
