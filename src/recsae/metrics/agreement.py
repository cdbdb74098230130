"""Agreement between two rankings of the same candidates: overlap@K, RBO, two Kendall taus.

Every function works on a batch of users at once. Lists are (B, k) LongTensors of distinct item ids,
best first; scores are (B, n_items) float tensors.

* ``overlap_at(a, b, d)`` = |a[:d] ∩ b[:d]| / d.
* ``rbo(a, b, p)``: rank-biased overlap truncated at the list depth k (Webber, Moffat & Zobel 2010,
  eq. 4 cut at k), ``(1-p) * sum_{d=1..k} p^(d-1) * A_d`` with ``A_d = |a[:d] ∩ b[:d]| / d``.
  This is the paper's number: identical lists score ``1 - p^k`` (0.9576 for p=0.9, k=30).
* ``rbo_ext(a, b, p)``: the extrapolated RBO of the same paper (eq. 32 for equal-length lists),
  ``rbo(a, b, p) + A_k * p^k``; identical lists score 1.
* ``kendall_tau_b(x, y, mask)``: Kendall's tau-b (as ``scipy.stats.kendalltau``) per row over the
  entries where ``mask`` is true; NaN where undefined (fewer than two distinct values).
* ``rank_tau(a, b)``: the authors' Kendall tau (their ``kendall_tau``): tau-b over the union of the
  two lists a, b (B, k) of the item RANKS, an item missing from a list ranked k + 1 in it (so all
  the items a list misses tie at k + 1).
* ``union_tau(scores_a, scores_b, a, b)``: tau-b of the two SCORE vectors restricted to the union
  of both lists (our earlier definition).
* ``ranking_agreement``: both top-k lists from two score matrices over the same candidate set, and
  the per-user overlap@K, RBO, RBO_ext, ``kendall_tau`` (= ``rank_tau``, the paper's number) and
  ``kendall_tau_b_scores`` (= ``union_tau``). Both are negative for lists that mostly disagree (an
  item in only one list is ranked high by one side and low by the other; two disjoint top-30 lists
  have rank tau -0.674) and 1 for identical lists; they differ most at low overlap, where the rank
  tau ties every missing item at k + 1 while the score tau still orders them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recsae.metrics.topk import topk_by_id


def exclusion_mask(matrix: sp.csr_matrix, rows, device="cpu") -> torch.Tensor:
    """(B, n_cols) bool mask, True where ``matrix[rows]`` has a stored entry."""
    sub = matrix[np.asarray(rows, dtype=np.int64)].tocsr()
    counts = np.diff(sub.indptr)
    mask = torch.zeros(sub.shape, dtype=torch.bool, device=device)
    row_idx = torch.as_tensor(np.repeat(np.arange(sub.shape[0]), counts), device=device)
    col_idx = torch.as_tensor(sub.indices.astype(np.int64), device=device)
    mask[row_idx, col_idx] = True
    return mask


def topk_lists(scores: torch.Tensor, k: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """(B, k) ids of the k best-scored columns of ``scores`` (B, I), skipping ``exclude`` (B, I);
    equal scores go to the lower item id.

    Raises ValueError when a row has fewer than k candidates left.
    """
    if exclude is not None:
        n_candidates = scores.shape[1] - exclude.sum(1)
        if bool((n_candidates < k).any()):
            raise ValueError(
                f"top-{k} lists need at least {k} candidate items per user; the smallest row has "
                f"{int(n_candidates.min())} after exclusion"
            )
        scores = scores.masked_fill(exclude, float("-inf"))
    elif scores.shape[1] < k:
        raise ValueError(
            f"top-{k} lists need at least {k} items, the catalogue has {scores.shape[1]}"
        )
    return topk_by_id(scores, k, dim=1)[1]


def _matches(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, k, k) bool: ``a[:, i] == b[:, j]``."""
    return a[:, :, None] == b[:, None, :]


