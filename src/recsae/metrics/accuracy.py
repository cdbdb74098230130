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

``RankingTask`` prepares the exclusion and relevance of one evaluation once (sparse matrices
converted, per-batch index tensors on the device); ``evaluate`` then ranks any number of score
functions against it (every epoch's validation, original vs reconstructed embeddings, every
intervention level). ``rank_metrics`` is the one-shot form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

AT_K_METRICS = ("hr", "ndcg", "mrr", "recall", "precision")
SORT_ABOVE_MEAN_RELEVANT = 16.0
BLOCK_ELEMENTS = 1 << 18


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
    task = RankingTask(exclude, relevant, ks, users, batch_size=batch_size, device=device)
    return task.evaluate(score_fn, per_user=per_user)


@dataclass
class _Batch:
    """Index tensors of one user batch, rows ordered by decreasing number of relevant items.

    users (B,) ascending ids (score_fn's input); order (B,) the score rows in processing order,
    None when that is the given order; unsort (B,) processing row of each user. In processing
    order: excluded (E,) and relevant (P,) flat positions in the (B, I) score block; rel_rows,
    rel_cols, rel_slots (P,) row, item and position within the row; n_rel, n_cand (B,); counts
    the n_rel as a list.
    """

    users: torch.Tensor
    order: torch.Tensor | None
    excluded: torch.Tensor
    relevant: torch.Tensor
    rel_rows: torch.Tensor
    rel_cols: torch.Tensor
    rel_slots: torch.Tensor
    n_rel: torch.Tensor
    n_cand: torch.Tensor
    unsort: torch.Tensor
    counts: list[int]


class RankingTask:
    """One full-ranking evaluation prepared once: which items each user must not see and which
    are relevant, for the users that have a relevant item (restricted to ``users`` when given).

    exclude, relevant: (n_users, n_items) sparse, nonzero = member (relevant items that are also
    excluded are dropped). ``evaluate`` takes a score function and returns the metrics.
    """

    def __init__(
        self,
        exclude: sp.csr_matrix,
        relevant: sp.csr_matrix,
        ks: list[int],
        users: np.ndarray | None = None,
        batch_size: int = 1024,
        device="cpu",
    ):
        exclude, relevant = _binary_csr(exclude), _binary_csr(relevant)
        if exclude.shape != relevant.shape:
            raise ValueError(
                f"exclude {exclude.shape} and relevant {relevant.shape} differ in shape"
            )
        self.ks = sorted({int(k) for k in ks})
        if not self.ks or self.ks[0] < 1:
            raise ValueError(f"ks must be positive integers, got {ks}")
        relevant = _binary_csr(relevant - relevant.multiply(exclude))
        self.n_items = relevant.shape[1]
        eval_users = np.flatnonzero(np.diff(relevant.indptr) > 0)
        if users is not None:
            eval_users = np.intersect1d(eval_users, np.asarray(users, dtype=np.int64))
        self.users = eval_users
        self.device = torch.device(device)
        self.batches = [
            self._batch(eval_users[start : start + batch_size], exclude, relevant)
            for start in range(0, len(eval_users), batch_size)
        ]

    def _batch(self, users: np.ndarray, exclude: sp.csr_matrix, relevant: sp.csr_matrix):
        n_rel = np.diff(relevant.indptr)[users]
        order = np.argsort(-n_rel, kind="stable")
        ordered = users[order]
        excluded = _flat_positions(exclude[ordered], self.n_items)
        rel = relevant[ordered]
        rows = np.repeat(np.arange(len(users), dtype=np.int64), np.diff(rel.indptr))
        slots = np.arange(rel.nnz, dtype=np.int64) - rel.indptr[rows]
        cols = rel.indices.astype(np.int64)

        def tensor(array):
            return torch.as_tensor(array, device=self.device)

        return _Batch(
            users=tensor(users.astype(np.int64)),
            order=None if np.array_equal(order, np.arange(len(order))) else tensor(order),
            excluded=tensor(excluded),
            relevant=tensor(rows * self.n_items + cols),
            rel_rows=tensor(rows),
            rel_cols=tensor(cols),
            rel_slots=tensor(slots),
            n_rel=tensor(n_rel[order]),
            n_cand=tensor(self.n_items - np.diff(exclude.indptr)[ordered]),
            unsort=tensor(np.argsort(order)),
            counts=n_rel[order].tolist(),
        )

    def evaluate(
        self, score_fn: Callable[[torch.Tensor], torch.Tensor], per_user: bool = False
    ) -> dict:
        """Mean metrics of score_fn(users LongTensor (B,)) -> FloatTensor (B, n_items) over the
        task's users: {"hr@10": float, ..., "mpr": float, "n_users": int}; with ``per_user``
        also "users" (n_eval,) ascending ids and "per_user" {metric: (n_eval,) array}."""
        parts: dict[str, list[torch.Tensor]] = {}
        with torch.no_grad():
            for batch in self.batches:
                scores = score_fn(batch.users)
                if scores.shape != (len(batch.users), self.n_items):
                    raise ValueError(
                        f"score_fn returned shape {tuple(scores.shape)}, "
                        f"expected {(len(batch.users), self.n_items)}"
                    )
                for name, value in _batch_metrics(scores, batch, self.ks).items():
                    parts.setdefault(name, []).append(value[batch.unsort].cpu())
        names = [f"{m}@{k}" for k in self.ks for m in AT_K_METRICS] + ["mpr"]
        values = {n: torch.cat(parts[n]).numpy() if parts else np.zeros(0) for n in names}
        result: dict = {n: float(v.mean()) if len(v) else float("nan") for n, v in values.items()}
        result["n_users"] = int(len(self.users))
        if per_user:
            result["users"] = self.users
            result["per_user"] = values
        return result


