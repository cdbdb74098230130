"""ReLU SAE (the paper's): every latent with a positive pre-activation is active."""

from __future__ import annotations

from torch import nn

from recsae.sae.variants.base import SAEVariant

VARIANT = SAEVariant(
    name="relu",
    description="ReLU latents; sparsity from the KL (and L1) penalty",
    marker="o",
    make_activation=lambda config: nn.ReLU(),
)