def overlap_curve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, k) float64: column d-1 holds |a[:d] ∩ b[:d]| for d = 1..k (lists of distinct ids)."""
    cum = _matches(a, b).to(torch.float64).cumsum(1).cumsum(2)
    return cum.diagonal(dim1=1, dim2=2)


def overlap_at(a: torch.Tensor, b: torch.Tensor, depth: int) -> torch.Tensor:
    """(B,) |a[:depth] ∩ b[:depth]| / depth."""
    if not 1 <= depth <= min(a.shape[1], b.shape[1]):
        raise ValueError(f"overlap depth {depth} must be in [1, {min(a.shape[1], b.shape[1])}]")
    return overlap_curve(a[:, :depth], b[:, :depth])[:, -1] / depth


def rbo(a: torch.Tensor, b: torch.Tensor, p: float = 0.9) -> torch.Tensor:
    """(B,) RBO truncated at the list depth k (max ``1 - p**k``); a, b (B, k)."""
    k = a.shape[1]
    depth = torch.arange(1, k + 1, dtype=torch.float64, device=a.device)
    agreement = overlap_curve(a, b) / depth
    return (1 - p) * (agreement * p ** (depth - 1)).sum(1)


def rbo_ext(a: torch.Tensor, b: torch.Tensor, p: float = 0.9) -> torch.Tensor:
    """(B,) extrapolated RBO (Webber et al. 2010, eq. 32, equal depths); identical lists give 1."""
    k = a.shape[1]
    return rbo(a, b, p) + overlap_curve(a, b)[:, -1] / k * p**k


def kendall_tau_b(
    x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """(B,) float64 Kendall tau-b of rows of x, y (B, n) over entries where ``mask`` (B, n) is True.

    tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2)); NaN where a row has no untied pair in x or in y.
    """
    x, y = x.to(torch.float64), y.to(torch.float64)
    sx = torch.sign(x[:, :, None] - x[:, None, :])
    sy = torch.sign(y[:, :, None] - y[:, None, :])
    if mask is not None:
        pair = (mask[:, :, None] & mask[:, None, :]).to(torch.float64)
        sx, sy = sx * pair, sy * pair
    num = (sx * sy).sum((1, 2))
    den = torch.sqrt(sx.abs().sum((1, 2)) * sy.abs().sum((1, 2)))
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, float("nan")))


def union_tau(
    scores_a: torch.Tensor, scores_b: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """(B,) tau-b between rows of scores_a and scores_b (B, I) on the union of lists a, b (B, k)."""
    union = torch.cat([a, b], dim=1)
    keep = torch.cat([torch.ones_like(a, dtype=torch.bool), ~_matches(a, b).any(1)], dim=1)
    return kendall_tau_b(scores_a.gather(1, union), scores_b.gather(1, union), keep)


def rank_tau(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) the authors' Kendall tau of top lists a, b (B, k): tau-b of the two lists' ranks of
    every item of their union; an item absent from a list has rank k + 1 there."""
    k = a.shape[1]
    matches = _matches(a, b)  # (B, k, k): a[:, i] == b[:, j]
    keep = torch.cat([torch.ones_like(a, dtype=torch.bool), ~matches.any(1)], dim=1)
    position = torch.arange(1, k + 1, dtype=torch.float64, device=a.device).expand(a.shape)
    missing = torch.full_like(position, k + 1)
    rank_in_b_of_a = torch.where(matches.any(2), (matches * position[:, None, :]).sum(2), missing)
    ranks_a = torch.cat([position, missing], dim=1)
    ranks_b = torch.cat([rank_in_b_of_a, position], dim=1)
    return kendall_tau_b(ranks_a, ranks_b, keep)


def ranking_agreement(
    scores_a: torch.Tensor,
    scores_b: torch.Tensor,
    exclude: torch.Tensor | None,
    k: int = 30,
    p: float = 0.9,
    overlap_ks=(10, 30),
) -> dict[str, torch.Tensor]:
    """Per-user agreement of two score matrices (B, I) over the same candidates.

    Returns (B,) float64 tensors under "rbo", "rbo_ext", "kendall_tau" (rank-based, the paper's),
    "kendall_tau_b_scores" (score-based) and "overlap@K" per K.
    """
    a, b = topk_lists(scores_a, k, exclude), topk_lists(scores_b, k, exclude)
    out = {
        "rbo": rbo(a, b, p),
        "rbo_ext": rbo_ext(a, b, p),
        "kendall_tau": rank_tau(a, b),
        "kendall_tau_b_scores": union_tau(scores_a, scores_b, a, b),
    }
    for depth in overlap_ks:
        out[f"overlap@{depth}"] = overlap_at(a, b, depth)
    return out
