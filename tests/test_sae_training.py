"""Prediction-aware SAE training on tiny frozen recommenders defined here (a dot model and an
MLP pairwise model), independent of the concrete recommenders of the suite."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from recsae.data.tables import Split
from recsae.recommenders.base import Recommender, register, save_checkpoint
from recsae.sae import losses
from recsae.sae.config import SAEConfig, SAEPoint
from recsae.sae.holdout import split_sae_users
from recsae.sae.model import build_sae, load_sae
from recsae.sae.train import (
    PairBatch,
    PairSampler,
    _batches,
    point_for,
    sae_loss_terms,
    sae_users,
    train_sae,
)
from recsae.stages import sae as sae_stage

N_USERS, N_ITEMS, DIM = 60, 40, 8


@register("test_sae_dot")
class TinyDot(Recommender):
    """Dot product with per-id biases (which the SAE's dot prediction loss must ignore)."""

    scorer_kind = "dot"

    def __init__(self, n_users, n_items, params):
        super().__init__(n_users, n_items, params)
        gen = torch.Generator().manual_seed(params.get("seed", 0))
        d = params.get("dim", DIM)
        self.user = nn.Parameter(torch.randn(n_users, d, generator=gen) * params.get("scale", 1.0))
        self.item = nn.Parameter(torch.randn(n_items, d, generator=gen))
        self.user_bias = nn.Parameter(torch.randn(n_users, generator=gen))
        self.item_bias = nn.Parameter(torch.randn(n_items, generator=gen))

    def user_embeddings(self):
        return self.user

    def item_embeddings(self):
        return self.item

    def score_pairs(self, user_emb, item_emb, users=None, items=None):
        out = (user_emb * item_emb).sum(-1)
        if users is not None:
            out = out + self.user_bias[users] + self.item_bias[items]
        return out

    def score_matrix(self, user_emb, item_emb, users=None, items=None):
        out = user_emb @ item_emb.T
        if users is not None:
            out = out + self.user_bias[users, None] + self.item_bias[None, items]
        return out

    def training_loss(self, batch):
        raise NotImplementedError


class TinyMLP(TinyDot):
    """NCF-style pairwise scorer: an MLP on [user; item] (dropout to check eval mode)."""

    scorer_kind = "pairwise"

    def __init__(self, n_users, n_items, params):
        super().__init__(n_users, n_items, params)
        d = params.get("dim", DIM)
        torch.manual_seed(params.get("seed", 0))
        self.mlp = nn.Sequential(nn.Linear(2 * d, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))

    def score_pairs(self, user_emb, item_emb, users=None, items=None):
        out = self.mlp(torch.cat([user_emb, item_emb], dim=-1)).squeeze(-1)
        return out if users is None else out + self.item_bias[items]

    def score_matrix(self, user_emb, item_emb, users=None, items=None):
        n_u, n_i = len(user_emb), len(item_emb)
        return self.score_pairs(
            user_emb[:, None].expand(n_u, n_i, -1), item_emb[None].expand(n_u, n_i, -1)
        )


def tiny_split(n_users=N_USERS, n_items=N_ITEMS, seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), 6)
    items = rng.integers(0, n_items, len(users))
    frame = pd.DataFrame({"user": users, "item": items, "rating": 1.0, "timestamp": 0})
    frame = frame.drop_duplicates(["user", "item"]).reset_index(drop=True)
    return Split(frame, frame.iloc[:0], frame.iloc[:0], n_users, n_items)


FAST = {"epochs": 2, "batch_size": 16, "width": 16}


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("cls", [TinyDot, TinyMLP])
def test_gradients_reach_sae_and_recommender_stays_frozen(cls):
    rec = cls(N_USERS, N_ITEMS, {})
    before = snapshot(rec)
    split = tiny_split()
    point = SAEPoint.resolve({**FAST, "alpha": 0.0, "lambda_kl": 0.0}, DIM)
    sae = build_sae(SAEConfig.from_point(point, DIM), seed=0)
    rec.requires_grad_(False).eval()
    u, v = rec.user[:16].detach(), rec.item[:12].detach()
    rows, pu, pi = PairSampler(split).sample(np.arange(16), 1, np.random.default_rng(0))
    pairs = PairBatch(*(torch.as_tensor(a) for a in (rows, pu, pi)), rec.item[pi].detach())
    terms, _, _ = sae_loss_terms(sae, rec, u, v, point, pairs)
    terms["loss"].backward()
    assert float(terms["pred"].detach()) > 0
    assert sae.encoder_weight.grad.abs().sum() > 0 and sae.latent_bias.grad.abs().sum() > 0
    assert all(p.grad is None for p in rec.parameters())

    rec.train()
    sae, history = train_sae(rec, split, point_for(rec, FAST), "pt", seed=0, log=None)
    assert not rec.training and not any(p.requires_grad for p in rec.parameters())
    after = rec.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert len(history) == 2 and history[-1]["pred"] > 0


