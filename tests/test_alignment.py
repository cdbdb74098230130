"""Concept alignment against sklearn/scipy, concept building, planted recovery."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from recsae.metrics.alignment import (
    alignment,
    alignment_summary,
    auroc_matrix,
    average_ranks,
    build_concepts,
    count_buckets,
    planted_recovery,
    precision_at_r,
    top_precision,
)


def test_average_ranks_match_scipy():
    x = np.random.default_rng(0).integers(0, 5, size=(50, 7)).astype(np.float32)
    np.testing.assert_allclose(average_ranks(torch.as_tensor(x)).numpy(), rankdata(x, axis=0))


def test_auroc_matches_sklearn_with_ties_and_dead_neurons():
    rng = np.random.default_rng(1)
    acts = np.maximum(rng.integers(-3, 4, size=(120, 9)), 0).astype(np.float32)  # many ties
    acts[:, 2] = 0.0  # never fires
    labels = (rng.random((120, 4)) < 0.3).astype(float)
    got = auroc_matrix(torch.as_tensor(acts), sp.csr_matrix(labels), chunk=4)
    for k in range(9):
        for c in range(4):
            assert got[k, c] == pytest.approx(roc_auc_score(labels[:, c], acts[:, k]))
    assert np.allclose(got[2], 0.5)


def test_top_precision_counts_only_active_entities():
    acts = torch.tensor([[3.0, 0.0, 1.0], [2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    labels = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=float))
    got = top_precision(acts, labels, top_k=3)
    np.testing.assert_allclose(got[0], [2 / 3, 2 / 3])  # top-3 = items 0, 1, 2
    np.testing.assert_allclose(got[1], [0.0, 0.0])  # never fires
    np.testing.assert_allclose(got[2], [1.0, 0.0])  # fires on item 0 only


def test_precision_at_r_matches_a_brute_force_loop():
    """Ties (broken by entity id), a dead neuron, inactive entities inside the top-R, concepts of
    different sizes, and chunking all agree with a plain loop over neurons and concepts."""
    rng = np.random.default_rng(4)
    acts = np.maximum(rng.integers(-4, 4, size=(90, 7)), 0).astype(np.float32)
    acts[:, 3] = 0.0
    labels = (rng.random((90, 5)) < [0.05, 0.2, 0.2, 0.5, 0.7]).astype(float)
    got = precision_at_r(torch.as_tensor(acts), sp.csr_matrix(labels), chunk=3)
    for k in range(7):
        order = np.argsort(-acts[:, k], kind="stable")
        for c in range(5):
            r = int(labels[:, c].sum())
            top = order[:r]
            assert got[k, c] == pytest.approx((labels[top, c] * (acts[top, k] > 0)).sum() / r)
    assert np.all(got[3] == 0.0)


def test_precision_at_r_separates_a_specific_neuron_from_a_mixed_direction():
    member = np.repeat(np.arange(8), 25)
    labels = sp.csr_matrix(np.eye(8)[member])
    specific = (member == 0) * 2.0 + np.linspace(0, 0.1, 200)
    mixed = np.isin(member, [0, 1]) * 2.0 + np.linspace(0, 0.1, 200)
    got = precision_at_r(torch.as_tensor(np.stack([specific, mixed], 1)), labels)
    assert got[0, 0] == 1.0 and got[1, 0] == 0.0  # mixed: its top-25 is the tail of concept 1
    assert roc_auc_score(member == 0, mixed) > 0.8  # ... while its AUROC looks good


def test_build_concepts_skips_rare_and_ubiquitous():
    frame = pd.DataFrame(
        {
            "id": [0, 1, 2, 3, 4, 5, 0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 7],
            "family": ["genre"] * 6 + ["genre"] * 2 + ["decade"] * 8 + ["genre"],
            "concept": ["a"] * 6 + ["b"] * 2 + ["1990s"] * 8 + ["a"],
        }
    )
    concepts = build_concepts(frame, n_entities=10, min_count=3)
    assert list(zip(concepts.family, concepts.name, strict=True)) == [("genre", "a")]
    assert concepts.n_positives.tolist() == [7]
    assert concepts.skipped == {"decade": 1, "genre": 1}  # 1990s: 2 negatives; b: 2 positives
    with pytest.raises(ValueError, match="concept ids"):
        build_concepts(frame, n_entities=5)


def test_build_concepts_min_negatives():
    frame = pd.DataFrame({"id": range(9), "family": "f", "concept": "c"})
    assert len(build_concepts(frame, 10, min_count=2)) == 0
    assert len(build_concepts(frame, 11, min_count=2)) == 1
    assert len(build_concepts(frame.iloc[:0], 11)) == 0


def test_build_concepts_counts_only_active_entities():
    """A concept whose items the recommender barely saw is skipped: 7 items, none active."""
    frame = pd.DataFrame(
        {
            "id": [*range(7), *range(10, 20)],
            "family": "decade",
            "concept": ["1910s"] * 7 + ["1990s"] * 10,
        }
    )
    active = np.arange(40) >= 10  # items 0..9 have too few training interactions
    concepts = build_concepts(frame, 40, min_count=5, active=active)
    assert concepts.name == ["1990s"] and concepts.skipped == {"decade": 1}
    assert concepts.n_positives.tolist() == [10]  # sizes and base rates still count every item
    assert len(build_concepts(frame, 40, min_count=5)) == 2  # no mask: every entity counts
    nearly = active.copy()
    nearly[:5] = True  # five active 1910s items: enough
    assert len(build_concepts(frame, 40, min_count=5, active=nearly)) == 2
    with pytest.raises(ValueError, match="active mask"):
        build_concepts(frame, 40, active=active[:5])


def accidental_auroc_case():
    """1000 items; concept X = items 0..19 (base rate 0.02). Neuron 0 fires most on 100 other
    items (100..199), then on X, then on the rest: AUROC(X) = 880/980 = 0.898, yet none of its top
    30 items is X. Neuron 1 fires most on X plus 10 others: AUROC 1, precision 20/30."""
    n = 1000
    rest = np.linspace(0.1, 0.9, n)  # distinct small activations
    acts = np.stack([rest, rest], axis=1)
    acts[100:200, 0] = 3 + rest[100:200]
    acts[:20, 0] = 2 + rest[:20]
    acts[:20, 1] = 5 + rest[:20]
    acts[500:510, 1] = 4 + rest[500:510]
    frame = pd.DataFrame({"id": range(20), "family": "decade", "concept": "1930s"})
    return torch.as_tensor(acts), build_concepts(frame, n)


def test_label_and_coverage_need_precision_above_the_base_rate():
    acts, concepts = accidental_auroc_case()
    both = alignment(acts, concepts, top_k=30, threshold=0.8, margin=0.1)
    neurons, concept = both["per_neuron"], both["per_concept"]
    assert neurons["auroc"] == pytest.approx([880 / 980, 1.0])
    assert neurons["precision"] == pytest.approx([0.0, 20 / 30])
    assert neurons["base_rate"] == pytest.approx([0.02, 0.02])
    assert neurons["concept"] == ["1930s", "1930s"]  # the best-AUROC concept of both
    assert neurons["label"] == [None, "1930s"]  # only neuron 1 earns the label
    assert neurons["label_precision"] == [None, pytest.approx(20 / 30)]
    assert both["labelled_fraction"] == 0.5
    assert concept["covered"] == [True] and concept["best_neuron"] == [1]
    assert both["coverage"] == 1.0 and both["margin"] == 0.1
    # neuron 0 alone: AUROC 0.9 >= 0.8, but precision 0 < 0.02 + 0.1 -> no label, no coverage
    alone = alignment(acts[:, :1], concepts, top_k=30, threshold=0.8, margin=0.1)
    assert alone["coverage"] == 0.0 and alone["per_neuron"]["label"] == [None]
    assert alone["per_concept"]["covered"] == [False] and alone["labelled_fraction"] == 0.0
    # a margin above 20/30 - 0.02 takes neuron 1's label away too
    strict = alignment(acts, concepts, top_k=30, threshold=0.8, margin=0.7)
    assert strict["coverage"] == 0.0 and strict["per_neuron"]["label"] == [None, None]
    # and AUROC still counts: a threshold above 1 labels nothing
    assert alignment(acts, concepts, top_k=30, threshold=1.01, margin=0.0)["coverage"] == 0.0


def test_alignment_summary_without_concepts_has_every_key():
    acts, concepts = accidental_auroc_case()
    none = alignment_summary(acts, concepts.select([]), None, None, 30, 0.8, 0.1)
    assert none["coverage"] is None and none["per_neuron"]["label"] == [None, None]
    assert none["per_concept"]["covered"] == []


def test_count_buckets_ties_share_a_bucket():
    counts = np.array([0, 0, 0, 0, 1, 2, 3, 5, 8, 13])
    out = count_buckets(counts, "popularity")
    assert out["concept"].tolist() == ["tail"] * 5 + ["mid"] * 3 + ["head"] * 2
    assert count_buckets(counts, "activity")["concept"].iloc[-1] == "heavy"
    assert set(count_buckets(counts, "popularity", [0.3, 0.6, 0.9])["concept"]) <= {
        "q0",
        "q1",
        "q2",
        "q3",
    }
    with pytest.raises(ValueError, match="increasing"):
        count_buckets(counts, "popularity", [0.8, 0.5])


def planted_data(seed=0, n=300, n_concepts=4, d=8):
    rng = np.random.default_rng(seed)
    concept = rng.integers(0, n_concepts, size=n)
    emb = rng.normal(scale=0.3, size=(n, d))
    emb[np.arange(n), concept] += 2.0
    frame = pd.DataFrame(
        {"id": np.arange(n), "family": "planted_cluster", "concept": concept.astype(str)}
    )
    return torch.as_tensor(emb), build_concepts(frame, n), concept


def test_alignment_summary_and_coverage():
    emb, concepts, _ = planted_data()
    acts = torch.relu(emb[:, :5])  # neurons 0-3 = planted concepts, neuron 4 = noise
    acts = torch.cat([acts, torch.zeros(len(acts), 1)], dim=1)  # neuron 5 never fires
    out = alignment(acts, concepts, top_k=30, threshold=0.8)
    assert out["coverage"] == 1.0 and out["coverage_by_family"] == {"planted_cluster": 1.0}
    assert out["per_concept"]["best_neuron"] == [0, 1, 2, 3]
    assert out["per_neuron"]["concept"][:4] == ["0", "1", "2", "3"]
    assert out["per_neuron"]["precision"][:4] == [1.0] * 4
    assert out["per_neuron"]["auroc"][5] is None and out["per_neuron"]["concept"][5] is None
    assert out["mean_best_auroc"] > 0.8
    empty = alignment(acts, build_concepts(pd.DataFrame(columns=["id", "family", "concept"]), 300))
    assert empty["coverage"] is None and empty["per_neuron"]["auroc"] == [None] * 6


def test_planted_recovery_finds_the_planted_neurons():
    emb, concepts, _ = planted_data()
    out = planted_recovery(torch.relu(emb[:, :4]), concepts)
    assert out["n_concepts"] == 4 and out["auroc_mean"] > 0.99
    assert out["precision_at_r_mean"] > 0.95
    assert out["per_concept"]["best_neuron_precision"] == [0, 1, 2, 3]
    assert set(out["by_family"]) == {"planted_cluster"}
    assert out["by_family"]["planted_cluster"]["precision_at_r_mean"] == pytest.approx(
        out["precision_at_r_mean"]
    )
    noise = planted_recovery(torch.relu(emb[:, 4:5]), concepts)
    assert noise["precision_at_r_mean"] < out["precision_at_r_mean"] - 0.2
    frame = pd.DataFrame({"id": range(20), "family": "genre", "concept": ["x", "y"] * 10})
    assert planted_recovery(torch.relu(emb[:20, :4]), build_concepts(frame, 20)) is None
