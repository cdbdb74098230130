"""Compiled loops: per-sample SGD (``train.per_sample``) against autograd SGD at batch size 1,
and the negative sampler's membership checks against a set."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_recommenders import SMALL, held_out, planted_split

from recsae.metrics.accuracy import rank_metrics
from recsae.recommenders import MostPop, model_class, sampling
from recsae.recommenders.compiled import bitmap_contains, row_bitmap, row_contains
from recsae.recommenders.sampling import NegativeSampler
from recsae.recommenders.train import make_step, resolve_config, train_recommender


def batch_of(name: str, n: int, n_users: int, n_items: int, seed: int = 1) -> dict:
    """n random training samples for ``name``: (users, items, labels) or (users, pos, neg)."""
    g = torch.Generator().manual_seed(seed)
    users = torch.randint(0, n_users, (n,), generator=g)
    if model_class(name).objective == "pointwise":
        items = torch.randint(0, n_items, (n,), generator=g)
        return {
            "users": users,
            "items": items,
            "labels": torch.randint(0, 2, (n,), generator=g).float(),
        }
    pos = torch.randint(0, n_items // 2, (n,), generator=g)
    return {"users": users, "pos": pos, "neg": pos + n_items // 2}


@pytest.mark.parametrize(
    "name, params",
    [("mf", {}), ("mf", {"fixed_global_bias": 1.0}), ("bpr", {})],
)
def test_per_sample_kernel_equals_autograd_sgd_one_sample_at_a_time(name, params):
    """400 steps of the compiled loop on one chunk give the parameters and the summed loss of 400
    autograd SGD steps on batches of one sample (loss_reduction mean and sum agree at size 1)."""
    n_users, n_items = 30, 40
    params, cfg = resolve_config(name, {"dim": 8, **params}, {"optimizer": "sgd", "lr": 0.05})
    reference = model_class(name)(n_users, n_items, params)
    compiled = model_class(name)(n_users, n_items, params)
    compiled.load_state_dict(reference.state_dict())
    initial = reference.user_emb.detach().clone()
    autograd_step = make_step(reference, cfg)
    compiled_step = make_step(compiled, {**cfg, "per_sample": True})
    batch = batch_of(name, 400, n_users, n_items)
    expected = sum(
        float(autograd_step({k: v[n : n + 1] for k, v in batch.items()}, f"sample {n}"))
        for n in range(400)
    )
    got = float(compiled_step(batch, "chunk")) * 400
    assert got == pytest.approx(expected, rel=1e-5)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(compiled.state_dict()[key], value, atol=1e-6, rtol=1e-5)
    assert not torch.equal(compiled.user_emb.detach(), initial)


def test_per_sample_stops_before_a_non_finite_sample():
    params, cfg = resolve_config("mf", {"dim": 4}, {"preset": "per_sample"})
    model = model_class("mf")(5, 6, params)
    batch = batch_of("mf", 10, 5, 6)
    batch["labels"][3] = float("nan")
    expected = model_class("mf")(5, 6, params)
    expected.load_state_dict(model.state_dict())
    make_step(expected, cfg)({k: v[:3] for k, v in batch.items()}, "first three")
    with pytest.raises(RuntimeError, match=r"non-finite loss at chunk 0, sample 3"):
        make_step(model, cfg)(batch, "chunk 0")
    for key, value in expected.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_per_sample_divergence_stops_the_run_with_a_message():
    split = planted_split()
    train = {"preset": "per_sample", "lr": 1e4, "epochs": 3}
    with pytest.raises(RuntimeError, match=r"bpr: non-finite loss at epoch 1, batch 0, sample \d+"):
        train_recommender(split, "bpr", SMALL["bpr"], train, seed=0, log=lambda s: None)


def test_per_sample_needs_a_kernel_plain_sgd_and_the_cpu():
    for name, train in (
        ("ncf", {"per_sample": True, "optimizer": "sgd"}),
        ("mf", {"per_sample": True}),
        ("bpr", {"per_sample": True, "optimizer": "sgd", "weight_decay": 0.1}),
    ):
        with pytest.raises(KeyError, match="per_sample"):
            resolve_config(name, {}, train)
    params, cfg = resolve_config("bpr", {"dim": 4}, {"preset": "per_sample"})
    with pytest.raises(ValueError, match="runs on the CPU, not on meta"):
        make_step(model_class("bpr")(3, 4, params).to("meta"), cfg)
    params, cfg = resolve_config("lightgcn", {"dim": 4}, {"analytic_gradients": True})
    with pytest.raises(ValueError, match="analytic_gradients runs on the CPU, not on meta"):
        make_step(model_class("lightgcn")(3, 4, params).to("meta"), cfg)


@pytest.mark.parametrize(
    "name, preset", [("mf", "per_sample"), ("bpr", "per_sample"), ("lightgcn", "large_batch")]
)
def test_speed_presets_learn_and_are_deterministic(name, preset):
    split = planted_split()
    train = {"preset": preset, "epochs": 30, "early_stopping_patience": 0}
    runs = [
        train_recommender(split, name, SMALL[name], train, seed=0, log=lambda s: None)[0]
        for _ in range(2)
    ]
    for key, value in runs[0].state_dict().items():
        assert torch.equal(runs[1].state_dict()[key], value), key
    seen, test = held_out(split)
    got = rank_metrics(runs[0].full_scores, seen, test, [10])["ndcg@10"]
    baseline = rank_metrics(MostPop(split.matrix("train")).full_scores, seen, test, [10])
    assert got > baseline["ndcg@10"] + 0.15, (name, got, baseline["ndcg@10"])


def test_lightgcn_analytic_gradients_equal_autograd():
    split = planted_split()
    params, _ = resolve_config("lightgcn", {"dim": 8, "n_layers": 2}, {})
    model = model_class("lightgcn")(split.n_users, split.n_items, params)
    model.prepare(split.matrix("train"))
    batch = batch_of("bpr", 300, split.n_users, split.n_items)
    loss = model.training_loss(batch)
    model.zero_grad(set_to_none=True)
    loss.backward()
    total, grads, bad = model.analytic_gradients(batch)
    assert bad == -1 and total == pytest.approx(loss.detach().item() * 300, rel=1e-5)
    for name, param in model.named_parameters():
        assert param.grad.abs().max() > 0
        torch.testing.assert_close(grads[name] / 300, param.grad, atol=1e-8, rtol=1e-4)


def test_lightgcn_layer_mean_into_scratch_equals_autograd_path():
    """The analytic step's propagation (layers written into scratch tensors) gives the same
    values, bit for bit, as the differentiable one, and leaves its input alone."""
    split = planted_split()
    params, _ = resolve_config("lightgcn", {"dim": 8, "n_layers": 3}, {})
    model = model_class("lightgcn")(split.n_users, split.n_items, params)
    model.prepare(split.matrix("train"))
    ego = torch.cat([model.user_emb, model.item_emb]).detach()
    kept = ego.clone()
    expected = model.layer_mean(ego.clone().requires_grad_())
    scratch = (torch.full_like(ego, float("nan")), torch.full_like(ego, float("nan")))
    assert torch.equal(model.layer_mean(ego, scratch), expected.detach())
    assert torch.equal(ego, kept)


def test_lightgcn_analytic_step_trains_like_autograd():
    """Ten Adam steps on analytic gradients end where ten autograd steps end (rounding aside);
    a non-finite loss stops the step before any update; the setting is LightGCN's alone."""
    split = planted_split()
    params, cfg = resolve_config("lightgcn", {"dim": 8, "n_layers": 2}, {"lr": 0.05})
    models = [model_class("lightgcn")(split.n_users, split.n_items, params) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    steps = []
    for model, analytic in zip(models, (False, True), strict=True):
        model.prepare(split.matrix("train"))
        steps.append(make_step(model, {**cfg, "analytic_gradients": analytic}))
    for seed in range(10):
        batch = batch_of("bpr", 200, split.n_users, split.n_items, seed=seed)
        losses = [float(step(batch, f"step {seed}")) for step in steps]
        assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    for key, value in models[0].state_dict().items():
        torch.testing.assert_close(models[1].state_dict()[key], value, atol=1e-5, rtol=1e-4)
    before = {k: v.clone() for k, v in models[1].state_dict().items()}
    models[1].user_emb.data[0, 0] = float("inf")
    before["user_emb"][0, 0] = float("inf")
    batch = batch_of("bpr", 50, split.n_users, split.n_items)
    batch["users"][7] = 0
    with pytest.raises(RuntimeError, match="non-finite loss at chunk, sample"):
        steps[1](batch, "chunk")
    for key, value in before.items():
        assert torch.equal(models[1].state_dict()[key], value), key
    for name in ("bpr", "ncf"):
        with pytest.raises(KeyError, match="analytic_gradients"):
            resolve_config(name, {}, {"analytic_gradients": True})


def test_membership_checks_match_a_set(monkeypatch):
    """Both checks of the negative sampler (bitmap and per-row binary search) against a set."""
    rng = np.random.default_rng(0)
    matrix = sp.random(50, 70, density=0.2, format="csr", random_state=1)
    matrix.sum_duplicates()
    indptr, indices = matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64)
    rows, cols = rng.integers(0, 50, 5000), rng.integers(0, 70, 5000)
    stored = set(zip(*matrix.nonzero(), strict=True))
    expected = np.array([(r, c) in stored for r, c in zip(rows, cols, strict=True)])
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(row_contains(indptr, indices, rows, cols), expected)
    bits = row_bitmap(indptr, indices, 70)
    assert bits.dtype == np.uint64 and len(bits) == (50 * 70 + 63) // 64
    np.testing.assert_array_equal(bitmap_contains(bits, 70, rows, cols), expected)
    sampler = NegativeSampler(matrix)
    assert sampler.bitmap is not None and sampler.rows is None
    np.testing.assert_array_equal(sampler.is_positive(rows, cols), expected)
    monkeypatch.setattr(sampling, "BITMAP_MAX_BITS", 50 * 70 - 1)
    searched = NegativeSampler(matrix)
    assert searched.bitmap is None and searched.rows is not None
    np.testing.assert_array_equal(searched.is_positive(rows, cols), expected)
    empty = sp.csr_matrix((3, 4))
    empty_ptr, empty_idx = empty.indptr.astype(np.int64), empty.indices.astype(np.int64)
    assert not row_contains(empty_ptr, empty_idx, np.array([0, 2]), np.array([1, 3])).any()
    assert not bitmap_contains(
        row_bitmap(empty_ptr, empty_idx, 4), 4, np.array([2]), np.array([3])
    )[0]


def test_sampler_without_a_bitmap_draws_the_same_negatives(monkeypatch):
    """Above ``BITMAP_MAX_BITS`` the sampler searches rows instead; the draws are the same."""
    matrix = sp.random(40, 30, density=0.3, format="csr", random_state=2)
    users = np.repeat(np.arange(40), 5)
    with_bitmap = NegativeSampler(matrix).sample(users, np.random.default_rng(3))
    monkeypatch.setattr(sampling, "BITMAP_MAX_BITS", 40 * 30 - 1)
    searched = NegativeSampler(matrix)
    assert searched.bitmap is None
    np.testing.assert_array_equal(searched.sample(users, np.random.default_rng(3)), with_bitmap)
    assert not matrix[users, with_bitmap].any()
