"""BPR-MF: dot-product matrix factorisation trained with the pairwise BPR loss
-log sigmoid(s(u, pos) - s(u, neg)), one sampled negative per positive, L2 ``reg``.

The ``per_sample`` preset trains by one SGD step per triple in a compiled loop (``compiled``), the
algorithm of cornac's BPR (whose lambda_reg 0.01 is our reg 0.005, the default), at lr 0.01."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recsae.recommenders.base import PER_SAMPLE_TRAIN, SHARED_PARAMS, DotRecommender, register


@register("bpr")
class BPR(DotRecommender):
    """Parameters: user_emb (n_users, dim), item_emb (n_items, dim); no biases."""

    objective = "pairwise"
    row_tables = ("user_emb", "item_emb")
    default_params = {"dim": 64, "reg": 5e-3, "init_std": 0.1}
    param_schema = SHARED_PARAMS
    default_train = {"epochs": 200}
    presets = {"per_sample": {"train": PER_SAMPLE_TRAIN}}

    def __init__(self, n_users: int, n_items: int, params: dict):
        super().__init__(n_users, n_items, params)
        dim, std = int(params["dim"]), float(params["init_std"])
        self.user_emb = nn.Parameter(torch.randn(n_users, dim) * std)
        self.item_emb = nn.Parameter(torch.randn(n_items, dim) * std)

    def user_embeddings(self) -> torch.Tensor:
        return self.user_emb

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """BPR on batch users/pos/neg (B,) + reg * mean squared norm of the batch rows."""
        return bpr_loss(
            self.rows(self.user_emb, batch["users"]),
            self.rows(self.item_emb, batch["pos"]),
            self.rows(self.item_emb, batch["neg"]),
            float(self.params["reg"]),
        )

    def row_gradients(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Summed training loss of the batch and its per-sample gradients: with
        x = u.(pos - neg) and e = -sigmoid(-x), each sample adds e (pos - neg) + 2 reg u to its
        user row, e u + 2 reg pos to the positive item's row and 2 reg neg - e u to the
        negative's."""
        users, pos, neg = batch["users"], batch["pos"], batch["neg"]
        reg = float(self.params["reg"])
        u = self.user_emb.detach().index_select(0, users)
        items = torch.cat([pos, neg])
        rows = self.item_emb.detach().index_select(0, items)
        p, q = rows[: len(pos)], rows[len(pos) :]
        difference = p - q
        x = torch.linalg.vecdot(u, difference)
        penalty = torch.dot(u.view(-1), u.view(-1)) + torch.dot(rows.view(-1), rows.view(-1))
        loss = -F.logsigmoid(x).sum() + reg * penalty
        error = -torch.sigmoid(-x)[:, None]
        item_grads = rows.mul(2 * reg)
        item_grads[: len(pos)].addcmul_(error, u)
        item_grads[len(pos) :].addcmul_(error, u, value=-1.0)
        return loss, {
            "user_emb": (users, u.mul(2 * reg).addcmul_(error, difference)),
            "item_emb": (items, item_grads),
        }

    def per_sample_sgd(self, batch: dict[str, torch.Tensor], lr: float) -> tuple[float, int]:
        """``compiled.bpr_epoch`` on batch users/pos/neg (B,)."""
        from recsae.recommenders.compiled import bpr_epoch

        return bpr_epoch(
            self.user_emb.detach().numpy(),
            self.item_emb.detach().numpy(),
            *(batch[key].numpy() for key in ("users", "pos", "neg")),
            lr,
            float(self.params["reg"]),
        )


def bpr_loss(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, reg: float) -> torch.Tensor:
    """mean -log sigmoid(u.pos - u.neg) + reg * mean(|u|^2 + |pos|^2 + |neg|^2); rows (B, d)."""
    diff = (u * (pos - neg)).sum(1)
    penalty = (u.square().sum(1) + pos.square().sum(1) + neg.square().sum(1)).mean()
    return -F.logsigmoid(diff).mean() + reg * penalty
