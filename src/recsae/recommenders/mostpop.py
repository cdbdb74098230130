"""MostPop: every user gets the items ranked by training popularity (the non-personalised
baseline every model is evaluated against, through the same ``rank_metrics``)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


class MostPop:
    """Scores (B, n_items) = number of training interactions of each item, for every user."""

    name = "mostpop"

    def __init__(self, train: sp.csr_matrix, device="cpu"):
        train = sp.csr_matrix(train)
        train.sum_duplicates()
        counts = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float32)
        self.popularity = torch.as_tensor(counts, device=device)

    def full_scores(self, users: torch.Tensor) -> torch.Tensor:
        """(len(users), n_items) popularity scores."""
        return self.popularity.to(users.device).expand(len(users), -1)
