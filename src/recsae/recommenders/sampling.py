"""Negative sampling and the per-epoch training samples.

Negatives are drawn from ``uniform`` (every item alike) or ``popularity`` (probability proportional
to training popularity ** exponent; exponent 0 is uniform) and are NEVER a training positive of
their user: all draws happen at once, collisions are found in a bitmap of the training matrix
(one bit per user-item pair, up to ``BITMAP_MAX_BITS``, 1 GiB; 442 MiB at ML-20M size) or, for
larger matrices, by a binary search in each user's sorted row (``compiled``), and only the
collisions are drawn again.

Two schemes decide how many negatives an epoch holds (train setting ``negative_scheme``):
``per_positive`` draws ``negatives`` per training positive, with replacement; ``per_user`` (the
authors' code) gives each user as many DISTINCT negatives as the user has interactions in the
whole split, drawn without replacement from the items the user never interacted with in any
part of it (``per_user_negatives``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsae.recommenders.compiled import bitmap_contains, row_bitmap, row_contains

SAMPLERS = ("uniform", "popularity")
BITMAP_MAX_BITS = 2**33


class NegativeSampler:
    """Draws, for each given user, an item that is not one of the user's training positives."""

    def __init__(
        self,
        train: sp.csr_matrix,
        kind: str = "uniform",
        exponent: float = 1.0,
        max_rounds: int = 1000,
    ):
        if kind not in SAMPLERS:
            raise ValueError(f"sampler {kind!r} is unknown; choose one of {SAMPLERS}")
        train = sp.csr_matrix(train)
        train.sum_duplicates()
        self.n_users, self.n_items = train.shape
        self.kind = kind
        self.max_rounds = max_rounds
        indptr, indices = train.indptr.astype(np.int64), train.indices.astype(np.int64)
        # one membership structure: the bitmap, or the CSR rows where the bitmap would not fit
        if self.n_users * self.n_items <= BITMAP_MAX_BITS:
            self.bitmap, self.rows = row_bitmap(indptr, indices, self.n_items), None
        else:
            self.bitmap, self.rows = None, (indptr, indices)
        self.popularity = np.bincount(train.indices, minlength=self.n_items).astype(np.float64)
        self.positives_per_user = np.diff(indptr)
        if kind == "popularity":
            weights = self.popularity**exponent
            if weights.sum() <= 0:
                raise ValueError("popularity sampler: no item has positive sampling weight")
            self.cdf = np.cumsum(weights)
            self.probabilities = weights / weights.sum()
        else:
            self.cdf = None
            self.probabilities = np.full(self.n_items, 1.0 / self.n_items)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Bool (N,): whether (users[n], items[n]) is a training positive."""
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        if self.rows is None:
            return bitmap_contains(self.bitmap, self.n_items, users, items)
        return row_contains(*self.rows, users, items)

    def draw(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """(size,) int64 items from the sampling distribution, positives not yet removed."""
        if self.cdf is None:
            return rng.integers(0, self.n_items, size=size, dtype=np.int64)
        idx = np.searchsorted(self.cdf, rng.random(size) * self.cdf[-1], side="right")
        return np.minimum(idx, self.n_items - 1).astype(np.int64)

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N,) int64 negatives for users (N,): none is a training positive of its user."""
        users = np.asarray(users, dtype=np.int64)
        items = self.draw(len(users), rng)
        todo = np.flatnonzero(self.is_positive(users, items))
        for _ in range(self.max_rounds):
            if len(todo) == 0:
                return items
            items[todo] = self.draw(len(todo), rng)
            todo = todo[self.is_positive(users[todo], items[todo])]
        stuck = np.unique(users[todo])[:10].tolist()
        raise RuntimeError(
            f"{self.kind} sampler: no negative found after {self.max_rounds} rounds for users "
            f"{stuck} (they interacted with (almost) every item that can be sampled)"
        )