def _binary_csr(mat) -> sp.csr_matrix:
    mat = sp.csr_matrix(mat, dtype=np.float32)
    mat.sum_duplicates()
    mat.eliminate_zeros()
    mat.data[:] = 1.0
    return mat


def _flat_positions(mat: sp.csr_matrix, n_cols: int) -> np.ndarray:
    """Flat positions row * n_cols + col (nnz,) of a CSR matrix's entries."""
    rows = np.repeat(np.arange(mat.shape[0], dtype=np.int64), np.diff(mat.indptr))
    return rows * n_cols + mat.indices.astype(np.int64)


def _ranking_scores(scores: torch.Tensor, batch: _Batch) -> torch.Tensor:
    """A copy of scores (B, I) with rows in the batch's order, 16-bit floats widened to float32
    (exact), +-inf clamped to the finite range and excluded items at -inf (below every
    candidate). Raises on NaN."""
    if scores.dtype.itemsize < 4:
        scores = scores.float()
    finfo = torch.finfo(scores.dtype)
    if batch.order is None:
        scores = scores.detach().clamp(finfo.min, finfo.max)
    else:
        scores = scores.detach().index_select(0, batch.order).clamp_(finfo.min, finfo.max)
    if not torch.isfinite(scores.sum()) and torch.isnan(scores).any():
        raise ValueError("score_fn returned NaN scores")
    scores.view(-1)[batch.excluded] = float("-inf")
    return scores


