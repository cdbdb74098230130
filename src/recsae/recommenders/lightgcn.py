"""LightGCN (He et al., SIGIR 2020): ego embeddings E0 propagated K times over the symmetric-
normalised user-item graph A_hat = D^-1/2 [[0, R], [R^T, 0]] D^-1/2 built from the TRAIN matrix R;
final embeddings = mean(E0, ..., EK); dot-product scores; BPR loss with L2 on the ego embeddings.

Propagation is a sparse CSR matrix product (memory O(nnz + (n_users + n_items) * dim)). With
``train.analytic_gradients`` a step skips autograd: the BPR gradient on the final embeddings is
accumulated in a compiled loop and sent back through the same K products (``analytic_gradients``).
In eval mode the final embeddings are cached in buffers, which the checkpoint saves: a loaded model
scores without the graph.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recsae.recommenders.base import SHARED_PARAMS, CachedStates, DotRecommender, register


class _SymmetricSpMM(torch.autograd.Function):
    """adj @ x for a symmetric sparse adj (N, N) and dense x (N, d); backward adj @ grad."""

    @staticmethod
    def forward(ctx, adj, x):
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx, grad):
        return None, ctx.adj @ grad


def normalized_adjacency(train: sp.csr_matrix) -> torch.Tensor:
    """A_hat (n_users + n_items, n_users + n_items) as a float32 torch CSR tensor (int32 indices
    where they fit: the faster CPU kernel)."""
    train = sp.csr_matrix(train, dtype=np.float32)
    train.sum_duplicates()
    train.data[:] = 1.0
    adj = sp.bmat([[None, train], [train.T, None]], format="csr", dtype=np.float32)
    degree = np.asarray(adj.sum(1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    np.power(degree, -0.5, out=inv_sqrt, where=degree > 0)
    adj = sp.csr_matrix(sp.diags(inv_sqrt) @ adj @ sp.diags(inv_sqrt), dtype=np.float32)
    adj.sort_indices()
    index_dtype = np.int32 if adj.nnz < 2**31 else np.int64
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(adj.indptr.astype(index_dtype)),
            torch.from_numpy(adj.indices.astype(index_dtype)),
            torch.from_numpy(adj.data),
            size=adj.shape,
            check_invariants=False,
        )


@register("lightgcn")
class LightGCN(CachedStates, DotRecommender):
    """Parameters: user_emb (n_users, dim), item_emb (n_items, dim) (ego embeddings). Buffers:
    final_user (n_users, dim), final_item (n_items, dim), final_valid () bool."""

    objective = "pairwise"
    default_params = {"dim": 64, "n_layers": 3, "reg": 1e-4, "init_std": 0.1}
    param_schema = {**SHARED_PARAMS, "n_layers": {"type": "integer", "minimum": 0}}
    default_train = {"epochs": 300, "early_stopping_patience": 20}
    # Six times fewer steps per epoch than the default batch of 8,192, each without autograd; the
    # patience doubles so that early stopping waits a comparable number of steps.
    presets = {
        "large_batch": {
            "train": {
                "analytic_gradients": True,
                "batch_size": 49152,
                "lr": 0.02,
                "early_stopping_patience": 40,
            }
        }
    }

    def __init__(self, n_users: int, n_items: int, params: dict):
        super().__init__(n_users, n_items, params)
        dim, std = int(params["dim"]), float(params["init_std"])
        self.n_layers = int(params["n_layers"])
        self.user_emb = nn.Parameter(torch.randn(n_users, dim) * std)
        self.item_emb = nn.Parameter(torch.randn(n_items, dim) * std)
        self.register_buffer("final_user", torch.zeros(n_users, dim))
        self.register_buffer("final_item", torch.zeros(n_items, dim))
        self.register_buffer("final_valid", torch.zeros((), dtype=torch.bool))
        self.graph: torch.Tensor | None = None

    def prepare(self, train: sp.csr_matrix) -> None:
        self.graph = normalized_adjacency(train).to(self.user_emb.device)
        self.final_valid.fill_(False)

    def layer_mean(
        self, x: torch.Tensor, scratch: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """(x + A_hat x + ... + A_hat^K x) / (K + 1) for x (n_users + n_items, d), differentiable;
        A_hat is symmetric, so this is also its own adjoint. With ``scratch`` (two tensors shaped
        like x) the layers are written into them and the sum into a copy of x, with no autograd
        and no allocation per product: the same values, faster (the analytic step's path)."""
        if self.graph is None:
            raise RuntimeError(
                "lightgcn: no graph to propagate over; call prepare(train_matrix) first "
                "(a loaded checkpoint scores from its cached final embeddings in eval mode)"
            )
        if self.graph.device != x.device:
            self.graph = self.graph.to(x.device)
        if scratch is not None:
            total = x.clone()
            for layer in range(self.n_layers):
                x = torch.mm(self.graph, x, out=scratch[layer % 2])
                total.add_(x)
            return total.div_(self.n_layers + 1)
        total = x
        for _ in range(self.n_layers):
            x = _SymmetricSpMM.apply(self.graph, x)
            total = total + x
        return total / (self.n_layers + 1)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (layer-mean) embeddings (n_users, dim), (n_items, dim), differentiable."""
        final = self.layer_mean(torch.cat([self.user_emb, self.item_emb]))
        return final[: self.n_users], final[self.n_users :]

    def _final(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training:
            return self.propagate()
        if not bool(self.final_valid):
            with torch.no_grad():
                users, items = self.propagate()
                self.final_user.copy_(users)
                self.final_item.copy_(items)
                self.final_valid.fill_(True)
        return self.final_user, self.final_item

    def user_embeddings(self) -> torch.Tensor:
        return self._final()[0]

    def item_embeddings(self) -> torch.Tensor:
        return self._final()[1]

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """BPR on propagated rows of batch users/pos/neg (B,) + reg * mean squared ego norms."""
        users, pos, neg = batch["users"], batch["pos"], batch["neg"]
        final_users, final_items = self.propagate()
        u = final_users[users]
        diff = (u * (final_items[pos] - final_items[neg])).sum(1)
        ego = (
            self.user_emb[users].square().sum(1)
            + self.item_emb[pos].square().sum(1)
            + self.item_emb[neg].square().sum(1)
        ).mean()
        return -F.logsigmoid(diff).mean() + float(self.params["reg"]) * ego

    @torch.no_grad()
    def analytic_gradients(self, batch: dict[str, torch.Tensor]) -> tuple[float, dict, int]:
        """``training_loss`` of batch users/pos/neg (B,) summed over the batch, and its gradient
        without autograd: ``compiled.bpr_final_gradient`` accumulates the BPR gradient G on the
        final embeddings and counts each row's occurrences c; G goes back to the ego embeddings E
        through ``layer_mean`` (A_hat is symmetric) and the penalty reg * sum_r c_r |E_r|^2 adds
        2 reg c_r E_r. CPU only."""
        from recsae.recommenders.compiled import bpr_final_gradient

        ego = torch.cat([self.user_emb, self.item_emb])
        scratch = (torch.empty_like(ego), torch.empty_like(ego))
        final = self.layer_mean(ego, scratch)
        grad_final = torch.zeros_like(ego)
        counts = torch.zeros(len(ego), dtype=ego.dtype)
        loss, bad = bpr_final_gradient(
            final.numpy(),
            batch["users"].numpy(),
            (batch["pos"] + self.n_users).numpy(),
            (batch["neg"] + self.n_users).numpy(),
            grad_final.numpy(),
            counts.numpy(),
        )
        reg = float(self.params["reg"])
        loss += reg * float(torch.dot(counts, ego.square().sum(1)))
        grad = self.layer_mean(grad_final, scratch).addcmul_(counts[:, None], ego, value=2 * reg)
        return loss, {"user_emb": grad[: self.n_users], "item_emb": grad[self.n_users :]}, bad
