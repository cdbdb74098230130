"""Full-ranking accuracy: HR, NDCG, MRR, Recall, Precision at K and mean percentile rank.

Every user is ranked against ALL items that are not excluded for them (training items, plus
validation items when testing). Ranking rule, used everywhere (and by the brute-force tests):
items are ordered by descending score; ties are broken by LOWER ITEM ID FIRST. So the 0-based rank
of a relevant item i is ``#{j candidate: s_j > s_i} + #{j candidate: s_j == s_i and j < i}``;
other held-out items count as candidates. Scores are computed one user batch at a time; memory
never holds more than one (batch, n_items) score block.

Definitions for a user with relevant set R (held-out items minus excluded ones) and ranks r:
* hr@K = 1 if some r < K; precision@K = hits/K; recall@K = hits/|R|.
* ndcg@K = sum_{r<K} 1/log2(r+2) / sum_{j<min(|R|,K)} 1/log2(j+2)  (binary gains).
* mrr@K = 1/(min r + 1) if min r < K else 0.
* mpr = mean over R of r / (n_candidates - 1): 0 = top, 1 = bottom (0 with one candidate);
  averaged per user, then over users.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

AT_K_METRICS = ("hr", "ndcg", "mrr", "recall", "precision")
SORT_ABOVE_MEAN_RELEVANT = 16.0
_CHUNK_ELEMENTS = 1 << 22


def rank_metrics(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    exclude: sp.csr_matrix,
    relevant: sp.csr_matrix,
    ks: list[int],
    users: np.ndarray | None = None,
    batch_size: int = 1024,
    device="cpu",
    per_user: bool = False,
) -> dict:
    """Mean metrics over users with >= 1 relevant item (restricted to ``users`` when given).

    score_fn(users LongTensor (B,)) -> FloatTensor (B, n_items); exclude, relevant: (n_users,
    n_items) sparse, nonzero = member (relevant items that are also excluded are dropped).
    Returns {"hr@10": float, ..., "mpr": float, "n_users": int}; with ``per_user`` also
    "users" (n_eval,) and "per_user" {metric: (n_eval,) array}.
    """
    exclude, relevant = _binary_csr(exclude), _binary_csr(relevant)
    if exclude.shape != relevant.shape:
        raise ValueError(f"exclude {exclude.shape} and relevant {relevant.shape} differ in shape")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    relevant = _binary_csr(relevant - relevant.multiply(exclude))
    n_items = relevant.shape[1]
    eval_users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if users is not None:
        eval_users = np.intersect1d(eval_users, np.asarray(users, dtype=np.int64))
    device = torch.device(device)
    parts: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for start in range(0, len(eval_users), batch_size):
            batch = eval_users[start : start + batch_size]
            scores = score_fn(torch.as_tensor(batch, dtype=torch.long, device=device))
            if scores.shape != (len(batch), n_items):
                raise ValueError(
                    f"score_fn returned shape {tuple(scores.shape)}, "
                    f"expected {(len(batch), n_items)}"
                )
            for name, value in _batch_metrics(scores, exclude[batch], relevant[batch], ks).items():
                parts.setdefault(name, []).append(value.cpu())
    names = [f"{m}@{k}" for k in ks for m in AT_K_METRICS] + ["mpr"]
    values = {n: torch.cat(parts[n]).numpy() if parts else np.zeros(0) for n in names}
    result: dict = {n: float(v.mean()) if len(v) else float("nan") for n, v in values.items()}
    result["n_users"] = int(len(eval_users))
    if per_user:
        result["users"] = eval_users
        result["per_user"] = values
    return result


def _binary_csr(mat) -> sp.csr_matrix:
    mat = sp.csr_matrix(mat, dtype=np.float32)
    mat.sum_duplicates()
    mat.eliminate_zeros()
    mat.data[:] = 1.0
    return mat


def _batch_metrics(
    scores: torch.Tensor, exclude: sp.csr_matrix, relevant: sp.csr_matrix, ks: list[int]
) -> dict[str, torch.Tensor]:
    """Per-user metrics (B,) for one batch: scores (B, n_items), exclude/relevant (B, n_items)."""
    device = scores.device
    n_rows, n_items = scores.shape
    if torch.isnan(scores).any():
        raise ValueError("score_fn returned NaN scores")
    finfo = torch.finfo(scores.dtype)
    scores = scores.detach().clamp(finfo.min, finfo.max)
    ex_rows, ex_cols = _coords(exclude, device)
    scores[ex_rows, ex_cols] = float("-inf")
    rel_rows, rel_cols = _coords(relevant, device)
    n_rel = torch.as_tensor(np.diff(relevant.indptr), device=device, dtype=scores.dtype)
    n_cand = n_items - torch.as_tensor(np.diff(exclude.indptr), device=device)
    if len(rel_rows) > SORT_ABOVE_MEAN_RELEVANT * n_rows:
        ranks = _ranks_by_sort(scores, rel_rows, rel_cols)
    else:
        ranks = _ranks_by_count(scores, rel_rows, rel_cols)
    ranks_f = ranks.to(scores.dtype)
    out = {}
    discount = 1.0 / torch.log2(torch.arange(max(ks), device=device, dtype=scores.dtype) + 2.0)
    ideal = torch.cumsum(discount, 0)
    best = torch.full((n_rows,), n_items, device=device, dtype=ranks.dtype)
    best = best.scatter_reduce(0, rel_rows, ranks, reduce="amin")
    for k in ks:
        hit = ranks < k
        hits = torch.zeros(n_rows, device=device, dtype=scores.dtype).index_add_(
            0, rel_rows, hit.to(scores.dtype)
        )
        gains = torch.where(hit, 1.0 / torch.log2(ranks_f + 2.0), torch.zeros_like(ranks_f))
        dcg = torch.zeros(n_rows, device=device, dtype=scores.dtype).index_add_(0, rel_rows, gains)
        idcg = ideal[(n_rel.clamp(max=k) - 1).long()]
        out[f"hr@{k}"] = (hits > 0).to(scores.dtype)
        out[f"ndcg@{k}"] = dcg / idcg
        out[f"mrr@{k}"] = torch.where(best < k, 1.0 / (best.to(scores.dtype) + 1.0), 0.0)
        out[f"recall@{k}"] = hits / n_rel
        out[f"precision@{k}"] = hits / k
    denom = (n_cand[rel_rows] - 1).clamp(min=1).to(scores.dtype)
    pct = torch.zeros(n_rows, device=device, dtype=scores.dtype).index_add_(
        0, rel_rows, ranks_f / denom
    )
    out["mpr"] = pct / n_rel
    return out


def _coords(mat: sp.csr_matrix, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices (nnz,) of a CSR matrix as long tensors on ``device``."""
    rows = np.repeat(np.arange(mat.shape[0], dtype=np.int64), np.diff(mat.indptr))
    return (
        torch.as_tensor(rows, device=device),
        torch.as_tensor(mat.indices.astype(np.int64), device=device),
    )


