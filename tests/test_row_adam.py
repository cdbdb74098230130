"""Analytic row gradients (MF, BPR) against autograd, and RowAdam against torch's SparseAdam."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from recsae.recommenders import model_class, registered_models
from recsae.recommenders.base import Recommender
from recsae.recommenders.row_adam import RowAdam
from recsae.recommenders.train import resolve_config


def random_batch(n_users: int, n_items: int, size: int, seed: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return {
        "users": torch.as_tensor(rng.integers(0, n_users, size)),
        "items": torch.as_tensor(rng.integers(0, n_items, size)),
        "pos": torch.as_tensor(rng.integers(0, n_items, size)),
        "neg": torch.as_tensor(rng.integers(0, n_items, size)),
        "labels": torch.as_tensor(rng.integers(0, 2, size).astype(np.float32)),
    }


ANALYTIC = [
    name
    for name in registered_models()
    if model_class(name).row_gradients is not Recommender.row_gradients
]


def test_mf_and_bpr_have_analytic_row_gradients():
    assert {"mf", "bpr"} <= set(ANALYTIC)


@pytest.mark.parametrize(
    "name, params",
    [(name, {}) for name in ANALYTIC] + [("mf", {"fixed_global_bias": 1.0})],
)
def test_row_gradients_equal_autograd(name, params):
    """For every model that gives row_gradients: summed loss and per-sample gradients, summed per
    row, equal autograd's gradient of training_loss times the batch size (repeated ids
    included)."""
    resolved, _ = resolve_config(name, params, {})
    torch.manual_seed(0)
    model = model_class(name).build(12, 15, resolved)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    batch = random_batch(12, 15, 64, seed=1)
    (model.training_loss(batch) * 64).backward()
    loss, grads = model.row_gradients(batch)
    assert float(loss) == pytest.approx(float(model.training_loss(batch).detach()) * 64, rel=1e-5)
    parameters = dict(model.named_parameters())
    assert set(grads) == set(parameters)
    for key, (ids, grad) in grads.items():
        dense = grad if ids is None else torch.zeros_like(parameters[key]).index_add_(0, ids, grad)
        torch.testing.assert_close(dense, parameters[key].grad, rtol=1e-4, atol=1e-5)


class Tables(nn.Module):
    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.table = nn.Parameter(torch.randn(20, 4, generator=generator))
        self.bias = nn.Parameter(torch.randn((), generator=generator))


def test_row_adam_matches_sparse_adam():
    """Five steps of RowAdam (scale 1/N) give the parameters that torch.optim.SparseAdam gives on
    the sparse gradient of the same per-sample gradients (mean), and dense Adam for the 0-d one;
    rows no step touches stay as they were."""
    ours, reference = Tables(), Tables()
    row_adam = RowAdam(ours, lr=0.05)
    sparse_adam = torch.optim.SparseAdam([reference.table], lr=0.05)
    adam = torch.optim.Adam([reference.bias], lr=0.05)
    rng = np.random.default_rng(0)
    for _ in range(5):
        ids = torch.as_tensor(rng.integers(0, 10, 16))
        grad = torch.as_tensor(rng.normal(size=(16, 4)).astype(np.float32))
        bias_grad = torch.as_tensor(float(rng.normal()))
        row_adam.step({"table": (ids, grad), "bias": (None, bias_grad * 16)}, scale=1 / 16)
        reference.table.grad = torch.sparse_coo_tensor(
            ids[None], grad / 16, (20, 4), check_invariants=True
        )
        reference.bias.grad = bias_grad.clone()
        sparse_adam.step()
        adam.step()
    torch.testing.assert_close(ours.table, reference.table, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.bias, reference.bias, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.table[10:], Tables().table[10:], rtol=0, atol=0)
