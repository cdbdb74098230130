"""Monosemanticity (MS) score of SAE neurons, measured in the recommender's own item geometry.

docs/method.md, "Metrics" (adapted from Pach et al. 2025). Item latents A (n_items, H) are
min-max scaled per neuron over ALL items (one scaling, used everywhere; a neuron that is constant
over the items scales to 0). For neuron k let T be its ``top_k`` most activating items and a
(top_k,) their scaled activations; R = a a^T with zero diagonal, S = cosine similarity of the
recommender's item embeddings of T with zero diagonal; MS_k = sum(R * S) / sum(R), and 0 when
sum(R) = 0 (a neuron active on fewer than two items). With fewer than ``top_k`` items all items
are used.

"Alive" for the MS mean means active (latent > 0) on at least one item: a neuron that never fires on
an item has no item geometry to score (its MS is 0 and only enters ``ms_mean``).

``active_monosemanticity`` is the same score over the items with at least N training interactions
only (scaling, top items and geometry all restricted to them). The embedding of an item the
recommender barely saw has barely moved from its initialisation, so a neuron that fires on such
items can score a high MS on geometry that the training never shaped; the restricted MS leaves
them out.
"""

from __future__ import annotations

import torch

from recsae.metrics.spec import Metric, MetricFamily
from recsae.metrics.topk import topk_by_id


def minmax_scale(acts: torch.Tensor) -> torch.Tensor:
    """(N, H) float64 activations scaled per column to [0, 1] over all N rows (constant -> 0)."""
    acts = acts.to(torch.float64)
    low = acts.min(0).values
    span = acts.max(0).values - low
    return torch.where(span > 0, (acts - low) / span.clamp_min(1e-300), torch.zeros_like(acts))


def ms_scores(
    item_latents: torch.Tensor, item_emb: torch.Tensor, top_k: int = 30, chunk: int = 512
) -> torch.Tensor:
    """(H,) float64 MS score per neuron from item latents (I, H) and item embeddings (I, d)."""
    if item_latents.shape[0] != item_emb.shape[0]:
        raise ValueError(
            f"item latents have {item_latents.shape[0]} rows, item embeddings {item_emb.shape[0]}"
        )
    scaled = minmax_scale(item_latents)
    unit = torch.nn.functional.normalize(item_emb.to(torch.float64), dim=1)
    k = min(top_k, scaled.shape[0])
    out = []
    for start in range(0, scaled.shape[1], chunk):
        values, indices = topk_by_id(scaled[:, start : start + chunk], k, dim=0)
        a, idx = values.T, indices.T  # (c, k)
        emb = unit[idx]  # (c, k, d)
        sim = emb @ emb.transpose(1, 2)  # (c, k, k)
        weight = a[:, :, None] * a[:, None, :]
        weight.diagonal(dim1=1, dim2=2).zero_()
        sim.diagonal(dim1=1, dim2=2).zero_()
        den = weight.sum((1, 2))
        num = (weight * sim).sum((1, 2))
        out.append(torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(den)))
    return torch.cat(out)


def monosemanticity(item_latents: torch.Tensor, item_emb: torch.Tensor, top_k: int = 30) -> dict:
    """MS summary: ms_mean (all neurons), ms_alive (neurons active on some item; None when there
    are none), n_alive, top_k, and per_neuron (list of H floats)."""
    scores = ms_scores(item_latents, item_emb, top_k)
    alive = (item_latents > 0).any(0)
    n_alive = int(alive.sum())
    return {
        "top_k": top_k,
        "ms_mean": float(scores.mean()),
        "ms_alive": float(scores[alive].mean()) if n_alive else None,
        "n_alive": n_alive,
        "per_neuron": scores.tolist(),
    }


def active_monosemanticity(
    item_latents: torch.Tensor,
    item_emb: torch.Tensor,
    counts,
    min_interactions: int,
    top_k: int = 30,
) -> dict:
    """``monosemanticity`` over the items whose training interaction count (``counts`` (I,)) is at
    least ``min_interactions``, plus ``min_interactions`` and ``n_items``; with fewer than two such
    items the scores are None."""
    keep = torch.as_tensor(counts >= min_interactions, device=item_latents.device)
    n_items = int(keep.sum())
    head = {"min_interactions": min_interactions, "n_items": n_items}
    if n_items < 2:
        empty = {"top_k": top_k, "ms_mean": None, "ms_alive": None, "n_alive": 0}
        return head | empty | {"per_neuron": [None] * item_latents.shape[1]}
    return head | monosemanticity(item_latents[keep], item_emb[keep], top_k)


MS_MEAN = Metric(
    "ms_mean", "items", "max", "mean MS score over all neurons", "MS (mean over neurons)"
)
MS_ALIVE = Metric("ms_alive", "items", "max", "mean MS score over the neurons that fire on an item")
MS_ACTIVE = Metric(
    "ms_active",
    "items",
    "max",
    "mean MS score over the items with >= active_min_interactions training interactions",
)


def _summarize(m: dict, cfg: dict) -> dict:
    return {
        MS_MEAN.key: m["monosemanticity"]["ms_mean"],
        MS_ALIVE.key: m["monosemanticity"]["ms_alive"],
        MS_ACTIVE.key: m["monosemanticity_active"]["ms_mean"],
    }


FAMILY = MetricFamily(
    "monosemanticity",
    "monosemanticity, monosemanticity_active",
    (MS_MEAN, MS_ALIVE, MS_ACTIVE),
    _summarize,
)