def _ranks_by_count(scores, rows, cols) -> torch.Tensor:
    """0-based ranks (P,) of items cols in rows of scores (B, I), by counting better items;
    O(P * I) in chunks. Tie counts are only computed for pairs that do tie."""
    n_items = scores.shape[1]
    values = scores[rows, cols]
    chunk = max(1, _CHUNK_ELEMENTS // n_items)
    ranks = torch.empty(len(rows), dtype=torch.long, device=scores.device)
    for start in range(0, len(rows), chunk):
        block = scores[rows[start : start + chunk]]
        value = values[start : start + chunk, None]
        ahead = (block > value).sum(1)
        equal = (block == value).sum(1)
        tied = torch.nonzero(equal > 1).squeeze(1)
        if len(tied):
            lower = torch.arange(n_items, device=scores.device) < cols[start + tied, None]
            ahead[tied] += ((block[tied] == value[tied]) & lower).sum(1)
        ranks[start : start + chunk] = ahead
    return ranks


def _ranks_by_sort(scores, rows, cols) -> torch.Tensor:
    """0-based ranks (P,) from one stable descending sort per row (ties: lower id first);
    O(B * I log I), cheaper than counting when users have many relevant items."""
    n_rows, n_items = scores.shape
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    position = torch.arange(n_items, device=scores.device).expand(n_rows, n_items)
    rank_of = torch.empty_like(order).scatter_(1, order, position)
    return rank_of[rows, cols]