def _batch_metrics(scores: torch.Tensor, batch: _Batch, ks: list[int]) -> dict[str, torch.Tensor]:
    """Per-user metrics (B,), in the batch's processing order, of the score block (B, I)."""
    scores = _ranking_scores(scores, batch)
    device, dtype = scores.device, scores.dtype
    n_rows = scores.shape[0]
    rel_rows = batch.rel_rows
    if len(rel_rows) > SORT_ABOVE_MEAN_RELEVANT * n_rows or scores.shape[1] >= 1 << 24:
        ranks = _ranks_by_sort(scores, batch)
    else:
        ranks = _ranks_by_count(scores, batch)
    ranks_f = ranks.to(dtype)
    n_rel = batch.n_rel.to(dtype)
    out = {}
    discount = 1.0 / torch.log2(torch.arange(max(ks), device=device, dtype=dtype) + 2.0)
    ideal = torch.cumsum(discount, 0)
    best = torch.full((n_rows,), scores.shape[1], device=device, dtype=ranks.dtype)
    best = best.scatter_reduce(0, rel_rows, ranks, reduce="amin")
    for k in ks:
        hit = ranks < k
        hits = torch.zeros(n_rows, device=device, dtype=dtype).index_add_(
            0, rel_rows, hit.to(dtype)
        )
        gains = torch.where(hit, 1.0 / torch.log2(ranks_f + 2.0), torch.zeros_like(ranks_f))
        dcg = torch.zeros(n_rows, device=device, dtype=dtype).index_add_(0, rel_rows, gains)
        idcg = ideal[(batch.n_rel.clamp(max=k) - 1).long()]
        out[f"hr@{k}"] = (hits > 0).to(dtype)
        out[f"ndcg@{k}"] = dcg / idcg
        out[f"mrr@{k}"] = torch.where(best < k, 1.0 / (best.to(dtype) + 1.0), 0.0)
        out[f"recall@{k}"] = hits / n_rel
        out[f"precision@{k}"] = hits / k
    denom = (batch.n_cand[rel_rows] - 1).clamp(min=1).to(dtype)
    pct = torch.zeros(n_rows, device=device, dtype=dtype).index_add_(0, rel_rows, ranks_f / denom)
    out["mpr"] = pct / n_rel
    return out


def _ranks_by_count(scores: torch.Tensor, batch: _Batch) -> torch.Tensor:
    """0-based ranks (P,) of the batch's relevant items, by counting better items.

    The relevant scores sit in a (B, max n_rel) threshold table. For a block of rows that fits in
    cache, sign(s_j - t) of every item against every threshold of its row is summed twice:
    sum = #ahead - #behind and sum of |.| = #ahead + #behind, which give #ahead and #equal in
    a few passes of vectorised float arithmetic (exact: the counts stay below 2^24; torch's
    comparison operators, which write bools, cost several times more per element). Rows come
    sorted by n_rel, so a block stops at its longest row; only blocks where an item ties with a
    relevant one pay for the lower-id count (a cumulative sum).
    """
    n_rows, n_items = scores.shape
    width = batch.counts[0] if batch.counts else 0

    def table(values: torch.Tensor, pad: float) -> torch.Tensor:
        """(B, width) layout of per-pair values (P,), ``pad`` where a row has fewer pairs."""
        out = torch.full((n_rows, width), pad, device=scores.device, dtype=scores.dtype)
        out[batch.rel_rows, batch.rel_slots] = values
        return out

    thresholds = table(scores.view(-1)[batch.relevant], float("inf"))
    columns = table(batch.rel_cols.to(scores.dtype), 0.0)
    ranks = torch.zeros((n_rows, width), dtype=scores.dtype, device=scores.device)
    start = 0
    while start < n_rows:
        slots = batch.counts[start]
        rows = slice(start, start + max(1, BLOCK_ELEMENTS // (n_items * slots)))
        signs = (scores[rows, None, :] - thresholds[rows, :slots, None]).sign_()
        difference = signs.sum(2)
        unequal = signs.abs_().sum(2)
        ranks[rows, :slots] = (difference + unequal) / 2
        if bool((unequal < n_items - 1).any()):
            ranks[rows, :slots] += _lower_ties(signs, columns[rows, :slots])
        start = rows.stop
    return ranks[batch.rel_rows, batch.rel_slots].long()


def _lower_ties(unequal: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """#{j < i: s_j == t} (b, w) from unequal (b, w, I) = |sign(s_j - t)| and the items i (b, w)
    of the thresholds t: i minus the number of unequal items before i."""
    before = unequal.cumsum(2)
    index = (columns.long() - 1).clamp(min=0)[..., None]
    unequal_before = torch.where(columns > 0, before.gather(2, index).squeeze(2), 0.0)
    return columns - unequal_before


def _ranks_by_sort(scores: torch.Tensor, batch: _Batch) -> torch.Tensor:
    """0-based ranks (P,) from one stable descending sort per row (ties: lower id first);
    O(B * I log I), cheaper than counting when users have many relevant items."""
    n_rows, n_items = scores.shape
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    position = torch.arange(n_items, device=scores.device).expand(n_rows, n_items)
    rank_of = torch.empty_like(order).scatter_(1, order, position)
    return rank_of[batch.rel_rows, batch.rel_cols]
