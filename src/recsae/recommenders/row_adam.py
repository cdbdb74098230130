"""Row-wise ("lazy") Adam for models that give analytic per-sample gradients (``row_gradients``).

A step touches only the rows a batch uses: the batch's per-sample gradients are summed per distinct
row, and Adam's moments and the parameter are read and written on those rows alone, so a step
costs O(batch * d) whatever the table sizes. This is the algorithm of ``torch.optim.SparseAdam``
(moments of untouched rows stay as they are; bias correction uses the parameter's step count)
without building sparse gradient tensors or running autograd. 0-d parameters (a global bias) get
plain Adam.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# name -> (ids (N,) or None for a 0-d parameter, per-sample gradients (N, ...) or the gradient)
RowGradients = dict[str, tuple[torch.Tensor | None, torch.Tensor]]


class RowAdam:
    """Adam on rows of the parameters of ``model``; ``step(grads, scale)`` applies the gradient
    ``scale * sum of grads`` (rows that repeat are summed first)."""

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.params = dict(model.named_parameters())
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.exp_avg = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.steps = dict.fromkeys(self.params, 0)
        # per table: a mark per row and each marked row's position among the distinct rows
        # (only positions of the current batch's rows are written before they are read)
        self.touched = {
            n: torch.zeros(len(p), dtype=torch.bool, device=p.device)
            for n, p in self.params.items()
            if p.dim()
        }
        self.position = {
            n: torch.empty(len(p), dtype=torch.long, device=p.device)
            for n, p in self.params.items()
            if p.dim()
        }

    @torch.no_grad()
    def step(self, grads: RowGradients, scale: float = 1.0) -> None:
        for name, (ids, grad) in grads.items():
            self.steps[name] += 1
            step = self.steps[name]
            step_size = self.lr * math.sqrt(1 - self.beta2**step) / (1 - self.beta1**step)
            param = self.params[name]
            exp_avg, exp_avg_sq = self.exp_avg[name], self.exp_avg_sq[name]
            if ids is None:
                grad = grad * scale
                exp_avg.lerp_(grad, 1 - self.beta1)
                exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
                param.sub_(exp_avg / exp_avg_sq.sqrt().add_(self.eps), alpha=step_size)
                continue
            rows, slots = self._distinct(name, ids)
            summed = grad.new_zeros((len(rows), *grad.shape[1:]))
            grad = summed.index_add_(0, slots, grad, alpha=scale)
            avg = exp_avg.index_select(0, rows).lerp_(grad, 1 - self.beta1)
            avg_sq = exp_avg_sq.index_select(0, rows).mul_(self.beta2)
            avg_sq.addcmul_(grad, grad, value=1 - self.beta2)
            exp_avg.index_copy_(0, rows, avg)
            exp_avg_sq.index_copy_(0, rows, avg_sq)
            param.index_add_(0, rows, avg.div_(avg_sq.sqrt_().add_(self.eps)), alpha=-step_size)

    def _distinct(self, name: str, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The distinct rows (R,) of ids (N,), ascending, and each id's position (N,) among
        them: a mark per table row instead of a sort (O(N + table rows), no O(N log N))."""
        touched = self.touched[name]
        touched[ids] = True
        rows = touched.nonzero().squeeze(1)
        touched[rows] = False
        position = self.position[name]
        position[rows] = torch.arange(len(rows), device=ids.device)
        return rows, position[ids]
