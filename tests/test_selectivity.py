"""Selectivity of a filtering edit (SAEBench TPP) against a brute-force computation over users and
concepts, and its place in the interventions and the summary."""

import numpy as np
import pytest
import torch

from recsae.metrics.registry import metric_for
from recsae.metrics.selectivity import FAMILY, selectivity


def brute_force(base, edited, concept):
    """Per concept, the mean over users of the share drop, by explicit loops."""
    n_users, n_concepts = len(base), len(base[0])
    drops = []
    for j in range(n_concepts):
        total = 0.0
        for b in range(n_users):
            total += base[b][j] - edited[b][j]
        drops.append(total / n_users)
    others = [drops[j] for j in range(n_concepts) if j != concept]
    return drops[concept] - (sum(others) / len(others) if others else 0.0)


@pytest.mark.parametrize("concept", [0, 2, 4])
def test_selectivity_equals_the_brute_force_definition(concept):
    rng = np.random.default_rng(3)
    base = rng.random((7, 5))
    edited = rng.random((7, 5))
    value = selectivity(torch.tensor(base), torch.tensor(edited), concept)
    assert value == pytest.approx(brute_force(base.tolist(), edited.tolist(), concept))


def test_a_surgical_edit_scores_its_drop_and_a_blunt_one_zero():
    base = torch.tensor([[0.6, 0.2, 0.2], [0.4, 0.3, 0.3]], dtype=torch.float64)
    surgical = torch.tensor([[0.1, 0.2, 0.2], [0.0, 0.3, 0.3]], dtype=torch.float64)
    assert selectivity(base, surgical, 0) == pytest.approx(0.45)
    blunt = base - 0.1  # every concept drops equally
    assert selectivity(base, blunt, 0) == pytest.approx(0.0, abs=1e-12)
    assert selectivity(base[:, :1], surgical[:, :1], 0) == pytest.approx(0.45)


def test_the_summary_averages_filtering_levels():
    levels = [{"selectivity": 0.2}, {"selectivity": 0.4}]
    m = {"interventions": {"summary": {"filtering": {"levels": levels}}}}
    assert FAMILY.summarize(m, {}) == {"filter_selectivity": pytest.approx(0.3)}
    empty = {"interventions": {"summary": {"filtering": {"levels": []}}}}
    assert FAMILY.summarize(empty, {}) == {"filter_selectivity": None}
    assert metric_for("filter_selectivity").goal == "max"