def test_dot_loss_terms_by_hand():
    """A 2-d, 3-latent tied ReLU SAE with fixed weights, no standardisation."""
    rec = TinyDot(2, 2, {"dim": 2})
    point = SAEPoint.resolve(
        {
            "width": 3,
            "standardize": False,
            "alpha": 0.5,
            "beta": 2.0,
            "lambda_kl": 0.1,
            "rho": 0.2,
            "lambda_l1": 0.3,
        },
        2,
    )
    sae = build_sae(SAEConfig.from_point(point, 2))
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    b_pre, b_lat = torch.tensor([0.1, -0.1]), torch.tensor([0.0, 0.05, -0.2])
    with torch.no_grad():
        sae.encoder_weight.copy_(W)
        sae.pre_bias.copy_(b_pre)
        sae.latent_bias.copy_(b_lat)
    U = torch.tensor([[0.5, 0.2], [-0.3, 0.8]])
    V = torch.tensor([[0.4, -0.6], [0.1, 0.3]])

    def manual(x):
        z = ((x - b_pre) @ W.T + b_lat).clamp_min(0)
        return z, z @ W + b_pre

    zu, uh = manual(U)
    zv, vh = manual(V)
    emb = ((uh - U) ** 2).mean() + ((vh - V) ** 2).mean()
    pred = ((uh @ vh.T - U @ V.T) ** 2).mean()

    def kl(z):
        r = z.mean(0).clamp(1e-6, 1 - 1e-6)
        return (0.2 * torch.log(0.2 / r) + 0.8 * torch.log(0.8 / (1 - r))).sum()

    l1 = zu.abs().mean() + zv.abs().mean()
    terms, _, _ = sae_loss_terms(sae, rec, U, V, point)
    torch.testing.assert_close(terms["emb"], emb)
    torch.testing.assert_close(terms["pred"], pred)
    torch.testing.assert_close(terms["kl"], kl(zu) + kl(zv))
    torch.testing.assert_close(terms["l1"], l1)
    assert float(terms["auxk"]) == 0.0
    total = 0.5 * emb + 2.0 * pred + 0.1 * (kl(zu) + kl(zv)) + 0.3 * l1
    torch.testing.assert_close(terms["loss"], total)


@pytest.mark.parametrize("pred_loss", ["bce", "mse"])
def test_pairwise_prediction_loss_by_hand(pred_loss):
    rec = TinyMLP(4, 5, {"dim": 3}).eval()
    point = SAEPoint.resolve({"width": 6, "pred_loss": pred_loss}, 3)
    sae = build_sae(SAEConfig.from_point(point, 3), seed=1)
    U, V = rec.user.detach()[:3], rec.item.detach()[:2]
    rows, users, items = torch.tensor([0, 2, 0]), torch.tensor([0, 2, 0]), torch.tensor([1, 4, 3])
    pairs = PairBatch(rows, users, items, rec.item.detach()[items])
    terms, out_u, _ = sae_loss_terms(sae, rec, U, V, point, pairs)
    u_hat = out_u.x_hat[rows]
    v_hat = sae(rec.item.detach()[items]).x_hat
    mlp = rec.mlp
    recon = mlp(torch.cat([u_hat, v_hat], 1)).squeeze(1) + rec.item_bias[items]
    orig = mlp(torch.cat([U[rows], rec.item[items]], 1)).squeeze(1) + rec.item_bias[items]
    if pred_loss == "bce":
        t, p = torch.sigmoid(orig), torch.sigmoid(recon)
        expected = -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()
    else:
        expected = ((recon - orig) ** 2).mean()
    torch.testing.assert_close(terms["pred"], expected)


def test_pair_sampler_positives_and_negatives():
    split = tiny_split()
    observed = set(zip(split.train.user, split.train.item, strict=True))
    users = np.arange(0, 30)
    rows, pu, pi = PairSampler(split).sample(users, 2, np.random.default_rng(0))
    assert len(rows) == 3 * 30
    assert np.array_equal(pu, users[rows])
    assert all((u, i) in observed for u, i in zip(pu[:30], pi[:30], strict=True))
    assert not any((u, i) in observed for u, i in zip(pu[30:], pi[30:], strict=True))


