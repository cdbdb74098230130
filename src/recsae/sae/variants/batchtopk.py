"""BatchTopK SAE (Bussmann et al. 2024): the k * N largest activations of a training batch, a
learned global threshold at inference."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recsae.sae.variants.base import SAEVariant


class BatchTopK(nn.Module):
    """Training: keep the k * N largest ReLU activations of the whole batch (k per input on
    average). Inference (eval mode): keep activations above ``threshold``, a running average
    (EMA with weight ``momentum``) of the smallest activation selected in each training batch."""

    def __init__(self, k: int, momentum: float = 0.01):
        super().__init__()
        self.k = k
        self.momentum = momentum
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("threshold_updates", torch.zeros((), dtype=torch.long))

    def forward(self, pre_acts: torch.Tensor) -> torch.Tensor:
        """(N, h) -> (N, h)."""
        acts = F.relu(pre_acts)
        if not self.training:
            return acts * (acts > self.threshold)
        flat = acts.flatten()
        top = flat.topk(min(self.k * acts.shape[0], flat.numel()))
        with torch.no_grad():
            self._update_threshold(top.values)
        return torch.zeros_like(flat).scatter(0, top.indices, top.values).view_as(acts)

    def _update_threshold(self, selected: torch.Tensor) -> None:
        """Fold the smallest positive selected activation into the EMA (no host sync)."""
        smallest = torch.where(
            selected > 0, selected, torch.full_like(selected, float("inf"))
        ).min()
        seen = torch.isfinite(smallest)
        ema = (1 - self.momentum) * self.threshold + self.momentum * smallest
        new = torch.where(self.threshold_updates == 0, smallest, ema)
        self.threshold.copy_(torch.where(seen, new, self.threshold))
        self.threshold_updates.add_(seen.long())


VARIANT = SAEVariant(
    name="batchtopk",
    description="the batch's k * N largest latents in training, a learned threshold at inference",
    marker="D",
    make_activation=lambda config: BatchTopK(config.k, config.options["threshold_momentum"]),
    settings={
        "threshold_momentum": {
            "description": "EMA weight of the inference threshold (BatchTopK).",
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "default": 0.01,
        }
    },
    ranked=lambda point: True,
)
