"""NCF, MLP only (the paper's NCF): logit(u, i) = MLP([e_u; e_i]), 2d -> 64 -> 32 -> 16 -> 1 with
ReLU between layers, trained with BCE on positives and sampled negatives.

The ``paper`` preset is the authors' training (Adam lr 0.05, batch 256, 30 epochs, one negative
per positive drawn once, the last epoch kept). At lr 0.05 the MLP can die (every ReLU off, one
constant output); the preset then retrains from scratch at ``collapse_fallback_lr`` 0.01 and logs
it (docs/method.md, "Base recommenders")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recsae.recommenders.base import SHARED_PARAMS, Recommender, register

_CHUNK_ELEMENTS = 1 << 22


@register("ncf")
class NCF(Recommender):
    """Parameters: user_emb (n_users, dim), item_emb (n_items, dim), mlp (Linear layers)."""

    scorer_kind = "pairwise"
    objective = "pointwise"
    row_tables = ("user_emb", "item_emb")
    default_params = {"dim": 32, "layers": [64, 32, 16], "reg": 0.0, "init_std": 0.1}
    param_schema = {
        **SHARED_PARAMS,
        "layers": {"type": "array", "items": {"type": "integer", "minimum": 1}},
    }
    default_train = {"epochs": 100, "lr": 0.002, "negatives": 4}
    presets = {
        "paper": {
            "params": {"dim": 20, "layers": [64, 32, 16], "reg": 0.0, "init_std": 0.1},
            "train": {
                "epochs": 30,
                "lr": 0.05,
                "batch_size": 256,
                "negative_scheme": "per_user",
                "resample_negatives": False,
                "restore_best": False,
                "early_stopping_patience": 0,
                "collapse_fallback_lr": 0.01,
            },
        }
    }

    def __init__(self, n_users: int, n_items: int, params: dict):
        super().__init__(n_users, n_items, params)
        dim, std = int(params["dim"]), float(params["init_std"])
        self.user_emb = nn.Parameter(torch.randn(n_users, dim) * std)
        self.item_emb = nn.Parameter(torch.randn(n_items, dim) * std)
        sizes = [2 * dim, *[int(h) for h in params["layers"]], 1]
        self.mlp = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )

    def user_embeddings(self) -> torch.Tensor:
        return self.user_emb

    def item_embeddings(self) -> torch.Tensor:
        return self.item_emb

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Layers after the first on first-layer pre-activations (..., h1) -> logits (...)."""
        for layer in self.mlp[1:]:
            hidden = layer(F.relu(hidden))
        return hidden.squeeze(-1)

    def score_pairs(self, user_emb, item_emb, users=None, items=None) -> torch.Tensor:
        """Logits (B,) of MLP([user_emb; item_emb]) for (B, d) rows; ids are ignored."""
        return self._head(self.mlp[0](torch.cat([user_emb, item_emb], dim=-1)))

    def score_matrix(self, user_emb, item_emb, users=None, items=None) -> torch.Tensor:
        """Logits (U, I) for all pairs. The first layer splits as W_u u + W_i i + b, so the pair
        pre-activations are a broadcast sum; users are processed in chunks so at most ~4M
        hidden values exist at once."""
        first = self.mlp[0]
        dim = user_emb.shape[1]
        user_part = F.linear(user_emb, first.weight[:, :dim], first.bias)
        item_part = F.linear(item_emb, first.weight[:, dim:])
        chunk = max(1, _CHUNK_ELEMENTS // max(1, item_emb.shape[0] * first.out_features))
        blocks = [
            self._head(user_part[start : start + chunk, None, :] + item_part[None, :, :])
            for start in range(0, user_emb.shape[0], chunk)
        ]
        if not blocks:
            return user_emb.new_zeros((0, item_emb.shape[0]))
        return torch.cat(blocks, dim=0)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """BCE on batch users/items/labels (B,) + reg * mean squared norm of the batch rows."""
        p, q = self.rows(self.user_emb, batch["users"]), self.rows(self.item_emb, batch["items"])
        loss = F.binary_cross_entropy_with_logits(self.score_pairs(p, q), batch["labels"])
        reg = float(self.params["reg"])
        if reg:
            loss = loss + reg * (p.square().sum(1) + q.square().sum(1)).mean()
        return loss
