"""Full-ranking metrics against an independent brute-force loop and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import ndcg_score

from recsae.metrics import accuracy
from recsae.metrics.accuracy import rank_metrics
from recsae.recommenders.mostpop import MostPop

KS = [1, 3, 5, 10]


def random_case(seed: int, n_users=40, n_items=30, tied=True):
    """Scores (n_users, n_items) (integer-valued when ``tied``), disjoint exclude/relevant CSR
    matrices; some users have no relevant item."""
    rng = np.random.default_rng(seed)
    if tied:
        scores = rng.integers(0, 4, size=(n_users, n_items)).astype(np.float32)
    else:
        scores = rng.permutation(n_users * n_items).reshape(n_users, n_items).astype(np.float32)
    draw = rng.random((n_users, n_items))
    exclude = draw < 0.3
    relevant = (draw > 0.85) & (rng.random(n_users) > 0.2)[:, None]
    # excluded items get the best scores: any leak into the ranking changes every metric
    scores[exclude] += 100.0
    as_csr = sp.csr_matrix
    return scores, as_csr(exclude.astype(np.float32)), as_csr(relevant.astype(np.float32))


def brute_force(scores, exclude, relevant, ks):
    """Per-user metric dicts from a Python loop over users; ties: lower item id first."""
    exclude, relevant = exclude.toarray() > 0, relevant.toarray() > 0
    out = {}
    for u in range(scores.shape[0]):
        rel = set(np.flatnonzero(relevant[u] & ~exclude[u]).tolist())
        if not rel:
            continue
        candidates = [i for i in range(scores.shape[1]) if not exclude[u, i]]
        ranking = sorted(candidates, key=lambda i: (-scores[u, i], i))
        rank = {item: r for r, item in enumerate(ranking)}
        ranks = sorted(rank[i] for i in rel)
        m = {}
        for k in ks:
            hits = [r for r in ranks if r < k]
            idcg = sum(1.0 / math.log2(j + 2) for j in range(min(len(rel), k)))
            m[f"hr@{k}"] = float(bool(hits))
            m[f"ndcg@{k}"] = sum(1.0 / math.log2(r + 2) for r in hits) / idcg
            m[f"mrr@{k}"] = 1.0 / (ranks[0] + 1) if ranks[0] < k else 0.0
            m[f"recall@{k}"] = len(hits) / len(rel)
            m[f"precision@{k}"] = len(hits) / k
        m["mpr"] = float(np.mean([r / max(len(candidates) - 1, 1) for r in ranks]))
        out[u] = m
    return out


def score_fn_of(scores):
    table = torch.as_tensor(scores)
    return lambda users: table[users]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("path", ["count", "count, one row per block", "sort"])
def test_matches_brute_force_with_ties(seed, path, monkeypatch):
    monkeypatch.setattr(
        accuracy, "SORT_ABOVE_MEAN_RELEVANT", 0.0 if path == "sort" else float("inf")
    )
    if path == "count, one row per block":
        monkeypatch.setattr(accuracy, "BLOCK_ELEMENTS", 1)
    scores, exclude, relevant = random_case(seed)
    got = rank_metrics(score_fn_of(scores), exclude, relevant, KS, batch_size=7, per_user=True)
    expected = brute_force(scores, exclude, relevant, KS)
    assert got["n_users"] == len(expected)
    assert got["users"].tolist() == sorted(expected)
    for name, values in got["per_user"].items():
        want = np.array([expected[u][name] for u in got["users"]])
        np.testing.assert_allclose(values, want, rtol=1e-5, atol=1e-6, err_msg=name)
        assert got[name] == pytest.approx(want.mean(), rel=1e-5, abs=1e-7)


def test_ndcg_matches_sklearn_without_ties():
    scores, exclude, relevant = random_case(5, tied=False)
    got = rank_metrics(score_fn_of(scores), exclude, relevant, KS, per_user=True)
    ex, rel = exclude.toarray() > 0, relevant.toarray() > 0
    for k in KS:
        want = [
            ndcg_score(rel[u, ~ex[u]][None].astype(float), scores[u, ~ex[u]][None], k=k)
            for u in got["users"]
        ]
        np.testing.assert_allclose(got["per_user"][f"ndcg@{k}"], want, rtol=1e-5)


def test_users_without_relevant_items_and_user_subset_are_respected():
    scores, exclude, relevant = random_case(3)
    with_items = np.flatnonzero(np.diff(relevant.indptr) > 0)
    assert len(with_items) < scores.shape[0]
    subset = np.array([0, 1, 2, 3, with_items[0], with_items[-1]])
    got = rank_metrics(score_fn_of(scores), exclude, relevant, [5], users=subset, per_user=True)
    assert set(got["users"]) == set(subset) & set(with_items)
    assert got["n_users"] == len(got["users"])


def test_relevant_items_that_are_excluded_are_dropped():
    scores = np.arange(6, dtype=np.float32)[None].repeat(2, 0)
    exclude = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]], np.float32))
    relevant = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0]], np.float32))
    got = rank_metrics(score_fn_of(scores), exclude, relevant, [1])
    assert got["n_users"] == 1
    assert got["hr@1"] == 0.0 and got["mpr"] == pytest.approx(0.2)


def test_mostpop_ranks_by_training_popularity_with_ties_to_lower_id():
    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], np.float32))
    test = sp.csr_matrix(np.array([[0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0]], np.float32))
    pop = MostPop(train)
    got = rank_metrics(pop.full_scores, train, test, [1, 2], per_user=True)
    # popularity 1, 2, 1, 0. user 0: candidates 2, 3 -> item 3 second (last);
    # user 1: 0, 3 -> item 0 first; user 2: 1, then the tie 0/2 -> item 0 first, so item 2 third
    np.testing.assert_allclose(got["per_user"]["mrr@2"], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(got["per_user"]["mpr"], [1.0, 0.0, 2 / 3])


def test_nan_scores_raise():
    scores, exclude, relevant = random_case(0)
    scores[:, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rank_metrics(score_fn_of(scores), exclude, relevant, [5])


def test_infinite_scores_do_not_tie_with_excluded_items():
    scores = np.array([[-np.inf, 0.0, -np.inf]], np.float32)
    exclude = sp.csr_matrix(np.array([[1, 0, 0]], np.float32))
    relevant = sp.csr_matrix(np.array([[0, 0, 1]], np.float32))
    got = rank_metrics(score_fn_of(scores), exclude, relevant, [1, 2])
    assert got["hr@1"] == 0.0 and got["hr@2"] == 1.0


def test_prepared_task_gives_the_same_metrics_for_every_score_function():
    scores, exclude, relevant = random_case(4)
    task = accuracy.RankingTask(exclude, relevant, KS, batch_size=9)
    for table in (scores, -scores, np.zeros_like(scores)):
        got = task.evaluate(score_fn_of(table), per_user=True)
        expected = brute_force(table, exclude, relevant, KS)
        assert got["users"].tolist() == sorted(expected)
        want = np.array([expected[u]["ndcg@5"] for u in got["users"]])
        np.testing.assert_allclose(got["per_user"]["ndcg@5"], want, rtol=1e-5, atol=1e-6)


def test_half_precision_scores_are_ranked_exactly():
    scores, exclude, relevant = random_case(6)
    got = rank_metrics(score_fn_of(scores.astype(np.float16)), exclude, relevant, KS)
    want = rank_metrics(score_fn_of(scores), exclude, relevant, KS)
    assert got == want
