"""Biased logistic matrix factorisation (the paper's MF).

logit(u, i) = b + b_u + b_i + p_u . q_i, trained with BCE on positives and sampled negatives and
an L2 penalty ``reg`` on the batch's embeddings and biases. ``fixed_global_bias`` null learns b
(from 0); a number fixes b at that value (the authors fix it at the mean of the binary matrix, 1).

The ``paper`` preset is the authors' model (docs/method.md, "Base recommenders"): plain SGD on the
SUM of the per-sample losses (``loss_reduction: sum``), which is their per-row ``np.add.at`` update
``p_u += lr * (e * q_i - reg_paper * p_u)`` summed over the batch's occurrences of each row, with
e = y - sigmoid(logit); our penalty ``reg * ||p||^2`` has gradient ``2 * reg * p``, so the preset's
``reg`` is their 0.01 / 2.

The ``per_sample`` preset trains by one SGD step per sample in a compiled loop (``compiled``), the
algorithm of cornac's BPR, at lr 0.01.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recsae.recommenders.base import PER_SAMPLE_TRAIN, SHARED_PARAMS, DotRecommender, register


@register("mf")
class MF(DotRecommender):
    """Parameters: user_emb (n_users, dim), item_emb (n_items, dim), user_bias (n_users,),
    item_bias (n_items,), global_bias ()."""

    objective = "pointwise"
    row_tables = ("user_emb", "item_emb")
    default_params = {"dim": 64, "reg": 3e-3, "init_std": 0.1, "fixed_global_bias": None}
    param_schema = {**SHARED_PARAMS, "fixed_global_bias": {"type": ["number", "null"]}}
    default_train = {"epochs": 100, "negatives": 4}
    presets = {
        "paper": {
            "params": {"dim": 20, "reg": 0.005, "init_std": 0.05, "fixed_global_bias": 1.0},
            "train": {
                "epochs": 10,
                "lr": 0.05,
                "optimizer": "sgd",
                "loss_reduction": "sum",
                "batch_size": 256,
                "negative_scheme": "per_user",
                "resample_negatives": False,
                "restore_best": False,
                "early_stopping_patience": 0,
            },
        },
        "per_sample": {"train": PER_SAMPLE_TRAIN},
    }

    def __init__(self, n_users: int, n_items: int, params: dict):
        super().__init__(n_users, n_items, params)
        dim, std = int(params["dim"]), float(params["init_std"])
        self.user_emb = nn.Parameter(torch.randn(n_users, dim) * std)
        self.item_emb = nn.Parameter(torch.randn(n_items, dim) * std)
        self.user_bias = nn.Parameter(torch.zeros(n_users))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        fixed = params.get("fixed_global_bias")
        if fixed is None:
            self.global_bias = nn.Parameter(torch.zeros(()))
        else:
            self.register_buffer("global_bias", torch.tensor(float(fixed)))

    def user_embeddings(self) -> torch.Tensor:
        return self.user_emb

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb

    def bias_terms(self) -> dict[str, torch.Tensor]:
        return {
            "global_bias": self.global_bias,
            "user_bias": self.user_bias,
            "item_bias": self.item_bias,
        }

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """BCE on batch users/items/labels (B,) + reg * mean squared norm of the batch rows."""
        users, items = batch["users"], batch["items"]
        p, q = self.rows(self.user_emb, users), self.rows(self.item_emb, items)
        logits = self.score_pairs(p, q, users, items)
        loss = F.binary_cross_entropy_with_logits(logits, batch["labels"])
        penalty = (p.square().sum(1) + q.square().sum(1)).mean() + (
            self.user_bias[users].square() + self.item_bias[items].square()
        ).mean()
        return loss + float(self.params["reg"]) * penalty

    def row_gradients(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Summed training loss of the batch and its per-sample gradients: with logits z and
        e = sigmoid(z) - y, each sample adds e q + 2 reg p to its user row p, e p + 2 reg q to its
        item row q, e + 2 reg b to each of its two biases, and e to the learned global bias."""
        users, items, labels = batch["users"], batch["items"], batch["labels"]
        reg = float(self.params["reg"])
        p = self.user_emb.detach().index_select(0, users)
        q = self.item_emb.detach().index_select(0, items)
        b_u = self.user_bias.detach().index_select(0, users)
        b_i = self.item_bias.detach().index_select(0, items)
        logits = torch.linalg.vecdot(p, q) + self.global_bias.detach() + b_u + b_i
        penalty = sum(torch.dot(t.view(-1), t.view(-1)) for t in (p, q, b_u, b_i))
        loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") + reg * penalty
        error = torch.sigmoid(logits) - labels
        grads = {
            "user_emb": (users, p.mul(2 * reg).addcmul_(error[:, None], q)),
            "item_emb": (items, q.mul(2 * reg).addcmul_(error[:, None], p)),
            "user_bias": (users, b_u.mul(2 * reg).add_(error)),
            "item_bias": (items, b_i.mul(2 * reg).add_(error)),
        }
        if isinstance(self.global_bias, nn.Parameter):
            grads["global_bias"] = (None, error.sum())
        return loss, grads

    def per_sample_sgd(self, batch: dict[str, torch.Tensor], lr: float) -> tuple[float, int]:
        """``compiled.mf_epoch`` on batch users/items/labels (B,)."""
        from recsae.recommenders.compiled import mf_epoch

        tables = (self.user_emb, self.item_emb, self.user_bias, self.item_bias)
        return mf_epoch(
            *(t.detach().numpy() for t in tables),
            self.global_bias.detach().view(1).numpy(),
            isinstance(self.global_bias, nn.Parameter),
            *(batch[key].numpy() for key in ("users", "items", "labels")),
            lr,
            float(self.params["reg"]),
        )