def test_epoch_passes_over_larger_pool():
    rng = np.random.default_rng(0)
    big = _batches(np.arange(100, 150), steps=4, size=13, rng=rng)
    assert big.shape == (4, 13)
    assert set(big.ravel()) == set(range(100, 150))
    small = _batches(np.arange(5), steps=4, size=5, rng=rng)
    assert all(sorted(row) == list(range(5)) for row in small)


def test_auxk_revives_dead_latents():
    """TopK SAE on sparse toy data, half its latents starting too weak to ever win the top-k:
    without AuxK they stay dead, with it most come back."""
    gen = torch.Generator().manual_seed(0)
    d, n_true = 8, 12
    truth = torch.nn.functional.normalize(torch.randn(n_true, d, generator=gen), dim=1)

    def sample(n):
        idx = torch.randint(0, n_true, (n, 2), generator=gen)
        coef = torch.rand(n, 2, generator=gen) + 0.5
        return (coef[..., None] * truth[idx]).sum(1)

    def run(aux_coef):
        settings = {"variant": "topk", "k": 2, "width": 24, "standardize": False, "tied": False}
        point = SAEPoint.resolve(settings, d)
        sae = build_sae(SAEConfig.from_point(point, d), seed=0)
        with torch.no_grad():
            sae.encoder_weight[12:] *= 0.05
        opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
        for _ in range(600):
            x = sample(64)
            out = sae(x)
            loss = losses.mse(out.x_hat, x)
            dead = sae.dead_mask(5)
            aux_z = losses.auxk_latents(out.pre_acts, dead, k_aux=4)
            aux = losses.auxk_loss(sae.decode_direction(aux_z, out.stats), x - out.x_hat, dead)
            opt.zero_grad()
            (loss + aux_coef * aux).backward()
            opt.step()
            sae.normalize_decoder_()
            sae.update_activity((out.z > 0).any(0))
        with torch.no_grad():
            return int(((sae.encode(sample(2000)) > 0).sum(0) == 0).sum())

    dead_without, dead_with = run(0.0), run(1.0)
    assert dead_without >= 12
    assert dead_with <= 6


def test_batchtopk_training_l0_and_threshold():
    rec = TinyDot(N_USERS, N_ITEMS, {})
    settings = {
        **FAST,
        "variant": "batchtopk",
        "k": 3,
        "aux_k_coef": 0.1,
        "dead_steps_threshold": 2,
    }
    sae, history = train_sae(rec, tiny_split(), point_for(rec, settings), "bt", seed=0, log=None)
    assert all(h["l0_users"] == pytest.approx(3.0) for h in history)
    assert history[-1]["threshold"] > 0
    assert float(sae.activation.threshold) == history[-1]["threshold"]
    assert not sae.training


def test_untied_decoder_stays_unit_norm_in_training():
    rec = TinyDot(N_USERS, N_ITEMS, {})
    settings = {**FAST, "variant": "topk", "k": 4, "tied": False}
    sae, _ = train_sae(rec, tiny_split(), point_for(rec, settings), "ut", seed=0, log=None)
    torch.testing.assert_close(sae.decoder_weight.norm(dim=0), torch.ones(16))


def test_nonfinite_loss_names_the_point():
    rec = TinyDot(N_USERS, N_ITEMS, {})
    with torch.no_grad():
        rec.item[3, 0] = float("inf")
    with pytest.raises(RuntimeError, match="variant~relu/beta~5"):
        train_sae(rec, tiny_split(), point_for(rec, FAST), "variant~relu/beta~5", seed=0, log=None)


@pytest.mark.parametrize("cls", [TinyDot, TinyMLP])
def test_same_seed_same_weights(cls):
    settings = {**FAST, "variant": "matryoshka", "matryoshka_base": "batchtopk", "k": 2}

    def weights(seed):
        rec = cls(N_USERS, N_ITEMS, {})
        sae, history = train_sae(
            rec, tiny_split(), point_for(rec, settings), "det", seed=seed, log=None
        )
        return sae.state_dict(), [h["loss"] for h in history]

    (a, la), (b, lb), (c, _) = weights(1), weights(1), weights(2)
    assert la == lb
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["encoder_weight"], c["encoder_weight"])


