"""Non-SAE concept extractors: exactness, non-negativity, top-k, checkpoints, ICA on a toy
mixture, and fitting on the SAE-training embeddings."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from test_sae_training import DIM, N_ITEMS, N_USERS, TinyDot, tiny_split, write_tiny_run

from recsae.methods import METHODS, fit_method, keep_top_k
from recsae.sae.config import SAEPoint
from recsae.sae.holdout import split_sae_users
from recsae.sae.model import load_sae
from recsae.sae.train import fit_baseline, point_for
from recsae.stages import sae as sae_stage

D = 6


def embeddings(n=400, d=D, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen) @ torch.randn(d, d, generator=gen) + 0.5


def fitted(method, variant="relu", k=3, x=None, width=None):
    x = embeddings() if x is None else x
    point = SAEPoint.resolve({"method": method, "variant": variant, "k": k, "width": width}, D)
    return fit_method(point, x, seed=0), x


@pytest.mark.parametrize("method", [m for m, spec in METHODS.items() if spec.signed])
def test_invertible_methods_reconstruct_exactly_at_full_rank(method):
    model, x = fitted(method)
    assert model.width == 2 * D
    z = model.encode(x)
    assert z.shape == (len(x), 2 * D)
    torch.testing.assert_close(model.decode(z), x, rtol=0, atol=1e-4)
    # each direction fires on one side only: at most d latents per input
    assert int((z > 0).sum(1).max()) <= D


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("variant", ["relu", "topk"])
def test_latents_are_non_negative_and_topk_keeps_k(method, variant):
    model, x = fitted(method, variant, k=3, width=8 if method in ("nmf", "kmeans") else None)
    z = model.encode(x)
    assert (z >= 0).all()
    active = (z > 0).sum(1)
    if variant == "topk":
        assert int(active.max()) <= 3
        dense, _ = fitted(method, "relu", x=x, width=model.width)
        enough = (dense.encode(x) > 0).sum(1) >= 3
        assert bool((active[enough] == 3).all())


def test_keep_top_k_by_brute_force():
    z = torch.rand(20, 9, generator=torch.Generator().manual_seed(0))
    out = keep_top_k(z, 4)
    for row, kept in zip(z, out, strict=True):
        top = set(np.argsort(-row.numpy())[:4].tolist())
        assert set(torch.nonzero(kept).ravel().tolist()) == top
        torch.testing.assert_close(kept[list(top)], row[list(top)])


def test_kmeans_memberships_mix_centroids():
    model, x = fitted("kmeans", width=5)
    z = model.encode(x)
    torch.testing.assert_close(z.sum(1), torch.ones(len(x)))
    torch.testing.assert_close(model.decode(z), z @ model.centroids)
    topk, _ = fitted("kmeans", "topk", k=2, x=x, width=5)
    torch.testing.assert_close(topk.encode(x).sum(1), torch.ones(len(x)))


@pytest.mark.parametrize("width", [D, 3 * D])  # 3d > 2d split features: random init
def test_nmf_latents_solve_the_non_negative_least_squares(width):
    model, x = fitted("nmf", width=width)
    z = model.encode(x[:50]).double()
    parts = model.parts.double()
    phi = torch.cat([torch.relu(x[:50]), torch.relu(-x[:50])], 1).double()
    grad = (z @ parts - phi) @ parts.T  # KKT: grad >= 0, and grad = 0 where z > 0
    assert float(grad.min()) > -1e-3
    assert float(grad[z > 1e-6].abs().max()) < 1e-3


def test_random_basis_is_seeded_and_orthonormal():
    point = SAEPoint.resolve({"method": "random"}, D)
    a, b = fit_method(point, embeddings(), 1), fit_method(point, embeddings(), 1)
    c = fit_method(point, embeddings(), 2)
    assert torch.equal(a.encoder, b.encoder) and not torch.equal(a.encoder, c.encoder)
    torch.testing.assert_close(a.encoder.T @ a.encoder, torch.eye(D), rtol=0, atol=1e-5)


def test_ica_finds_a_planted_sparse_direction():
    """Three independent sources, one of them a sparse concept indicator, mixed by a non-orthogonal
    matrix: ICA unmixes them, so one of its latents detects the concept (AUROC 1.0 on seeds
    0-2), while the raw dimensions and random directions mix it with the other sources
    (0.82-0.85)."""
    rng = np.random.default_rng(0)
    n = 3000
    concept = rng.random(n) < 0.1
    sources = np.stack([concept * 1.0, rng.laplace(scale=1.5, size=n), rng.uniform(-3, 3, n)], 1)
    mixing = np.array([[1.0, 0.9, 0.0], [0.4, 1.0, 0.8], [0.0, 0.5, 1.0]])
    noise = rng.normal(scale=0.01, size=(n, 3))
    x = torch.as_tensor(sources @ mixing + noise, dtype=torch.float32)

    def best_auroc(method):
        z = fit_method(SAEPoint.resolve({"method": method}, 3), x, 0).encode(x).numpy()
        return max(roc_auc_score(concept, z[:, j]) for j in range(z.shape[1]))

    assert best_auroc("ica") > 0.99
    assert best_auroc("identity") < 0.9 and best_auroc("random") < 0.9


def test_variant_and_method_are_validated():
    with pytest.raises(ValueError, match="'method'"):
        SAEPoint.resolve({"method": "svd"}, D)
    with pytest.raises(ValueError, match="'variant'"):
        SAEPoint.resolve({"method": "pca", "variant": "batchtopk"}, D)
    with pytest.raises(ValueError, match="'k'"):
        SAEPoint.resolve({"method": "pca", "variant": "topk", "k": 2 * D + 1}, D)


def test_fit_baseline_uses_training_users_and_items():
    rec, split = TinyDot(N_USERS, N_ITEMS, {}), tiny_split()
    model, history = fit_baseline(
        rec, split, point_for(rec, {"method": "pca", "holdout_fraction": 0.25}), seed=3
    )
    train, heldout = split_sae_users(N_USERS, 0.25, 3)
    x = torch.cat([rec.user.detach()[train], rec.item.detach()])
    torch.testing.assert_close(model.mean, x.mean(0), rtol=0, atol=1e-5)
    assert history[0]["n_inputs"] == len(train) + N_ITEMS and len(heldout) > 0


def test_fit_baseline_is_seeded_by_the_points_sae_seed():
    """A sweep's SAE seeds (the point's seed) give different random bases and k-means fits, seeded
    as fit_method with that seed on the training users that seed holds out from; without one the
    config seed (argument) seeds the fit and the holdout."""
    rec, split = TinyDot(N_USERS, N_ITEMS, {}), tiny_split()
    train, _ = split_sae_users(N_USERS, 0.25, 1)
    x = torch.cat([rec.user.detach()[train], rec.item.detach()])
    for method in ("random", "kmeans"):
        settings = {"method": method, "holdout_fraction": 0.25}
        fits = {
            s: fit_baseline(rec, split, point_for(rec, {**settings, "seed": s}), seed=0)[0]
            for s in (1, 2)
        }
        unseeded = fit_baseline(rec, split, point_for(rec, {**settings, "seed": None}), seed=2)[0]
        resolved = SAEPoint.resolve({**settings, "seed": 1}, DIM)
        expected = fit_method(resolved, x, 1).encode(x)
        torch.testing.assert_close(fits[1].encode(x), expected, rtol=0, atol=0)
        assert not torch.equal(fits[1].encode(x), fits[2].encode(x))
        train2, _ = split_sae_users(N_USERS, 0.25, 2)
        x2 = torch.cat([rec.user.detach()[train2], rec.item.detach()])
        torch.testing.assert_close(
            unseeded.encode(x2), fit_method(resolved, x2, 2).encode(x2), rtol=0, atol=0
        )


def test_a_method_point_is_written_like_an_sae_point(tmp_path):
    rec, files = write_tiny_run(tmp_path)
    out_dir = tmp_path / "method"
    settings = {"method": "ica", "variant": "topk", "k": 3}
    sae_stage.train(settings, **files, point_id="method~ica", out_dir=out_dir, seed=7, device="cpu")
    log = json.loads((out_dir / "train_log.json").read_text())
    assert log["config"]["method"] == "ica" and log["config"]["width"] == 2 * DIM
    assert log["summary"]["l0_users"] == pytest.approx(3.0) and log["history"]
    payload = torch.load(out_dir / "sae.pt", weights_only=True)
    assert payload["extra"]["seed"] == 7 and payload["extra"]["sae_cfg"]["method"] == "ica"
    model = load_sae(out_dir / "sae.pt")
    x = rec.item.detach()
    z = model.encode(x)
    assert model.method == "ica" and z.shape == (N_ITEMS, 2 * DIM)
    assert ((z > 0).sum(1) == 3).all()
