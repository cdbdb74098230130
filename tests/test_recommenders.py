"""Base recommenders: learning a planted structure, the scorer contract, checkpoints, sampling,
determinism, and the training/evaluation entry points."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsae.data.tables import Split
from recsae.metrics.accuracy import rank_metrics
from recsae.recommenders import MostPop, load_checkpoint, model_class, save_checkpoint
from recsae.recommenders import ncf as ncf_module
from recsae.recommenders.sampling import NegativeSampler, pairwise_epoch, train_pairs
from recsae.recommenders.train import resolve_config, train_recommender
from recsae.stages import recommender as recommender_stage

TRAINABLE = ["mf", "ncf", "bpr", "lightgcn"]
FAST = {"epochs": 40, "lr": 0.03, "batch_size": 512, "eval_every": 5, "early_stopping_patience": 0}
SMALL = {
    "mf": {"dim": 8},
    "ncf": {"dim": 8, "layers": [16, 8]},
    "bpr": {"dim": 8},
    "lightgcn": {"dim": 8, "n_layers": 2},
}


def frame(users, items) -> pd.DataFrame:
    n = len(users)
    return pd.DataFrame(
        {
            "user": np.asarray(users, np.int64),
            "item": np.asarray(items, np.int64),
            "rating": np.ones(n, np.float32),
            "timestamp": np.zeros(n, np.int64),
        }
    )


def planted_split(seed: int = 0, n_users: int = 80, n_items: int = 60) -> Split:
    """Two user groups, each interacting with ~70% of its own half of the items plus a few popular
    items of the other half (so MostPop is a real baseline); 2 test and 1 valid item per user."""
    rng = np.random.default_rng(seed)
    half = n_items // 2
    parts = {"train": ([], []), "valid": ([], []), "test": ([], [])}
    for u in range(n_users):
        own = np.arange(half) + (half if u >= n_users // 2 else 0)
        other = np.arange(half) + (0 if u >= n_users // 2 else half)
        liked = rng.permutation(own)[: int(0.7 * half)]
        popular = other[:3]
        for name, items in (
            ("test", liked[:2]),
            ("valid", liked[2:3]),
            ("train", np.concatenate([liked[3:], popular])),
        ):
            parts[name][0].extend([u] * len(items))
            parts[name][1].extend(items.tolist())
    frames = {k: frame(*v) for k, v in parts.items()}
    return Split(n_users=n_users, n_items=n_items, **frames)


@pytest.fixture(scope="module")
def split() -> Split:
    return planted_split()


@pytest.fixture(scope="module")
def trained(split):
    return {
        name: train_recommender(split, name, SMALL[name], FAST, seed=0, log=lambda s: None)
        for name in TRAINABLE
    }


def held_out(split) -> tuple:
    seen = split.matrix("train") + split.matrix("valid")
    return seen, split.matrix("test")


@pytest.mark.parametrize("name", TRAINABLE)
def test_models_learn_the_planted_groups(name, split, trained):
    model, history = trained[name]
    seen, test = held_out(split)
    got = rank_metrics(model.full_scores, seen, test, [10])["ndcg@10"]
    baseline = rank_metrics(MostPop(split.matrix("train")).full_scores, seen, test, [10])["ndcg@10"]
    assert got > baseline + 0.15, (name, got, baseline)
    assert got > 0.45, (name, got)
    assert history[0]["loss"] > history[-1]["loss"]
    assert any("valid" in record and record["valid"] for record in history)


@pytest.mark.parametrize("name", TRAINABLE + ["embeddings"])
def test_scorer_is_differentiable_in_arbitrary_embeddings(name, trained, embeddings_model):
    model = embeddings_model if name == "embeddings" else trained[name][0]
    d = model.item_embeddings().shape[1]
    users = torch.tensor([0, 3, 5])
    items = torch.tensor([1, 2, 7, 9])
    u = torch.randn(3, d, requires_grad=True)
    v = torch.randn(4, d, requires_grad=True)
    matrix = model.score_matrix(u, v, users, items)
    assert matrix.shape == (3, 4)
    matrix.square().sum().backward()
    assert u.grad is not None and u.grad.abs().sum() > 0
    assert v.grad is not None and v.grad.abs().sum() > 0
    uu, ii = torch.meshgrid(torch.arange(3), torch.arange(4), indexing="ij")
    uu, ii = uu.reshape(-1), ii.reshape(-1)
    with torch.no_grad():
        pairs = model.score_pairs(u[uu], v[ii], users[uu], items[ii])
        np.testing.assert_allclose(pairs.reshape(3, 4), matrix.detach(), rtol=1e-5, atol=1e-5)
        plain = model.score_matrix(u, v)
        np.testing.assert_allclose(
            model.score_pairs(u[uu], v[ii]).reshape(3, 4), plain, rtol=1e-5, atol=1e-5
        )


def test_biases_only_with_ids(trained):
    model = trained["mf"][0]
    u, v = model.user_embeddings()[:2], model.item_embeddings()[:3]
    with torch.no_grad():
        plain = model.score_matrix(u, v)
        biased = model.score_matrix(u, v, torch.arange(2), torch.arange(3))
        np.testing.assert_allclose(plain, u @ v.T, rtol=1e-6)
        want = plain + model.global_bias + model.user_bias[:2, None] + model.item_bias[None, :3]
        np.testing.assert_allclose(biased, want, rtol=1e-5, atol=1e-6)


def test_ncf_score_matrix_in_chunks_matches_pairs(trained, monkeypatch):
    model = trained["ncf"][0]
    monkeypatch.setattr(ncf_module, "_CHUNK_ELEMENTS", 50)
    with torch.no_grad():
        u, v = model.user_embeddings()[:7], model.item_embeddings()
        matrix = model.score_matrix(u, v)
        uu = torch.arange(7).repeat_interleave(len(v))
        ii = torch.arange(len(v)).repeat(7)
        pairs = model.score_pairs(u[uu], v[ii]).reshape(7, len(v))
    np.testing.assert_allclose(matrix, pairs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", TRAINABLE + ["embeddings"])
def test_checkpoint_round_trip(name, trained, embeddings_model, tmp_path):
    model = embeddings_model if name == "embeddings" else trained[name][0]
    path = tmp_path / "model.pt"
    save_checkpoint(model, path, extra={"seed": 0})
    torch.load(path, weights_only=True)
    loaded = load_checkpoint(path)
    users = torch.arange(model.n_users)
    with torch.no_grad():
        np.testing.assert_allclose(loaded.full_scores(users), model.full_scores(users), rtol=1e-6)
        np.testing.assert_allclose(loaded.user_embeddings(), model.user_embeddings())


def test_lightgcn_caches_propagated_embeddings_in_eval(trained):
    model = trained["lightgcn"][0]
    with torch.no_grad():
        users, items = model.propagate()
    assert not model.training
    assert torch.equal(model.user_embeddings(), users)
    assert torch.equal(model.item_embeddings(), items)
    assert not torch.equal(model.user_embeddings(), model.user_emb)


@pytest.mark.parametrize("kind", ["uniform", "popularity"])
def test_negatives_never_hit_training_positives(kind):
    dense = np.random.default_rng(0).random((50, 30)) < 0.8
    dense[0, :29] = True  # user 0 has a single possible negative
    dense[0, 29] = False
    train = sp.csr_matrix(dense.astype(np.float32))
    sampler = NegativeSampler(train, kind, exponent=0.5)
    users = np.repeat(np.arange(50), 200)
    negatives = sampler.sample(users, np.random.default_rng(1))
    assert not train[users, negatives].A1.any()
    assert set(negatives[users == 0]) <= {29}


def test_popularity_sampler_follows_popularity():
    pop = np.array([1, 2, 4, 8, 16, 0, 32])
    dense = np.arange(1, 41)[:, None] <= pop[None, :]  # item j: users 0..pop[j]-1 minus user 0
    dense[0] = False
    dense[33:] = False
    dense[1:33][np.arange(32)[:, None] < pop[None, :]] = True
    train = sp.csr_matrix(dense.astype(np.float32))
    assert np.array_equal(np.bincount(train.indices, minlength=7), pop)
    sampler = NegativeSampler(train, "popularity", exponent=0.75)
    draws = sampler.sample(np.zeros(200_000, np.int64), np.random.default_rng(2))
    want = pop**0.75 / (pop**0.75).sum()
    np.testing.assert_allclose(np.bincount(draws, minlength=7) / len(draws), want, atol=0.005)
    uniform = NegativeSampler(train, "uniform").sample(
        np.zeros(70_000, np.int64), np.random.default_rng(3)
    )
    np.testing.assert_allclose(np.bincount(uniform, minlength=7) / 70_000, 1 / 7, atol=0.01)


def test_epoch_samples_are_resampled_each_epoch(split):
    train = split.matrix("train")
    sampler = NegativeSampler(train)
    users, items = train_pairs(train)
    first = pairwise_epoch(users, items, sampler, 1, np.random.default_rng(0))
    second = pairwise_epoch(users, items, sampler, 1, np.random.default_rng(1))
    assert len(first["users"]) == train.nnz
    assert not np.array_equal(first["neg"], second["neg"])


def test_sampler_raises_for_user_without_negatives():
    train = sp.csr_matrix(np.ones((2, 3), np.float32))
    with pytest.raises(RuntimeError, match="users \\[0\\]"):
        NegativeSampler(train, max_rounds=5).sample(np.array([0]), np.random.default_rng(0))


def test_same_seed_same_weights(split):
    cfg = {**FAST, "epochs": 3}
    a, _ = train_recommender(split, "mf", SMALL["mf"], cfg, seed=7, log=lambda s: None)
    b, _ = train_recommender(split, "mf", SMALL["mf"], cfg, seed=7, log=lambda s: None)
    c, _ = train_recommender(split, "mf", SMALL["mf"], cfg, seed=8, log=lambda s: None)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.user_emb, c.user_emb)


def test_non_finite_loss_raises_with_model_epoch_and_batch(split):
    with pytest.raises(RuntimeError, match=r"mf: non-finite loss .* epoch 1, batch 0"):
        train_recommender(split, "mf", {"init_std": float("nan")}, FAST, 0, log=lambda s: None)


def test_unknown_config_keys_are_named():
    with pytest.raises(KeyError, match="dims"):
        resolve_config("mf", {"dims": 3}, {})
    with pytest.raises(KeyError, match="epoch"):
        resolve_config("bpr", {}, {"epoch": 3})
    with pytest.raises(KeyError, match="early_stopping_metric"):
        resolve_config("bpr", {}, {"early_stopping_metric": "ndcg@5"})
    params, train = resolve_config("mf", {}, {"preset": "paper"})
    assert params["dim"] == 20 and train["batch_size"] == 256


@pytest.fixture(scope="module")
def factor_files(tmp_path_factory, split):
    """Planted factors as .npy and as .parquet (numeric columns with shuffled ids; list column)."""
    root = tmp_path_factory.mktemp("factors")
    half_u, half_i = split.n_users // 2, split.n_items // 2
    users = np.zeros((split.n_users, 2), np.float32)
    users[:half_u, 0] = users[half_u:, 1] = 1.0
    items = np.zeros((split.n_items, 2), np.float32)
    items[:half_i, 0] = items[half_i:, 1] = 1.0
    item_bias = np.linspace(0, 0.5, split.n_items).astype(np.float32)
    np.save(root / "users.npy", users)
    np.save(root / "items.npy", items)
    np.save(root / "item_bias.npy", item_bias)
    order = np.random.default_rng(0).permutation(split.n_users)
    pd.DataFrame({"user": order, "d0": users[order, 0], "d1": users[order, 1]}).to_parquet(
        root / "users.parquet"
    )
    pd.DataFrame({"embedding": list(items)}).to_parquet(root / "items.parquet")
    pd.DataFrame({"bias": item_bias}).to_parquet(root / "item_bias.parquet")
    return root, users, items, item_bias


@pytest.fixture(scope="module")
def embeddings_model(split, factor_files):
    root = factor_files[0]
    params = {
        "user_path": str(root / "users.npy"),
        "item_path": str(root / "items.npy"),
        "item_bias_path": str(root / "item_bias.npy"),
    }
    return train_recommender(split, "embeddings", params, {}, seed=0, log=lambda s: None)[0]


def test_embeddings_model_loads_npy_and_parquet(split, factor_files):
    root, users, items, item_bias = factor_files
    for suffix in ("npy", "parquet"):
        params = {
            "user_path": str(root / f"users.{suffix}"),
            "item_path": str(root / f"items.{suffix}"),
            "item_bias_path": str(root / f"item_bias.{suffix}"),
            "global_bias": 0.25,
        }
        model, history = train_recommender(split, "embeddings", params, {}, 0, log=lambda s: None)
        np.testing.assert_array_equal(model.user_embeddings(), users)
        np.testing.assert_array_equal(model.item_embeddings(), items)
        scores = model.full_scores(torch.tensor([0]))
        np.testing.assert_allclose(scores[0], items @ users[0] + item_bias + 0.25, rtol=1e-6)
        assert history[0]["valid"]["ndcg@10"] > 0
        assert "user_bias" not in model.bias_terms()


def test_embeddings_model_names_bad_files(split, tmp_path):
    np.save(tmp_path / "users.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="user_path"):
        model_class("embeddings").build(
            split.n_users,
            split.n_items,
            {"user_path": str(tmp_path / "users.npy"), "item_path": str(tmp_path / "users.npy")},
        )
    with pytest.raises(FileNotFoundError, match="item_path"):
        model_class("embeddings").build(
            3, 3, {"user_path": str(tmp_path / "users.npy"), "item_path": str(tmp_path / "x.npy")}
        )


def test_recommender_stages_write_their_files(split, tmp_path):
    data_dir, split_dir, out_dir = tmp_path / "data", tmp_path / "split", tmp_path / "bpr"
    data_dir.mkdir()
    split_dir.mkdir()
    (data_dir / "stats.json").write_text(
        json.dumps({"n_users": split.n_users, "n_items": split.n_items})
    )
    for part in ("train", "valid", "test"):
        getattr(split, part).to_parquet(split_dir / f"{part}.parquet")
    cfg = {**FAST, "epochs": 5}
    entry = {"model": "bpr", "params": SMALL["bpr"], "train": cfg}
    files = {"data_dir": data_dir, "split_dir": split_dir}
    recommender_stage.train(entry, **files, out_dir=out_dir, seed=3, device="cpu")
    log = json.loads((out_dir / "train_log.json").read_text())
    assert log["seed"] == 3 and len(log["history"]) == 5 and log["config"]["train"]["epochs"] == 5
    arrays = np.load(out_dir / "embeddings.npz")
    assert arrays["user"].shape == (split.n_users, 8) and arrays["item"].shape == (split.n_items, 8)
    recommender_stage.evaluate(
        {"ks": [5, 10]},
        **files,
        model_path=out_dir / "model.pt",
        out=out_dir / "m.json",
        device="cpu",
    )
    metrics = json.loads((out_dir / "m.json").read_text())
    assert metrics["seed"] == 3 and metrics["config"]["eval"]["ks"] == [5, 10]
    for block in (metrics["test"], metrics["valid"], metrics["baselines"]["mostpop"]["test"]):
        assert {"hr@10", "ndcg@5", "mrr@10", "recall@10", "precision@5", "mpr"} <= set(block)
    assert metrics["test"]["n_users"] == split.n_users


@pytest.mark.parametrize("name", ["mf", "bpr", "ncf"])
def test_sparse_row_gradients_equal_dense_ones_and_learn(name, split, trained):
    """With sparse_rows the tables' gradients hold only the batch's rows, with the same values as
    the dense gradient (zero elsewhere); training with sparse_updates learns the planted groups."""
    model = trained[name][0]
    rng = np.random.default_rng(0)
    batch = {
        "users": torch.as_tensor(rng.integers(0, split.n_users, 64)),
        "items": torch.as_tensor(rng.integers(0, split.n_items, 64)),
        "pos": torch.as_tensor(rng.integers(0, split.n_items, 64)),
        "neg": torch.as_tensor(rng.integers(0, split.n_items, 64)),
        "labels": torch.as_tensor(rng.integers(0, 2, 64).astype(np.float32)),
    }
    grads = {}
    for sparse in (False, True):
        model.sparse_rows = sparse
        model.zero_grad(set_to_none=True)
        model.training_loss(batch).backward()
        grads[sparse] = {n: getattr(model, n).grad for n in model.row_tables}
    model.sparse_rows = False
    for table in model.row_tables:
        assert grads[True][table].is_sparse and not grads[False][table].is_sparse
        torch.testing.assert_close(grads[True][table].to_dense(), grads[False][table])
    fitted, _ = train_recommender(
        split, name, SMALL[name], {**FAST, "sparse_updates": True}, seed=0, log=lambda s: None
    )
    seen, test = held_out(split)
    got = rank_metrics(fitted.full_scores, seen, test, [10])["ndcg@10"]
    baseline = rank_metrics(MostPop(split.matrix("train")).full_scores, seen, test, [10])["ndcg@10"]
    assert got > baseline + 0.15, (name, got, baseline)


def test_sparse_updates_need_row_tables_and_plain_adam(split):
    for name, train in (
        ("lightgcn", {"sparse_updates": True}),
        ("mf", {"sparse_updates": True, "optimizer": "sgd"}),
        ("mf", {"sparse_updates": True, "weight_decay": 0.01}),
    ):
        with pytest.raises(KeyError, match="sparse_updates"):
            resolve_config(name, {}, train)
