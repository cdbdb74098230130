"""Detecting a recommender whose output collapsed onto a dead-ReLU plateau.

When the ReLUs of an MLP die, its output is one constant for every (user, item) pair that reaches
only dead units: a plateau of exactly tied scores. The authors' NCF at Adam lr 0.05 ends like
this on ML-100K (seed 0 of ``config/paper.yaml``: 58% of all user x item logits share one value,
19 distinct logits in all, NDCG@10 0.03, below MostPop); a fully constant output is the extreme
case. A train config with ``collapse_fallback_lr`` checks after every epoch and retrains at that
learning rate (``recsae.recommenders.train.train_with_collapse_fallback``).
"""

from __future__ import annotations

import torch

from recsae.recommenders.base import Recommender

CHECK_USERS = 256
PLATEAU_SHARE = 0.5


class OutputCollapsed(RuntimeError):
    """Raised by training when the model's scores have collapsed onto one value."""

    def __init__(self, model_name: str, epoch: int, lr: float):
        super().__init__(
            f"{model_name}: output collapsed (at least {PLATEAU_SHARE:.0%} of the scores are one "
            f"value) at epoch {epoch} (lr {lr})"
        )
        self.epoch = epoch
        self.lr = lr


@torch.no_grad()
def is_constant_output(model: Recommender, device) -> bool:
    """Whether at least ``PLATEAU_SHARE`` of the logits (U, I) of the first ``CHECK_USERS`` users x
    all items are exactly one value (a continuous, healthy scorer has almost no exact ties)."""
    was_training = model.training
    model.eval()
    users = torch.arange(min(CHECK_USERS, model.n_users), device=device)
    scores = model.full_scores(users)
    model.train(was_training)
    _, counts = torch.unique(scores, return_counts=True)
    return bool(counts.max() >= PLATEAU_SHARE * scores.numel())
