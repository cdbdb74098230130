"""Sparsity and health of SAE latents on an evaluation set of users and items.

A latent is active on an input when it is > 0. L0 = mean number of active latents per input (users
and items separately). A neuron is dead when it is active on none of the users and items given, and
dense when it is active on more than ``dense_threshold`` (default 0.5) of them (users and items
pooled).
"""

from __future__ import annotations

import torch

from recsae.metrics.spec import Metric, MetricFamily


def health(
    user_latents: torch.Tensor, item_latents: torch.Tensor, dense_threshold: float = 0.5
) -> dict:
    """Health of latents z_u (U, H) and z_i (I, H).

    Keys: l0_users, l0_items, dead_fraction, dense_fraction, n_dead, n_dense, and per-neuron firing
    frequencies freq_users / freq_items (lists of H floats).
    """
    if user_latents.shape[1] != item_latents.shape[1]:
        raise ValueError(
            f"user latents have {user_latents.shape[1]} neurons, items {item_latents.shape[1]}"
        )
    active_u, active_i = user_latents > 0, item_latents > 0
    count = active_u.sum(0).to(torch.float64) + active_i.sum(0).to(torch.float64)
    freq = count / (user_latents.shape[0] + item_latents.shape[0])
    dead, dense = count == 0, freq > dense_threshold
    return {
        "l0_users": float(active_u.sum(1).to(torch.float64).mean()),
        "l0_items": float(active_i.sum(1).to(torch.float64).mean()),
        "dead_fraction": float(dead.to(torch.float64).mean()),
        "dense_fraction": float(dense.to(torch.float64).mean()),
        "n_dead": int(dead.sum()),
        "n_dense": int(dense.sum()),
        "dense_threshold": dense_threshold,
        "freq_users": active_u.to(torch.float64).mean(0).tolist(),
        "freq_items": active_i.to(torch.float64).mean(0).tolist(),
    }


L0_USERS = Metric(
    "l0_users",
    "users",
    "min",
    "mean active latents per held-out user",
    "active latents per user (L0)",
)
L0_ITEMS = Metric(
    "l0_items", "items", "min", "mean active latents per item", "active latents per item (L0)"
)
DEAD_FRACTION = Metric(
    "dead_fraction", "items", "min", "share of latents active on no held-out user and no item"
)
DENSE_FRACTION = Metric(
    "dense_fraction", "items", "min", "share of latents active on more than dense_threshold inputs"
)
HEALTH_METRICS = (L0_USERS, L0_ITEMS, DEAD_FRACTION, DENSE_FRACTION)

FAMILY = MetricFamily(
    "health",
    "health",
    HEALTH_METRICS,
    lambda m, cfg: {metric.key: m["health"][metric.key] for metric in HEALTH_METRICS},
)
