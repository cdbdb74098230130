"""Concept probes against scikit-learn's cross-validation on toy cases."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from recsae.metrics.probes import (
    auroc,
    balanced_logistic_scores,
    ceiling_share,
    pooled_ceiling_share,
    probe_ceiling,
    probe_summary,
    sparse_probes,
)


def toy(seed=0, n=240, d=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    logits = np.stack([x[:, 0] + 0.5 * x[:, 1], x[:, 2] - x[:, 3], 0.2 * x[:, 4]], 1)
    labels = logits + rng.normal(size=logits.shape) > np.array([0.8, 0.0, 1.2])
    return x, labels


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(2)
    scores, labels = rng.integers(0, 4, 50).astype(float), rng.random(50) < 0.3
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_probe_ceiling_equals_sklearn_cross_validated_auroc():
    x, labels = toy()
    ceiling = probe_ceiling(x, labels, folds=5, seed=3)
    for c in range(labels.shape[1]):
        pipe = make_pipeline(
            StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000)
        )
        cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
        expected = cross_val_score(pipe, x, labels[:, c], cv=cv, scoring="roc_auc").mean()
        assert ceiling[c] == pytest.approx(expected, abs=1e-12)


def converged_probe():
    """scikit-learn's balanced probe solved to a tight tolerance: the optimum itself."""
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(class_weight="balanced", max_iter=10000, tol=1e-12),
    )


def test_batched_balanced_probes_equal_scikit_learns_optimum():
    rng = np.random.default_rng(4)
    n, problems = 150, 6
    x = rng.normal(size=(problems, n, 3)) * np.array([1.0, 5.0, 0.01])
    x[2, :, 1] = 3.0  # a constant feature: left unscaled, as StandardScaler does
    labels = x[:, :, 0] + 0.5 * rng.normal(size=(problems, n)) > 0.8
    train = rng.random((problems, n)) < 0.7
    got = balanced_logistic_scores(
        torch.as_tensor(x), torch.as_tensor(labels), torch.as_tensor(train)
    ).numpy()
    for p in range(problems):
        probe = converged_probe().fit(x[p, train[p]], labels[p, train[p]])
        np.testing.assert_allclose(got[p], probe.decision_function(x[p]), atol=1e-6)


def test_sparse_probes_by_brute_force():
    """k-sparse probe = per fold, the k latents of largest standardised mean difference, then the
    balanced probe on them; the 1-sparse probe scores the chosen latent with its sign."""
    rng = np.random.default_rng(1)
    z = np.abs(rng.normal(size=(200, 6)))
    y = np.stack(
        [
            z[:, 2] - 0.7 * z[:, 4] + 0.3 * rng.normal(size=200) > 0.2,
            z[:, 0] + z[:, 1] + 0.5 * rng.normal(size=200) > 1.8,
            rng.random(200) < 0.1,
        ],
        1,
    )
    got = sparse_probes(z, y, ks=(1, 2, 5), folds=4, seed=0)
    for c in range(y.shape[1]):
        for k in (1, 2, 5):
            scores = []
            for train, test in StratifiedKFold(4, shuffle=True, random_state=0).split(z, y[:, c]):
                yt = y[train, c]
                diff = z[train][yt].mean(0) - z[train][~yt].mean(0)
                top = np.argsort(-np.abs(diff) / z[train].std(0), kind="stable")[:k]
                probe = converged_probe().fit(z[np.ix_(train, top)], yt)
                scores.append(
                    roc_auc_score(y[test, c], probe.decision_function(z[np.ix_(test, top)]))
                )
            assert got[k][c] == pytest.approx(np.mean(scores), abs=1e-12), (c, k)
    assert got[2][0] > got[1][0]


def test_pooled_ceiling_share_is_robust_to_near_chance_ceilings():
    best, ceiling = np.array([0.7, 0.8, 0.9]), np.array([0.51, 0.9, np.nan])
    assert ceiling_share(best, ceiling)[0] == pytest.approx(20.0)
    assert pooled_ceiling_share(best, ceiling) == pytest.approx((0.2 + 0.3) / (0.01 + 0.4))
    assert pooled_ceiling_share(best, np.array([0.4, 0.5, np.nan])) is None
    assert pooled_ceiling_share(np.array([np.nan, 0.8]), np.array([0.9, 0.9])) == pytest.approx(
        0.75
    )


def test_ceiling_share_and_summary():
    share = ceiling_share(np.array([0.75, 0.9, 0.6]), np.array([1.0, 0.9, 0.5]))
    np.testing.assert_allclose(share[:2], [0.5, 1.0])
    assert np.isnan(share[2])
    x, labels = toy()
    z = np.maximum(np.concatenate([x, -x], 1), 0)
    best = np.array([roc_auc_score(labels[:, c], z[:, j]) for c in range(3) for j in range(10)])
    best = best.reshape(3, 10).max(1)
    ceiling = probe_ceiling(x, labels, folds=3, seed=0)
    out = probe_summary(ceiling, z, labels, best, ks=(1, 2), folds=3, seed=0)
    assert set(out["per_concept"]) == {
        "ceiling",
        "best_latent_auroc",
        "ceiling_share",
        "sparse_k1",
        "sparse_k2",
    }
    assert out["per_concept"]["ceiling"] == ceiling.tolist()
    assert out["ceiling_mean"] == pytest.approx(np.mean(ceiling))
    ok = ceiling > 0.5
    assert out["ceiling_share"] == pytest.approx((best[ok] - 0.5).sum() / (ceiling[ok] - 0.5).sum())
    assert "ceiling_share_mean" not in out
    empty = probe_summary(ceiling[:0], z, labels[:, :0], best[:0], ks=(1,), folds=3)
    assert empty["ceiling_mean"] is None and empty["per_concept"]["ceiling"] == []
    with pytest.raises(ValueError, match="one value per concept"):
        probe_summary(ceiling[:2], z, labels, best, ks=(1,), folds=3)
