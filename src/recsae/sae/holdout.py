"""Which users the SAE never sees in training: fidelity is measured on them."""

from __future__ import annotations

import numpy as np

from recsae.errors import DataError
from recsae.seeding import numpy_rng


def split_sae_users(
    n_users: int, holdout_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted int64 arrays (train_users, heldout_users): a seeded random ``holdout_fraction`` of
    0..n_users-1 is held out (at least one user when the fraction is positive)."""
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"sae holdout_fraction must be in [0, 1), got {holdout_fraction}")
    n_heldout = int(round(n_users * holdout_fraction))
    if holdout_fraction > 0:
        n_heldout = max(1, n_heldout)
    if n_users - n_heldout < 1:
        raise DataError(
            f"{n_users} user(s): the SAE user holdout (holdout_fraction {holdout_fraction}) "
            "leaves none to train on; lower sae holdout_fraction or use more users"
        )
    order = numpy_rng(seed, "sae_user_holdout").permutation(n_users)
    return np.sort(order[n_heldout:]).astype(np.int64), np.sort(order[:n_heldout]).astype(np.int64)
