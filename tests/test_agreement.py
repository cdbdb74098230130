"""Ranking agreement against independent implementations (scipy, brute-force formulas)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import kendalltau

from recsae.metrics.agreement import (
    exclusion_mask,
    kendall_tau_b,
    overlap_at,
    rank_tau,
    ranking_agreement,
    rbo,
    rbo_ext,
    topk_lists,
    union_tau,
)


def brute_rbo(a, b, p):
    """RBO truncated at the list depth, straight from the formula."""
    total = 0.0
    for d in range(1, len(a) + 1):
        total += p ** (d - 1) * len(set(a[:d]) & set(b[:d])) / d
    return (1 - p) * total


def brute_rbo_ext(a, b, p):
    k = len(a)
    overlap = [len(set(a[:d]) & set(b[:d])) for d in range(1, k + 1)]
    tail = sum(overlap[d - 1] / d * p**d for d in range(1, k + 1))
    return overlap[-1] / k * p**k + (1 - p) / p * tail


def random_lists(rng, n_users, k, n_items):
    a = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    b = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    b[: n_users // 2] = a[: n_users // 2]  # half the rows: a permutation of a
    for row in b[: n_users // 2]:
        rng.shuffle(row[rng.integers(0, k) :])
    return torch.as_tensor(a), torch.as_tensor(b)


@pytest.mark.parametrize("p", [0.9, 0.5])
def test_rbo_matches_brute_force(p):
    a, b = random_lists(np.random.default_rng(0), 12, 30, 45)
    got, got_ext = rbo(a, b, p), rbo_ext(a, b, p)
    for i in range(len(a)):
        assert got[i].item() == pytest.approx(brute_rbo(a[i].tolist(), b[i].tolist(), p))
        assert got_ext[i].item() == pytest.approx(brute_rbo_ext(a[i].tolist(), b[i].tolist(), p))


def test_rbo_bounds():
    a = torch.arange(30)[None]
    assert rbo(a, a).item() == pytest.approx(1 - 0.9**30)  # the paper's max, 0.9576
    assert rbo_ext(a, a).item() == pytest.approx(1.0)
    assert rbo(a, a + 30).item() == 0.0 and rbo_ext(a, a + 30).item() == 0.0


def test_overlap_matches_sets():
    a, b = random_lists(np.random.default_rng(1), 8, 30, 40)
    for depth in (1, 10, 30):
        got = overlap_at(a, b, depth)
        for i in range(len(a)):
            expected = len(set(a[i, :depth].tolist()) & set(b[i, :depth].tolist())) / depth
            assert got[i].item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="overlap depth"):
        overlap_at(a, b, 31)


def test_kendall_tau_b_matches_scipy_with_ties():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 4, size=(20, 15)).astype(np.float64)  # many ties
    y = x + rng.integers(-2, 3, size=x.shape)
    got = kendall_tau_b(torch.as_tensor(x), torch.as_tensor(y))
    for i in range(len(x)):
        assert got[i].item() == pytest.approx(kendalltau(x[i], y[i]).statistic)


def test_kendall_tau_b_mask_and_constant():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5, 10)), rng.normal(size=(5, 10))
    mask = rng.random((5, 10)) < 0.7
    got = kendall_tau_b(torch.as_tensor(x), torch.as_tensor(y), torch.as_tensor(mask))
    for i in range(5):
        assert got[i].item() == pytest.approx(kendalltau(x[i][mask[i]], y[i][mask[i]]).statistic)
    const = kendall_tau_b(torch.ones(1, 6), torch.arange(6.0)[None])
    assert torch.isnan(const).all()


def brute_rank_tau(a, b):
    """The authors' kendall_tau, per user: scipy tau-b of the ranks over the union of both
    lists, an item missing from a list ranked len + 1 there."""
    union = sorted(set(a) | set(b))
    rank_a = [a.index(i) + 1 if i in a else len(a) + 1 for i in union]
    rank_b = [b.index(i) + 1 if i in b else len(b) + 1 for i in union]
    return kendalltau(rank_a, rank_b).statistic


def test_rank_tau_matches_brute_force():
    a, b = random_lists(np.random.default_rng(7), 16, 10, 25)  # overlaps from partial to full
    b[-1] = a[-1] + 25  # disjoint lists
    got = rank_tau(a, b)
    for i in range(len(a)):
        assert got[i].item() == pytest.approx(brute_rank_tau(a[i].tolist(), b[i].tolist()))
    identical = torch.arange(30)[None]
    assert rank_tau(identical, identical).item() == pytest.approx(1.0)
    # two disjoint top-30 lists: C = 0, D = 30 * 30, tau-b = -900 / (30 * 59 - 30 * 29 / 2)
    assert rank_tau(identical, identical + 30).item() == pytest.approx(-900 / (30 * 59 - 435))


def test_union_tau_and_ranking_agreement():
    rng = np.random.default_rng(4)
    n_users, n_items, k = 6, 50, 10
    s1 = torch.as_tensor(rng.normal(size=(n_users, n_items)))
    s2 = s1 + 0.5 * torch.as_tensor(rng.normal(size=(n_users, n_items)))
    train = sp.random(n_users, n_items, density=0.2, random_state=5, format="csr")
    exclude = exclusion_mask(train, np.arange(n_users))
    out = ranking_agreement(s1, s2, exclude, k=k, overlap_ks=(5, 10))
    a, b = topk_lists(s1, k, exclude), topk_lists(s2, k, exclude)
    tau = union_tau(s1, s2, a, b)
    for i in range(n_users):
        assert not set(a[i].tolist()) & set(train[i].indices.tolist())
        union = sorted(set(a[i].tolist()) | set(b[i].tolist()))
        expected = kendalltau(s1[i, union].numpy(), s2[i, union].numpy()).statistic
        assert tau[i].item() == pytest.approx(expected)
        assert out["kendall_tau_b_scores"][i].item() == pytest.approx(expected)
        assert out["kendall_tau"][i].item() == pytest.approx(
            brute_rank_tau(a[i].tolist(), b[i].tolist())
        )
        assert out["rbo"][i].item() == pytest.approx(brute_rbo(a[i].tolist(), b[i].tolist(), 0.9))
    assert set(out) == {
        "rbo",
        "rbo_ext",
        "kendall_tau",
        "kendall_tau_b_scores",
        "overlap@5",
        "overlap@10",
    }


def test_topk_lists_exclusion_and_too_few_candidates():
    scores = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]])
    exclude = torch.tensor([[True, False, True, False, False]])
    assert topk_lists(scores, 2, exclude).tolist() == [[1, 3]]
    with pytest.raises(ValueError, match="at least 4 candidate"):
        topk_lists(scores, 4, exclude)
    with pytest.raises(ValueError, match="at least 6 items"):
        topk_lists(scores, 6)


def test_exclusion_mask_matches_dense():
    mat = sp.random(7, 9, density=0.3, random_state=6, format="csr")
    rows = [4, 0, 4]
    assert torch.equal(exclusion_mask(mat, rows), torch.as_tensor(mat[rows].toarray() != 0))
