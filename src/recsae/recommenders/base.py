"""The interface every base recommender implements, the model registry and checkpoints.

A recommender is a two-tower model: user embeddings (n_users, d), item embeddings (n_items, d) and
a differentiable scorer ``g(user_emb, item_emb)`` that the SAE stage and the metrics call with the
ORIGINAL or with RECONSTRUCTED embeddings. Scores are logits (before any sigmoid).

Adding a model = one module that defines a ``Recommender`` subclass decorated with
``@register("name")`` and is imported by ``recsae.recommenders``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recsae.errors import UserError
from recsae.io import load_torch, save_torch

if TYPE_CHECKING:
    from recsae.recommenders.sampling import NegativeSampler

_REGISTRY: dict[str, type[Recommender]] = {}

# JSON-schema types of the parameters most models share (``Recommender.param_schema``).
SHARED_PARAMS = {
    "dim": {"type": "integer", "minimum": 1},
    "reg": {"type": "number", "minimum": 0},
    "init_std": {"type": "number", "exclusiveMinimum": 0},
}

# The "per_sample" preset of MF and BPR: compiled per-sample SGD at cornac's learning rate. One
# SGD epoch moves the ranking little, so validation runs every 10 epochs and training stops after
# 3 validations (30 epochs) without improvement.
PER_SAMPLE_TRAIN = {
    "per_sample": True,
    "optimizer": "sgd",
    "lr": 0.01,
    "eval_every": 10,
    "early_stopping_patience": 3,
}


def register(name: str):
    """Class decorator: make a Recommender subclass available under ``name`` in config."""

    def wrap(cls: type[Recommender]) -> type[Recommender]:
        if name in _REGISTRY:
            raise ValueError(f"recommender {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def model_class(name: str) -> type[Recommender]:
    if name not in _REGISTRY:
        raise KeyError(f"unknown recommender {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def registered_models() -> list[str]:
    return sorted(_REGISTRY)


class Recommender(nn.Module, ABC):
    """Base class. Subclasses set ``scorer_kind`` to "dot" or "pairwise".

    "dot": ``score_matrix(U, V) = U @ V.T`` (+ biases); the SAE's prediction loss compares score
    matrices. "pairwise": scores need a network on (user, item) pairs (NCF); the SAE's prediction
    loss compares ``score_pairs`` on sampled pairs.

    Class attributes a model module sets:

    * ``objective``: which training batches ``training_loss`` takes: "pointwise" (keys users,
      items, labels), "pairwise" (keys users, pos, neg), "sequence" (the model's own
      ``epoch_samples``; SASRec) or None (nothing to train).
    * ``default_params`` / ``default_train``: the model's own defaults, merged under the config's
      values (``default_train`` only where it departs from config/schema.yaml's train_settings);
      ``presets`` maps a preset name (e.g. "paper") to ``{"params": ..., "train": ...}``.
    * ``param_schema``: each parameter's JSON-schema type and range (checked, with the key
      named, when the config is validated, before any job runs).
    * ``row_tables``: names of the (n, d) embedding parameters that ``training_loss`` reads only
      through ``rows``; with ``train.sparse_updates`` only the batch's rows are updated: by
      ``RowAdam`` on the gradients of ``row_gradients`` when the model gives them (MF, BPR), else
      by SparseAdam on autograd's sparse gradients.
    * ``per_sample_sgd`` (optional, MF and BPR): one SGD step per sample in a compiled loop, for
      ``train.per_sample``; ``analytic_gradients`` (optional, LightGCN): the batch's gradient
      without autograd, for ``train.analytic_gradients``.
    """

    name: ClassVar[str] = ""
    scorer_kind: ClassVar[str] = "dot"
    objective: ClassVar[str | None] = "pointwise"
    default_params: ClassVar[dict] = {}
    default_train: ClassVar[dict] = {}
    presets: ClassVar[dict[str, dict]] = {}
    param_schema: ClassVar[dict[str, dict]] = {}
    row_tables: ClassVar[tuple[str, ...]] = ()
    sparse_rows: bool = False

    def __init__(self, n_users: int, n_items: int, params: dict):
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.params = dict(params)

    @classmethod
    def build(cls, n_users: int, n_items: int, params: dict) -> Recommender:
        """A fresh model for training. Override when construction needs files (``embeddings``);
        the returned model's ``params`` must be enough for ``cls(n_users, n_items, params)`` to
        rebuild an instance that its state_dict loads into."""
        return cls(n_users, n_items, params)

    @classmethod
    def embedding_dim(cls, params: dict) -> int | None:
        """Size d of the embeddings these (resolved) params give, None when unknown before the
        model is built."""
        return params.get("dim")

    def prepare(self, train: sp.csr_matrix) -> None:
        """Hook called once with the binary (n_users, n_items) TRAIN matrix before training
        (LightGCN builds its graph here). Default: nothing."""

    def prepare_history(self, interactions: pd.DataFrame) -> None:
        """Hook called once, after ``prepare``, with the TRAIN interactions (columns user, item,
        rating, timestamp) before training (SASRec stores each user's time-ordered items here).
        Default: nothing."""

    def epoch_samples(
        self,
        users: np.ndarray,
        items: np.ndarray,
        sampler: NegativeSampler,
        negatives: int,
        rng: np.random.Generator,
    ) -> dict[str, np.ndarray]:
        """The shuffled samples of one epoch of objective "sequence", equal-length arrays with at
        least the key "users", from the training positives ``users``/``items`` (nnz,), the
        training set's ``sampler`` and ``train.negatives``. Only such models implement it."""
        raise NotImplementedError(f"{self.name} has no epoch samples of its own")

    @abstractmethod
    def user_embeddings(self) -> torch.Tensor:
        """(n_users, d) user embeddings the SAE analyses (for LightGCN: the propagated ones)."""

    @abstractmethod
    def item_embeddings(self) -> torch.Tensor:
        """(n_items, d) item embeddings the SAE analyses."""

    @abstractmethod
    def score_pairs(
        self, user_emb: torch.Tensor, item_emb: torch.Tensor, users=None, items=None
    ) -> torch.Tensor:
        """Logits (B,) for row-aligned pairs: user_emb (B, d), item_emb (B, d).

        ``users``/``items`` (B,) int ids, when given, add per-id biases; without them the scorer is
        a pure function of the embeddings.
        """

    @abstractmethod
    def score_matrix(
        self, user_emb: torch.Tensor, item_emb: torch.Tensor, users=None, items=None
    ) -> torch.Tensor:
        """Logits (U, I) for every user_emb (U, d) x item_emb (I, d) pair (ids as in
        score_pairs)."""

    @abstractmethod
    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar loss of one training batch (keys depend on ``objective``)."""

    def row_gradients(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """The batch's SUMMED training loss (``training_loss`` times the batch size) and its
        gradients, computed analytically, for ``RowAdam``: (loss, {parameter name: (ids (N,),
        per-sample gradients (N, ...)) or (None, gradient) for a 0-d parameter}). Optional: a
        model that does not override it trains through autograd."""
        raise NotImplementedError(f"{self.name} computes no analytic row gradients")

    def per_sample_sgd(self, batch: dict[str, torch.Tensor], lr: float) -> tuple[float, int]:
        """One SGD step of learning rate ``lr`` per sample of the batch (B,), in order, on the
        CPU parameters in place (``recsae.recommenders.compiled``): (summed loss, index of the
        first sample with a non-finite loss, where it stopped before updating, or -1). Optional:
        only models that override it accept ``train.per_sample``."""
        raise NotImplementedError(f"{self.name} has no per-sample SGD kernel")

    def analytic_gradients(self, batch: dict[str, torch.Tensor]) -> tuple[float, dict, int]:
        """The batch's SUMMED training loss, the gradient of that sum for every parameter
        ({name: tensor shaped like the parameter}) and the index of the first sample whose loss
        is not finite (-1 if none), computed without autograd. Optional: only models that
        override it accept ``train.analytic_gradients``."""
        raise NotImplementedError(f"{self.name} computes no analytic gradients")

    def rows(self, table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """table[ids] (B, d); the gradient is sparse when ``sparse_rows`` is set."""
        return F.embedding(ids, table, sparse=self.sparse_rows)

    def bias_terms(self) -> dict[str, torch.Tensor]:
        """Per-id biases the scorer adds when ids are passed: any of "global_bias" (0-d),
        "user_bias" (n_users,), "item_bias" (n_items,). Default: none."""
        return {}

    def full_scores(self, users: torch.Tensor) -> torch.Tensor:
        """Logits (len(users), n_items) of the trained model, biases included."""
        item_ids = torch.arange(self.n_items, device=users.device)
        return self.score_matrix(
            self.user_embeddings()[users], self.item_embeddings(), users=users, items=item_ids
        )


class DotRecommender(Recommender):
    """A dot-product scorer ``U @ V.T`` plus the biases of ``bias_terms`` when ids are passed:
    the global bias when any ids are given, user biases with ``users``, item biases with
    ``items``."""

    scorer_kind: ClassVar[str] = "dot"

    def score_pairs(self, user_emb, item_emb, users=None, items=None) -> torch.Tensor:
        scores = (user_emb * item_emb).sum(-1)
        return self._add_biases(scores, users, items, pairs=True)

    def score_matrix(self, user_emb, item_emb, users=None, items=None) -> torch.Tensor:
        scores = user_emb @ item_emb.T
        return self._add_biases(scores, users, items, pairs=False)

    def _add_biases(self, scores, users, items, pairs: bool) -> torch.Tensor:
        if users is None and items is None:
            return scores
        terms = self.bias_terms()
        if "global_bias" in terms:
            scores = scores + terms["global_bias"]
        if users is not None and "user_bias" in terms:
            b_u = terms["user_bias"][users]
            scores = scores + (b_u if pairs else b_u[:, None])
        if items is not None and "item_bias" in terms:
            b_i = terms["item_bias"][items]
            scores = scores + (b_i if pairs else b_i[None, :])
        return scores


def save_checkpoint(model: Recommender, path: str | Path, extra: dict | None = None) -> None:
    """state_dict + everything needed to rebuild the model; loads with weights_only=True.

    The state is taken in eval mode, so models that cache derived embeddings (LightGCN) save them.
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model.user_embeddings()
        model.item_embeddings()
    payload = {
        "model": model.name,
        "n_users": model.n_users,
        "n_items": model.n_items,
        "params": model.params,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    model.train(was_training)
    save_torch(path, payload)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Recommender:
    """Rebuild a recommender from ``save_checkpoint`` output, in eval mode, on ``device``."""
    payload = _recommender_payload(path, device)
    cls = model_class(payload["model"])
    model = cls(payload["n_users"], payload["n_items"], payload["params"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()


def checkpoint_extra(path: str | Path) -> dict:
    """The ``extra`` dict stored by ``save_checkpoint`` (seed, training config, ...)."""
    return _recommender_payload(path)["extra"]


def _recommender_payload(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """The checked payload of a ``save_checkpoint`` file; another file raises a UserError."""
    payload = load_torch(path, "recommender checkpoint", device)
    missing = {"model", "n_users", "n_items", "params", "state_dict"} - set(payload)
    if missing:
        raise UserError(
            f"{path} is not a recommender checkpoint (no {sorted(missing)}; an SAE's sae.pt?)"
        )
    return payload


class CachedStates:
    """Mixin for a recommender that caches its final states in buffers flagged by a bool buffer
    ``final_valid``: switching to training mode invalidates them (they are recomputed when the
    model is next evaluated)."""

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            self.final_valid.fill_(False)
        return self
