"""SASRec (Kang & McAuley, ICDM 2018): a causal transformer over each user's time-ordered items.

A user's input is their last ``max_len`` TRAINING items by timestamp (ties by item id), left-padded
with the padding id ``n_items``. Position t gets ``E[s_t] * sqrt(dim) + P[t]`` (dropout, padding
zeroed), then ``n_blocks`` pre-norm blocks, each ``Q = LN(h); h = Q + Attn(Q, h, h); h = LN(h);
h = h + FFN(h)`` with padding zeroed after it, then a last LN. Attention is causal: position t
attends to the non-padding positions s <= t (and to itself, so a padding query is defined).

The user representation the SAE analyses is the last position's hidden state over the user's whole
training history (``user_embeddings``, (n_users, dim), cached in eval mode); item embeddings are the
input table E without the padding row (tied, (n_items, dim)); the score is their dot product, so
every SAE metric, baseline and intervention runs on the pair (user state, item table) unchanged.

Training (objective "sequence"): every user with at least two training items is one sample; the
inputs are the user's last ``max_len`` + 1 training items minus the last, the targets the same
minus the first (each position predicts the next item). ``loss: ce`` is the full softmax
cross-entropy over the catalogue at each target position (Klenitskiy & Vasilev, RecSys 2023);
``loss: bce`` the original: ``-log sigmoid(s_pos) - sum_r log(1 - sigmoid(s_neg_r))`` with
``train.negatives`` sampled items per position that are never a training positive of the user.
Both average over the batch's target positions.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from recsae.recommenders.base import CachedStates, DotRecommender, register
from recsae.recommenders.sampling import NegativeSampler

LOSSES = ("ce", "bce")
LAYER_NORM_EPS = 1e-8
ENCODE_CHUNK = 256


def causal_attention_mask(padding: torch.Tensor) -> torch.Tensor:
    """(B, 1, L, L) bool, True where query t may attend to key s: s <= t and s is not padding,
    or s == t. ``padding`` (B, L) bool marks padding positions."""
    length = padding.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=padding.device).tril()
    diagonal = torch.eye(length, dtype=torch.bool, device=padding.device)
    return ((causal & ~padding[:, None, :]) | diagonal)[:, None]


class CausalSelfAttention(nn.Module):
    """Multi-head attention of queries (B, L, dim) over keys/values (B, L, dim) under a mask."""

    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, inputs: torch.Tensor, mask: torch.Tensor):
        """queries, inputs (B, L, dim); mask (B, 1, L, L) bool (True = attend) -> (B, L, dim)."""
        batch, length, dim = queries.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, length, self.n_heads, dim // self.n_heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            heads(self.query(queries)),
            heads(self.key(inputs)),
            heads(self.value(inputs)),
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(attended.transpose(1, 2).reshape(batch, length, dim))


class SASRecBlock(nn.Module):
    """One pre-norm SASRec block: (B, L, dim) -> (B, L, dim), padding rows zeroed."""

    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attention = CausalSelfAttention(dim, n_heads, dropout)
        self.feed_forward_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, dim),
            nn.Dropout(dropout),
            nn.ReLU(),
            nn.Linear(dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor):
        """hidden (B, L, dim), mask (B, 1, L, L), keep (B, L, 1) float (0 at padding)."""
        queries = self.attention_norm(hidden)
        hidden = queries + self.attention(queries, hidden, mask)
        hidden = self.feed_forward_norm(hidden)
        hidden = hidden + self.feed_forward(hidden)
        return hidden * keep


def history_matrix(
    interactions: pd.DataFrame, n_users: int, n_items: int, width: int
) -> np.ndarray:
    """(n_users, width) int64: each user's last ``width`` items of ``interactions`` (columns
    user, item, timestamp) in time order (ties by item id), right-aligned, left-padded with
    ``n_items``."""
    users = interactions["user"].to_numpy(np.int64)
    items = interactions["item"].to_numpy(np.int64)
    order = np.lexsort((items, interactions["timestamp"].to_numpy(np.int64), users))
    users, items = users[order], items[order]
    count = np.bincount(users, minlength=n_users)
    end = np.cumsum(count)
    from_end = end[users] - 1 - np.arange(len(users))
    keep = from_end < width
    out = np.full((n_users, width), n_items, dtype=np.int64)
    out[users[keep], width - 1 - from_end[keep]] = items[keep]
    return out


@register("sasrec")
class SASRec(CachedStates, DotRecommender):
    """Parameters: item_emb (n_items + 1, dim; the last row is padding, kept at zero), pos_emb
    (max_len, dim), blocks, final_norm. Buffers: history (n_users, max_len + 1) item ids (see the
    module doc), final_user (n_users, dim) cached user states, final_valid () bool."""

    objective = "sequence"
    default_params = {
        "dim": 64,
        "n_blocks": 2,
        "n_heads": 1,
        "max_len": 200,
        "dropout": 0.2,
        "loss": "ce",
    }
    param_schema = {
        "dim": {"type": "integer", "minimum": 1},
        "n_blocks": {"type": "integer", "minimum": 1},
        "n_heads": {"type": "integer", "minimum": 1},
        "max_len": {"type": "integer", "minimum": 1},
        "dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "loss": {"enum": list(LOSSES)},
    }
    default_train = {
        "epochs": 200,
        "lr": 1e-3,
        "batch_size": 128,
        "early_stopping_patience": 20,
    }

    def __init__(self, n_users: int, n_items: int, params: dict):
        super().__init__(n_users, n_items, params)
        dim, n_heads = int(params["dim"]), int(params["n_heads"])
        if dim % n_heads:
            raise ValueError(f"params.dim: {dim} is not divisible by params.n_heads {n_heads}")
        self.max_len, self.pad = int(params["max_len"]), n_items
        dropout = float(params["dropout"])
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.pos_emb = nn.Embedding(self.max_len, dim)
        self.input_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            SASRecBlock(dim, n_heads, dropout) for _ in range(int(params["n_blocks"]))
        )
        self.final_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        for weight in self.parameters():
            if weight.dim() > 1:
                nn.init.xavier_normal_(weight)
        with torch.no_grad():
            self.item_emb.weight[n_items].zero_()
        self.register_buffer(
            "history", torch.full((n_users, self.max_len + 1), n_items, dtype=torch.long)
        )
        self.register_buffer("final_user", torch.zeros(n_users, dim))
        self.register_buffer("final_valid", torch.zeros((), dtype=torch.bool))

    def prepare_history(self, interactions: pd.DataFrame) -> None:
        """Store each user's last max_len + 1 training items (``history_matrix``)."""
        matrix = history_matrix(interactions, self.n_users, self.n_items, self.max_len + 1)
        self.history.copy_(torch.from_numpy(matrix))
        self.final_valid.fill_(False)

    def encode(self, sequences: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, L, dim) of item-id sequences (B, L), L <= max_len, right-aligned
        (position t of L gets positional embedding max_len - L + t)."""
        length = sequences.shape[1]
        padding = sequences == self.pad
        keep = (~padding).unsqueeze(-1).to(self.item_emb.weight.dtype)
        hidden = self.item_emb(sequences) * math.sqrt(self.item_emb.embedding_dim)
        hidden = hidden + self.pos_emb.weight[self.max_len - length :]
        hidden = self.input_dropout(hidden) * keep
        mask = causal_attention_mask(padding)
        for block in self.blocks:
            hidden = block(hidden, mask, keep)
        return self.final_norm(hidden)

    def user_states(self, users: torch.Tensor) -> torch.Tensor:
        """(B, dim) last hidden state over the training history of users (B,)."""
        return self.encode(self.history[users, 1:])[:, -1]

    def user_embeddings(self) -> torch.Tensor:
        """(n_users, dim) user states; in eval mode computed once without gradients and cached."""
        if self.training:
            return self._all_user_states()
        if not bool(self.final_valid):
            with torch.no_grad():
                self.final_user.copy_(self._all_user_states())
            self.final_valid.fill_(True)
        return self.final_user

    def _all_user_states(self) -> torch.Tensor:
        users = torch.arange(self.n_users, device=self.history.device)
        return torch.cat(
            [
                self.user_states(users[s : s + ENCODE_CHUNK])
                for s in range(0, self.n_users, ENCODE_CHUNK)
            ]
        )

    def item_embeddings(self) -> torch.Tensor:
        """(n_items, dim): the item table without the padding row."""
        return self.item_emb.weight[: self.n_items]

    def epoch_samples(self, users, items, sampler: NegativeSampler, negatives, rng):
        """{"users": the users with at least two training items, shuffled} and, for ``loss:
        bce``, "neg" (n, max_len, negatives) items that are no training positive of the user."""
        trainable = (self.history[:, -2] != self.pad).cpu().numpy()
        order = rng.permutation(np.flatnonzero(trainable))
        samples = {"users": order}
        if self.params["loss"] == "bce":
            repeated = np.repeat(order, self.max_len * negatives)
            samples["neg"] = sampler.sample(repeated, rng).reshape(
                len(order), self.max_len, negatives
            )
        return samples

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean next-item loss over the target positions of batch users (B,) (module doc)."""
        sequences = self.history[batch["users"]]
        inputs, targets = sequences[:, :-1], sequences[:, 1:]
        hidden = self.encode(inputs)
        targeted = inputs != self.pad
        states = hidden[targeted]
        if self.params["loss"] == "ce":
            logits = states @ self.item_embeddings().T
            return F.cross_entropy(logits, targets[targeted])
        positive = torch.linalg.vecdot(states, self.item_emb(targets[targeted]))
        negative = torch.linalg.vecdot(states[:, None], self.item_emb(batch["neg"][targeted]))
        return (F.softplus(-positive) + F.softplus(negative).sum(-1)).mean()
