"""TopK SAE (Gao et al. 2024): each input keeps its k largest pre-activations."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recsae.sae.variants.base import SAEVariant


class TopK(nn.Module):
    """Keep each row's k largest pre-activations (then ReLU): at most k active per input."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, pre_acts: torch.Tensor) -> torch.Tensor:
        """(N, h) -> (N, h)."""
        top = pre_acts.topk(self.k, dim=-1)
        return torch.zeros_like(pre_acts).scatter(-1, top.indices, F.relu(top.values))


VARIANT = SAEVariant(
    name="topk",
    description="each input's k largest latents",
    marker="s",
    make_activation=lambda config: TopK(config.k),
    ranked=lambda point: True,
)
