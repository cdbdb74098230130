"""Selectivity of a concept edit, after SAEBench's targeted probe perturbation (Karvonen et al.
2025): when the latents of concept c are filtered, how much does c's share of the top-k lists
drop compared with the other concepts' shares? A surgical edit removes c and leaves the rest.

For base shares S (B, C) and edited shares S' (B, C) of B users' top-k lists (share of each of C
concepts; ``recsae.interventions``), drop_j = mean_b (S_bj - S'_bj) and

    selectivity(c) = drop_c - mean_{j != c} drop_j

(SAEBench's TPP: the accuracy drop of the targeted probe minus the mean drop of the others). It
is 0 when c drops no more than the other concepts on average, and equals drop_c when the others
are unmoved; with no other concept it is drop_c.
"""

from __future__ import annotations

import torch

from recsae.metrics.spec import Metric, MetricFamily


def selectivity(base_shares: torch.Tensor, edited_shares: torch.Tensor, concept: int) -> float:
    """drop of ``concept``'s share minus the mean drop of every other concept's share; shares
    (B, C) before and after the edit."""
    drop = (base_shares - edited_shares).to(torch.float64).mean(dim=0)  # (C,)
    others = torch.cat([drop[:concept], drop[concept + 1 :]])
    return float(drop[concept] - (others.mean() if len(others) else 0.0))


FILTER_SELECTIVITY = Metric(
    "filter_selectivity",
    "users",
    "max",
    "filtering: drop of the concept's top-k share minus the mean drop of the other concepts' "
    "shares (SAEBench TPP), mean over concepts and filter_levels",
)


def _summarize(m: dict, cfg: dict) -> dict:
    levels = m["interventions"]["summary"]["filtering"]["levels"]
    values = [row["selectivity"] for row in levels if row.get("selectivity") is not None]
    return {FILTER_SELECTIVITY.key: sum(values) / len(values) if values else None}


FAMILY = MetricFamily("selectivity", "interventions.json", (FILTER_SELECTIVITY,), _summarize)