def test_sae_seed_draws_the_holdout_initialisation_and_batches():
    """A point's seed N seeds the user holdout, the initialisation and the batches: seed N under any
    config seed equals the unseeded run under config seed N, and each seed holds out other users
    (so the spread over seeds includes the holdout draw)."""

    def weights(sae_seed, seed=0):
        rec = TinyDot(N_USERS, N_ITEMS, {})
        settings = {**FAST, "seed": sae_seed}
        return train_sae(rec, tiny_split(), point_for(rec, settings), "s", seed=seed, log=None)[
            0
        ].state_dict()

    a, again, other = weights(5), weights(5), weights(6)
    assert all(torch.equal(a[k], again[k]) for k in a)
    assert not torch.equal(a["encoder_weight"], other["encoder_weight"])
    assert all(torch.equal(a[k], weights(None, seed=5)[k]) for k in a)
    assert all(torch.equal(weights(0)[k], weights(None)[k]) for k in a)
    held = {s: sae_users(SAEPoint.resolve({"seed": s}, DIM), N_USERS, 0).heldout for s in (1, 2)}
    np.testing.assert_array_equal(held[1], split_sae_users(N_USERS, 0.2, 1)[1])
    assert not np.array_equal(held[1], held[2])


def write_tiny_split(tmp_path):
    """``tiny_split()`` written as a prepared dataset: (data_dir, split_dir, out_dir) under
    ``tmp_path`` (out_dir not created)."""
    split = tiny_split()
    data_dir, split_dir, out_dir = tmp_path / "data", tmp_path / "split", tmp_path / "sae"
    data_dir.mkdir()
    split_dir.mkdir()
    (data_dir / "stats.json").write_text(json.dumps({"n_users": N_USERS, "n_items": N_ITEMS}))
    for part in ("train", "valid", "test"):
        getattr(split, part).to_parquet(split_dir / f"{part}.parquet", index=False)
    return data_dir, split_dir, out_dir


def write_tiny_run(tmp_path):
    """``write_tiny_split`` plus a seeded TinyDot saved as tmp_path/model.pt: (rec, the input
    files of the SAE training stage)."""
    data_dir, split_dir, _ = write_tiny_split(tmp_path)
    rec = TinyDot(N_USERS, N_ITEMS, {"seed": 3})
    save_checkpoint(rec, tmp_path / "model.pt")
    return rec, {"model_path": tmp_path / "model.pt", "data_dir": data_dir, "split_dir": split_dir}


def test_same_sae_seed_same_checkpoint_bytes(tmp_path):
    _, files = write_tiny_run(tmp_path)

    def checkpoint(name, sae_seed):
        out = tmp_path / name / "beta~1" / f"seed~{sae_seed}"
        settings = {**FAST, "seed": sae_seed}
        sae_stage.train(settings, **files, point_id="p", out_dir=out, seed=0, device="cpu")
        return (out / "sae.pt").read_bytes()

    first = checkpoint("a", 1)
    assert checkpoint("b", 1) == first
    assert checkpoint("c", 2) != first


def test_sae_training_stage_writes_checkpoint_and_log(tmp_path):
    rec, files = write_tiny_run(tmp_path)
    out_dir = tmp_path / "sae"
    settings = {**FAST, "variant": "topk", "k": 4, "beta": 2}
    sae_stage.train(
        settings, **files, point_id="variant~topk", out_dir=out_dir, seed=7, device="cpu"
    )
    log = json.loads((out_dir / "train_log.json").read_text())
    assert log["seed"] == 7 and log["point_id"] == "variant~topk"
    assert log["config"]["beta"] == 2 and log["config"]["width"] == 16
    assert len(log["history"]) == 2 and "recsae_version" in log
    summary = log["summary"]
    _, heldout = split_sae_users(N_USERS, 0.2, 7)
    assert summary["eval_users"] == "heldout" and summary["n_eval_users"] == len(heldout)
    assert summary["l0_users"] == pytest.approx(4.0)
    for key in ("l0_items", "dead_fraction", "fvu_users", "fvu_items", "prediction_mse"):
        assert np.isfinite(summary[key])
    sae = load_sae(out_dir / "sae.pt")
    x = rec.item.detach()
    z, stats = sae.encode(x, return_stats=True)
    assert sae.decode(z, stats).shape == x.shape


def test_jumprelu_l0_penalty_enters_the_loss_and_the_log():
    rec = TinyDot(N_USERS, N_ITEMS, {})
    settings = {**FAST, "variant": "jumprelu", "lambda_l0": 0.05, "jumprelu_bandwidth": 0.5}
    sae, history = train_sae(rec, tiny_split(), point_for(rec, settings), "jump", seed=0, log=None)
    for record in history:  # penalty = lambda_l0 * (L0 of users + L0 of items), per step
        expected = 0.05 * (record["l0_users"] + record["l0_items"])
        assert record["penalty"] == pytest.approx(expected, rel=1e-5)
    assert not torch.allclose(sae.activation.log_threshold, torch.full((16,), float(np.log(0.001))))
    _, relu_history = train_sae(rec, tiny_split(), point_for(rec, FAST), "relu", seed=0, log=None)
    assert "penalty" not in relu_history[0]