def per_user_negatives(
    counts: np.ndarray, sampler: NegativeSampler, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) int64 arrays (counts.sum(),): ``counts[u]`` distinct items per user u, none
    of them a positive of ``sampler``'s matrix, drawn without replacement from ``sampler``'s
    distribution (every draw at once; a collision with a positive or with an earlier draw of the
    same user is drawn again). Users are in ascending order, each user's items in draw order."""
    counts = np.asarray(counts, dtype=np.int64)
    short = np.flatnonzero(counts > sampler.n_items - sampler.positives_per_user)
    if len(short):
        raise ValueError(
            f"negative_scheme per_user: user(s) {short[:10].tolist()} need more negatives than "
            "the items they never interacted with"
        )
    users = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    items = sampler.draw(len(users), rng)
    todo = np.arange(len(users))
    for _ in range(sampler.max_rounds):
        keys = users * sampler.n_items + items
        _, first = np.unique(keys, return_index=True)
        repeated = np.ones(len(users), dtype=bool)
        repeated[first] = False
        todo = np.flatnonzero(repeated | sampler.is_positive(users, items))
        if len(todo) == 0:
            return users, items
        items[todo] = sampler.draw(len(todo), rng)
    raise RuntimeError(
        f"negative_scheme per_user: no distinct negatives after {sampler.max_rounds} rounds for "
        f"users {np.unique(users[todo])[:10].tolist()}"
    )


def train_pairs(train: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) int64 arrays (nnz,) of the distinct training positives."""
    train = sp.csr_matrix(train)
    train.sum_duplicates()
    users = np.repeat(np.arange(train.shape[0], dtype=np.int64), np.diff(train.indptr))
    return users, train.indices.astype(np.int64)


def pointwise_epoch(
    users: np.ndarray,
    items: np.ndarray,
    sampler: NegativeSampler,
    ratio: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Shuffled samples of one epoch for BCE: every positive (label 1) and ``ratio`` fresh
    negatives per positive (label 0). Arrays of length nnz * (1 + ratio)."""
    neg_users = np.tile(users, ratio)
    all_users = np.concatenate([users, neg_users])
    all_items = np.concatenate([items, sampler.sample(neg_users, rng)])
    labels = np.concatenate([np.ones(len(users), np.float32), np.zeros(len(neg_users), np.float32)])
    order = rng.permutation(len(all_users))
    return {"users": all_users[order], "items": all_items[order], "labels": labels[order]}


def per_user_epoch(
    users: np.ndarray,
    items: np.ndarray,
    counts: np.ndarray,
    sampler: NegativeSampler,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Shuffled samples of one epoch for BCE under ``negative_scheme: per_user``: every training
    positive (users, items (nnz,), label 1) and ``per_user_negatives(counts, sampler)`` (label 0).
    Arrays of length nnz + counts.sum()."""
    neg_users, neg_items = per_user_negatives(counts, sampler, rng)
    all_users = np.concatenate([users, neg_users])
    all_items = np.concatenate([items, neg_items])
    labels = np.concatenate([np.ones(len(users), np.float32), np.zeros(len(neg_users), np.float32)])
    order = rng.permutation(len(all_users))
    return {"users": all_users[order], "items": all_items[order], "labels": labels[order]}


def pairwise_epoch(
    users: np.ndarray,
    items: np.ndarray,
    sampler: NegativeSampler,
    ratio: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Shuffled (user, positive, negative) triples of one epoch for BPR: every positive repeated
    ``ratio`` times, each with one fresh negative. Arrays of length nnz * ratio."""
    rep_users, rep_items = np.tile(users, ratio), np.tile(items, ratio)
    neg = sampler.sample(rep_users, rng)
    order = rng.permutation(len(rep_users))
    return {"users": rep_users[order], "pos": rep_items[order], "neg": neg[order]}


def reshuffle(arrays: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The same samples (equal-length arrays) in a fresh random order: an epoch that keeps the
    previous epoch's negatives (``resample_negatives: false``)."""
    order = rng.permutation(len(next(iter(arrays.values()))))
    return {k: v[order] for k, v in arrays.items()}
