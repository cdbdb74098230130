"""Detecting a recommender whose output collapsed to a constant (every ReLU of an MLP off).

The authors' NCF at Adam lr 0.05 collapses this way on ML-100K in 2 of 3 seeds; a train config
with ``collapse_fallback_lr`` checks after every epoch and retrains at that learning rate
(``recsae.recommenders.train.train_with_collapse_fallback``).
"""

from __future__ import annotations

import torch

from recsae.recommenders.base import Recommender

CHECK_USERS = 256
RELATIVE_TOLERANCE = 1e-6


class OutputCollapsed(RuntimeError):
    """Raised by training when the model's scores no longer depend on the user or the item."""

    def __init__(self, model_name: str, epoch: int, lr: float):
        super().__init__(f"{model_name}: output collapsed to a constant at epoch {epoch} (lr {lr})")
        self.epoch = epoch
        self.lr = lr


@torch.no_grad()
def is_constant_output(model: Recommender, device) -> bool:
    """Whether the logits of the first ``CHECK_USERS`` users x all items (one (U, I) matrix) are
    all equal up to ``RELATIVE_TOLERANCE`` times (1 + their largest magnitude)."""
    was_training = model.training
    model.eval()
    users = torch.arange(min(CHECK_USERS, model.n_users), device=device)
    scores = model.full_scores(users)
    model.train(was_training)
    spread = scores.max() - scores.min()
    return bool(spread <= RELATIVE_TOLERANCE * (1 + scores.abs().max()))
