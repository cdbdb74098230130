"""Fidelity metrics on a tiny dot-product recommender with exact and perturbed reconstructions."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsae.metrics.agreement import exclusion_mask, topk_lists
from recsae.metrics.fidelity import accuracy_fidelity, embedding_fidelity, score_fidelity


class Dot:
    """Stand-in recommender: logits U V^T + item bias."""

    def __init__(self, bias):
        self.bias = bias

    def score_matrix(self, user_emb, item_emb, users=None, items=None):
        return user_emb @ item_emb.T + (0 if items is None else self.bias[items])


def brute_rbo(a, b, p=0.9):
    return (1 - p) * sum(
        p ** (d - 1) * len(set(a[:d]) & set(b[:d])) / d for d in range(1, len(a) + 1)
    )


@pytest.fixture()
def setup():
    rng = np.random.default_rng(0)
    n_users, n_items, d = 25, 60, 6
    u, v = (
        torch.as_tensor(rng.normal(size=(n_users, d))),
        torch.as_tensor(rng.normal(size=(n_items, d))),
    )
    model = Dot(torch.as_tensor(rng.normal(size=n_items)))
    u_hat = u + 0.3 * torch.as_tensor(rng.normal(size=u.shape))
    v_hat = v + 0.3 * torch.as_tensor(rng.normal(size=v.shape))
    train = sp.random(n_users, n_items, density=0.15, random_state=1, format="csr")
    test = sp.random(n_users, n_items, density=0.05, random_state=2, format="csr")
    test = test - test.multiply(train != 0)
    return model, (u, v), (u_hat, v_hat), train, test


def test_embedding_fidelity_formulas():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 5)) + 3
    x_hat = x + rng.normal(scale=0.5, size=x.shape)
    out = embedding_fidelity(torch.as_tensor(x), torch.as_tensor(x_hat))
    assert out["mse"] == pytest.approx(((x - x_hat) ** 2).mean())
    assert out["fvu"] == pytest.approx(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    cos = (x * x_hat).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(x_hat, axis=1)
    assert out["cosine"] == pytest.approx(cos.mean())
    exact = embedding_fidelity(torch.as_tensor(x), torch.as_tensor(x))
    assert exact["mse"] == 0 and exact["fvu"] == 0 and exact["cosine"] == pytest.approx(1)
    with pytest.raises(ValueError, match="differ"):
        embedding_fidelity(torch.zeros(2, 3), torch.zeros(3, 3))


def test_score_fidelity_exact_reconstruction(setup):
    model, emb, _, train, _ = setup
    out = score_fidelity(model, emb, emb, np.arange(25), train, k=10, overlap_ks=(5, 10))
    assert out["score_mse"] == 0 and out["score_recovered"] == 1
    assert out["rbo"] == pytest.approx(1 - 0.9**10) and out["rbo_ext"] == pytest.approx(1)
    assert out["kendall_tau"] == pytest.approx(1) and out["kendall_tau_b_scores"] == pytest.approx(
        1
    )
    assert out["overlap@5"] == 1 and out["overlap@10"] == 1


def test_score_fidelity_matches_brute_force_across_batches(setup):
    model, emb, recon, train, _ = setup
    users = np.array([0, 3, 4, 8, 11, 20, 24])
    out = score_fidelity(model, emb, recon, users, train, k=10, overlap_ks=(10,), batch_size=3)
    items = torch.arange(60)
    orig = model.score_matrix(emb[0][users], emb[1], items=items).numpy()
    hat = model.score_matrix(recon[0][users], recon[1], items=items).numpy()
    assert out["score_mse"] == pytest.approx(((orig - hat) ** 2).mean())
    assert out["baseline_mse"] == pytest.approx(orig.var())
    assert out["score_recovered"] == pytest.approx(1 - ((orig - hat) ** 2).mean() / orig.var())
    mask = exclusion_mask(train, users)
    a = topk_lists(torch.as_tensor(orig), 10, mask)
    b = topk_lists(torch.as_tensor(hat), 10, mask)
    rbos = [brute_rbo(a[i].tolist(), b[i].tolist()) for i in range(len(users))]
    assert out["rbo"] == pytest.approx(np.mean(rbos))
    assert out["n_users"] == 7 and out["n_tau_undefined"] == 0
    single = score_fidelity(model, emb, recon, users, train, k=10, overlap_ks=(10,), batch_size=99)
    assert single == pytest.approx(out)


def test_accuracy_fidelity_deltas(setup):
    model, emb, recon, train, test = setup
    users = np.arange(25)
    same = accuracy_fidelity(model, emb, emb, users, train, test, ks=[5])
    assert all(v == 0 for v in same["delta"].values())
    assert "ndcg@5" in same["delta"] and "n_users" not in same["delta"]
    out = accuracy_fidelity(model, emb, recon, users, train, test, ks=[5, 10])
    for key, value in out["delta"].items():
        assert value == pytest.approx(out["reconstructed"][key] - out["original"][key])
