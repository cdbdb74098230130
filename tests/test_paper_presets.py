"""The authors' training as presets: the MF and NCF recommender presets (update rule, negatives
drawn once, collapse fallback) and the SAE paper presets (architecture per family, input scaling,
sample batching), each against a hand computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import expit
from test_sae_training import TinyDot, TinyMLP

from recsae.data.tables import Split
from recsae.interventions import ConceptEditor
from recsae.recommenders import model_class
from recsae.recommenders import train as train_module
from recsae.recommenders.collapse import is_constant_output
from recsae.recommenders.sampling import train_pairs
from recsae.recommenders.train import (
    resolve_config,
    train_recommender,
    train_with_collapse_fallback,
)
from recsae.sae.config import SAE_DEFAULTS, SAEConfig, SAEPoint
from recsae.sae.holdout import split_sae_users
from recsae.sae.model import build_sae, load_sae, save_sae
from recsae.sae.presets import apply_presets
from recsae.sae.train import (
    PairBatch,
    column_minmax,
    point_for,
    sae_loss_terms,
    sample_steps,
    train_sae,
    training_scaler,
)
from recsae.seeding import numpy_rng, seed_everything

QUIET = {"log": lambda line: None}


def small_split(n_users=6, n_items=9, per_user=3, seed=0) -> Split:
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    frame = pd.DataFrame({"user": users, "item": items, "rating": 1.0, "timestamp": 0})
    return Split(frame, frame.iloc[:0], frame.iloc[:0], n_users, n_items)


def test_mf_paper_preset_is_the_authors_numpy_sgd():
    """Two epochs of the preset equal the authors' update written out in numpy: per sample
    e = y - sigmoid(b + b_u + b_i + p.q), p += lr (e q - 0.01 p) (same for q, b_u, b_i), summed over
    a batch's duplicate rows with np.add.at, b fixed at 1, negatives drawn once."""
    split, seed, batch = small_split(), 3, 4
    params, train_cfg = {"dim": 3}, {"preset": "paper", "epochs": 2, "batch_size": batch}
    model, _ = train_recommender(split, "mf", params, train_cfg, seed, **QUIET)

    full_params, cfg = resolve_config("mf", params, train_cfg)
    assert cfg["optimizer"] == "sgd" and not cfg["resample_negatives"]
    assert cfg["negative_scheme"] == "per_user"
    seed_everything(seed)
    init = model_class("mf")(split.n_users, split.n_items, full_params)
    P, Q = init.user_emb.detach().double().numpy(), init.item_emb.detach().double().numpy()
    b_u, b_i = np.zeros(split.n_users), np.zeros(split.n_items)
    pos_users, pos_items = train_pairs(split.matrix("train"))
    make_epoch = train_module.epoch_sampler(split, cfg, init)
    samples = make_epoch(pos_users, pos_items, numpy_rng(seed, "epoch", 1))
    lr, l2 = 0.05, 0.01
    for epoch in (1, 2):
        if epoch == 2:
            order = numpy_rng(seed, "epoch", 2).permutation(len(samples["users"]))
            samples = {k: v[order] for k, v in samples.items()}
        for start in range(0, len(samples["users"]), batch):
            u = samples["users"][start : start + batch]
            i = samples["items"][start : start + batch]
            e = samples["labels"][start : start + batch] - expit(
                1.0 + b_u[u] + b_i[i] + (P[u] * Q[i]).sum(1)
            )
            grads = (
                lr * (e - l2 * b_u[u]),
                lr * (e - l2 * b_i[i]),
                lr * (e[:, None] * Q[i] - l2 * P[u]),
                lr * (e[:, None] * P[u] - l2 * Q[i]),
            )
            for table, idx, grad in zip((b_u, b_i, P, Q), (u, i, u, i), grads, strict=True):
                np.add.at(table, idx, grad)
    got = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    np.testing.assert_allclose(got["user_emb"], P, atol=1e-5)
    np.testing.assert_allclose(got["item_emb"], Q, atol=1e-5)
    np.testing.assert_allclose(got["user_bias"], b_u, atol=1e-5)
    np.testing.assert_allclose(got["item_bias"], b_i, atol=1e-5)
    assert float(model.global_bias) == 1.0 and "global_bias" not in dict(model.named_parameters())


def split_with_heldout(seed=0) -> Split:
    """8 users x 12 items; each user's interactions spread over train, valid and test."""
    rng = np.random.default_rng(seed)
    rows = [(u, i) for u in range(8) for i in rng.choice(12, 3 + u % 4, replace=False)]
    frame = pd.DataFrame(rows, columns=["user", "item"]).assign(rating=1.0, timestamp=0)
    part = np.arange(len(frame)) % 3
    return Split(frame[part == 0], frame[part == 1], frame[part == 2], 8, 12)


def test_per_user_negatives_are_the_authors_draw():
    """Per user: as many negatives as the user's interactions in train + valid + test, all
    distinct, none an item the user interacted with in any part; positives are the training
    pairs; the same seed gives the same samples (brute force over users)."""
    split = split_with_heldout()
    params, cfg = resolve_config("mf", {}, {"preset": "paper"})
    pos_users, pos_items = train_pairs(split.matrix("train"))
    mf = model_class("mf")(split.n_users, split.n_items, params)
    make_epoch = train_module.epoch_sampler(split, cfg, mf)
    samples = make_epoch(pos_users, pos_items, numpy_rng(0, "epoch", 1))
    frames = pd.concat([split.train, split.valid, split.test])
    negatives = pd.DataFrame(samples)[samples["labels"] == 0]
    positives = pd.DataFrame(samples)[samples["labels"] == 1]
    for user in range(split.n_users):
        touched = set(frames[frames["user"] == user]["item"])
        drawn = negatives[negatives["users"] == user]["items"].tolist()
        assert len(drawn) == len(touched) and len(set(drawn)) == len(drawn)
        assert not set(drawn) & touched
        trained = set(split.train[split.train["user"] == user]["item"])
        assert sorted(positives[positives["users"] == user]["items"]) == sorted(trained)
    again = make_epoch(pos_users, pos_items, numpy_rng(0, "epoch", 1))
    for key in samples:
        np.testing.assert_array_equal(again[key], samples[key])


def test_per_user_negatives_refuse_impossible_counts_and_pairwise_models():
    frame = pd.DataFrame({"user": [0, 0, 0, 1], "item": [0, 1, 2, 0]}).assign(
        rating=1.0, timestamp=0
    )
    crowded = Split(frame, frame.iloc[:0], frame.iloc[:0], 2, 4)
    params, cfg = resolve_config("mf", {}, {"preset": "paper"})
    make_epoch = train_module.epoch_sampler(crowded, cfg, model_class("mf")(2, 4, params))
    with pytest.raises(ValueError, match=r"user\(s\) \[0\] need more negatives"):
        make_epoch(*train_pairs(crowded.matrix("train")), numpy_rng(0, "epoch", 1))
    with pytest.raises(KeyError, match="per_user needs a pointwise"):
        resolve_config("bpr", {}, {"negative_scheme": "per_user"})


def test_negatives_are_drawn_once_unless_resampled(monkeypatch):
    calls = []
    real = train_module.per_user_epoch

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(train_module, "per_user_epoch", counting)
    split = small_split()
    for resample, expected in ((False, 1), (True, 3)):
        calls.clear()
        cfg = {"preset": "paper", "epochs": 3, "resample_negatives": resample}
        train_recommender(split, "mf", {"dim": 2}, cfg, 0, **QUIET)
        assert len(calls) == expected


def test_ncf_paper_loss_and_first_adam_step_by_hand():
    """BCE of the MLP's sigmoid output, written out in numpy; Adam's first step moves the output
    bias by lr * sign of its gradient mean(sigmoid(logit) - y)."""
    params, cfg = resolve_config("ncf", {"dim": 2, "layers": [3]}, {"preset": "paper"})
    assert cfg["lr"] == 0.05 and cfg["batch_size"] == 256 and cfg["collapse_fallback_lr"] == 0.01
    torch.manual_seed(0)
    model = model_class("ncf")(3, 4, params)
    batch = {
        "users": torch.tensor([0, 1, 2, 0]),
        "items": torch.tensor([1, 3, 0, 2]),
        "labels": torch.tensor([1.0, 0.0, 1.0, 0.0]),
    }
    w = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    x = np.concatenate(
        [w["user_emb"][batch["users"].numpy()], w["item_emb"][batch["items"].numpy()]], axis=1
    )
    hidden = np.maximum(x @ w["mlp.0.weight"].T + w["mlp.0.bias"], 0)
    p = expit(hidden @ w["mlp.1.weight"].T[:, 0] + w["mlp.1.bias"][0])
    y = batch["labels"].numpy()
    loss = model.training_loss(batch)
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(float(loss.detach()), expected)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    before = model.mlp[1].bias.item()
    loss.backward()
    optimizer.step()
    step = model.mlp[1].bias.item() - before
    np.testing.assert_allclose(step, -cfg["lr"] * np.sign(np.mean(p - y)), rtol=1e-5)


def test_constant_output_is_detected():
    params, _ = resolve_config("ncf", {"dim": 3, "layers": [4]}, {})
    model = model_class("ncf")(5, 7, params)
    assert not is_constant_output(model, "cpu")
    with torch.no_grad():
        model.mlp[-1].weight.zero_()
    assert is_constant_output(model, "cpu")


def test_collapse_falls_back_to_the_documented_lr(monkeypatch):
    calls = []

    def collapsed_once(model, device):
        calls.append(1)
        return len(calls) == 1

    monkeypatch.setattr(train_module, "is_constant_output", collapsed_once)
    lines = []
    params = {"dim": 2, "layers": [4]}
    model, history, cfg = train_with_collapse_fallback(
        small_split(), "ncf", params, {"preset": "paper", "epochs": 2}, 0, log=lines.append
    )
    assert cfg["lr"] == 0.01 and cfg["collapsed_at_lr"] == 0.05
    assert any("collapsed" in line and "0.01" in line for line in lines)
    assert [r["epoch"] for r in history] == [1, 2]


def test_sae_presets_sit_under_the_layer_that_names_them():
    cfg = apply_presets([SAE_DEFAULTS, {"epochs": 300}, {"preset": "paper", "beta": 5}], "dot")
    assert cfg["epochs"] == 18 and cfg["beta"] == 5 and cfg["input_scaling"] == "minmax_batch"
    cfg = apply_presets([SAE_DEFAULTS, {"preset": "paper"}, {"epochs": 3}], "pairwise")
    assert cfg["epochs"] == 3 and cfg["pred_pairs"] == "positives" and not cfg["pre_bias"]
    with pytest.raises(ValueError, match="family"):
        apply_presets([{"preset": "paper"}], None)
    with pytest.raises(ValueError, match="preset"):
        SAEPoint.resolve({"preset": "papr"}, 4, "dot")


def kl(z, rho=0.05):
    r = z.mean(0).clamp(1e-6, 1 - 1e-6)
    return (rho * torch.log(rho / r) + (1 - rho) * torch.log((1 - rho) / (1 - r))).sum()


def test_ncf_paper_sae_loss_by_hand():
    """Linear(d, h) with bias, ReLU, tied decoder without bias; soft-target BCE on aligned pairs;
    2 * L_emb + 10 * L_pred + 0.07 * L_KL."""
    rec = TinyMLP(4, 5, {"dim": 2}).eval()
    point = SAEPoint.resolve({"preset": "paper", "width": 3}, 2, "pairwise")
    sae = build_sae(SAEConfig.from_point(point, 2))
    assert "pre_bias" not in dict(sae.named_parameters())
    W, b = torch.tensor([[1.0, 0.5], [-0.5, 1.0], [0.3, -1.0]]), torch.tensor([0.1, 0.0, -0.1])
    with torch.no_grad():
        sae.encoder_weight.copy_(W)
        sae.latent_bias.copy_(b)
    users, items = torch.tensor([0, 2, 0]), torch.tensor([1, 4, 3])
    U, V = rec.user.detach()[users], rec.item.detach()[items]
    rows = torch.arange(3)
    terms, _, _ = sae_loss_terms(
        sae, rec, U, V, point, PairBatch(rows, users, items, item_rows=rows)
    )
    zu, zv = (U @ W.T + b).clamp_min(0), (V @ W.T + b).clamp_min(0)
    uh, vh = zu @ W, zv @ W
    emb = ((uh - U) ** 2).mean() + ((vh - V) ** 2).mean()
    target = torch.sigmoid(rec.score_pairs(U, V, users, items))
    p = torch.sigmoid(rec.score_pairs(uh, vh, users, items))
    pred = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()
    torch.testing.assert_close(terms["emb"], emb)
    torch.testing.assert_close(terms["pred"], pred)
    torch.testing.assert_close(terms["loss"], 2 * emb + 10 * pred + 0.07 * (kl(zu) + kl(zv)))


def test_mf_paper_sae_step_is_the_authors_step_in_numpy():
    """The preset's training step: each batch's user rows and item rows min-max scaled per column
    within the batch (the authors' training loop), per-row standardisation (population std +
    1e-6), tied ReLU SAE with pre-bias, 0.1 * L_emb + 1 * L_pred + 0.01 KL in that space; written
    out in numpy, independently of the package."""
    rec = TinyDot(4, 4, {"dim": 3})
    point = SAEPoint.resolve({"preset": "paper", "width": 4}, 3, "dot")
    assert point.input_scaling == "minmax_batch"
    sae = build_sae(SAEConfig.from_point(point, 3))
    rng = np.random.default_rng(0)
    W, b, pre = rng.normal(size=(4, 3)), rng.normal(0, 0.1, 4), rng.normal(0, 0.1, 3)
    with torch.no_grad():
        sae.encoder_weight.copy_(torch.from_numpy(W).float())
        sae.latent_bias.copy_(torch.from_numpy(b).float())
        sae.pre_bias.copy_(torch.from_numpy(pre).float())
    U, V = rng.normal(0, 2, (3, 3)), rng.normal(1, 3, (4, 3))

    def batch_minmax(x):
        low, high = x.min(0), x.max(0)
        return (x - low) / np.where(high > low, high - low, 1.0)

    def sae_numpy(x):
        mean, std = x.mean(1, keepdims=True), x.std(1, keepdims=True) + 1e-6
        z = np.maximum(((x - mean) / std - pre) @ W.T + b, 0)
        return z, (z @ W + pre) * std + mean

    def kl_numpy(z, rho=0.05):
        p = np.clip(z.mean(0), 1e-6, 1 - 1e-6)
        return (rho * np.log(rho / p) + (1 - rho) * np.log((1 - rho) / (1 - p))).sum()

    Us, Vs = batch_minmax(U), batch_minmax(V)
    (zu, uh), (zv, vh) = sae_numpy(Us), sae_numpy(Vs)
    expected = (
        0.1 * (((uh - Us) ** 2).mean() + ((vh - Vs) ** 2).mean())
        + ((uh @ vh.T - Us @ Vs.T) ** 2).mean()
        + 0.01 * (kl_numpy(zu) + kl_numpy(zv))
    )
    scale = training_scaler(sae, point.input_scaling)
    Ut, Vt = scale(torch.from_numpy(U).float()), scale(torch.from_numpy(V).float())
    np.testing.assert_allclose(Ut.numpy(), Us, rtol=1e-5, atol=1e-6)
    terms, _, _ = sae_loss_terms(sae, rec, Ut, Vt, point)
    np.testing.assert_allclose(terms["loss"].detach().item(), expected, rtol=1e-4)


def test_mf_sae_loss_in_the_fitted_minmax_space_by_hand():
    """``input_scaling: minmax`` (a departure from the authors' code, docs/method.md): per-column
    min-max fitted once on the training embeddings, then the paper preset's SAE; both losses in
    the scaled space: 0.1 * L_emb + 1 * L_pred + 0.01 KL."""
    rec = TinyDot(3, 3, {"dim": 2})
    point = SAEPoint.resolve({"preset": "paper", "width": 3, "input_scaling": "minmax"}, 2, "dot")
    sae = build_sae(SAEConfig.from_point(point, 2))
    fit = torch.tensor([[0.0, 2.0], [4.0, -2.0], [1.0, 0.0]])
    sae.fit_input_scaling_(fit)
    W, b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]), torch.tensor([0.0, 0.05, -0.2])
    pre = torch.tensor([0.1, -0.1])
    with torch.no_grad():
        sae.encoder_weight.copy_(W)
        sae.latent_bias.copy_(b)
        sae.pre_bias.copy_(pre)
    U, V = torch.tensor([[1.0, 1.0], [3.0, -1.0]]), torch.tensor([[2.0, 0.5], [0.0, 2.0]])
    low, span = torch.tensor([0.0, -2.0]), torch.tensor([4.0, 4.0])
    Us, Vs = (U - low) / span, (V - low) / span
    torch.testing.assert_close(training_scaler(sae, "minmax")(U), Us)

    def manual(x):
        mean, std = x.mean(1, keepdim=True), x.std(1, keepdim=True, unbiased=False) + 1e-6
        z = (((x - mean) / std - pre) @ W.T + b).clamp_min(0)
        return z, (z @ W + pre) * std + mean

    (zu, uh), (zv, vh) = manual(Us), manual(Vs)
    terms, _, _ = sae_loss_terms(sae, rec, Us, Vs, point)
    emb = ((uh - Us) ** 2).mean() + ((vh - Vs) ** 2).mean()
    pred = ((uh @ vh.T - Us @ Vs.T) ** 2).mean()
    torch.testing.assert_close(terms["emb"], emb)
    torch.testing.assert_close(terms["pred"], pred)
    torch.testing.assert_close(terms["loss"], 0.1 * emb + pred + 0.01 * (kl(zu) + kl(zv)))


def test_column_minmax_by_hand():
    x = torch.tensor([[1.0, 5.0, 2.0], [3.0, 5.0, -2.0], [2.0, 5.0, 0.0]])
    expected = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.5, 0.0, 0.5]])
    torch.testing.assert_close(column_minmax(x), expected)


def test_sample_steps_follow_the_authors_batches():
    samples = {
        "users": np.array([0, 1, 2, 1, 0, 2, 1]),
        "items": np.array([5, 6, 7, 8, 9, 4, 3]),
        "labels": np.array([1, 0, 1, 1, 0, 1, 0], np.float32),
    }
    heldout = np.array([False, True, False])
    point = SAEPoint.resolve({"batch_size": 3, "pred_pairs": "positives"}, 2)
    dot = sample_steps(samples, heldout, point, pairwise=False)
    assert [s.users.tolist() for s in dot] == [[0, 2], [0, 2]]
    assert [s.items.tolist() for s in dot] == [[5, 6, 7], [8, 9, 4]]
    pair = sample_steps(samples, heldout, point, pairwise=True)
    assert [(s.users.tolist(), s.items.tolist()) for s in pair] == [([0, 2], [5, 7]), ([2], [4])]
    assert all(s.aligned for s in pair)


@pytest.mark.parametrize("cls", [TinyDot, TinyMLP])
def test_paper_sae_trains_on_sample_batches(cls):
    rec = cls(12, 9, {"dim": 4})
    split = small_split(12, 9)
    point = point_for(rec, {"preset": "paper", "epochs": 2})
    sae, history = train_sae(rec, split, point, "pt", 0, log=None)
    assert len(history) == 2 and np.isfinite(history[-1]["loss"])
    assert sae.config.pre_bias == (cls is TinyDot)


def test_minmax_is_the_same_in_training_evaluation_and_interventions(tmp_path):
    """The fitted statistics are the columns' min and max over training users and all items; the
    checkpoint keeps them; encode, the evaluation forward pass and the intervention editor all
    scale with them and decode back to the embedding space."""
    rec = TinyDot(12, 9, {"dim": 4, "scale": 3.0}).eval()
    split = small_split(12, 9)
    settings = {"preset": "paper", "epochs": 1, "holdout_fraction": 0.25, "input_scaling": "minmax"}
    sae, _ = train_sae(rec, split, point_for(rec, settings), "pt", 0, log=None)
    train_users, _ = split_sae_users(12, 0.25, 0)
    fit = torch.cat([rec.user.detach()[train_users], rec.item.detach()])
    low, high = fit.min(0).values, fit.max(0).values
    torch.testing.assert_close(sae.input_min, low)
    torch.testing.assert_close(sae.input_range, high - low)
    save_sae(sae, tmp_path / "sae.pt")
    loaded = load_sae(tmp_path / "sae.pt")
    x = rec.item.detach()
    core = loaded.forward_scaled((x - low) / (high - low))
    expected_hat = core.x_hat * (high - low) + low
    torch.testing.assert_close(loaded.encode(x), core.z)
    torch.testing.assert_close(loaded(x).x_hat, expected_hat)
    editor = ConceptEditor(rec, loaded)
    torch.testing.assert_close(editor.latents("item"), core.z)
    torch.testing.assert_close(editor.reconstruct("item", None), expected_hat)
    z, stats = loaded.encode(x, return_stats=True)
    torch.testing.assert_close(loaded.decode(z, stats), expected_hat)


def test_minmax_batch_scales_only_in_training():
    """The authors' mismatch: training feeds each batch's own column min-max, the trained module
    encodes raw embeddings."""
    rec = TinyDot(12, 9, {"dim": 4, "scale": 3.0}).eval()
    point = point_for(rec, {"preset": "paper", "epochs": 1})
    sae, _ = train_sae(rec, small_split(12, 9), point, "pt", 0, log=None)
    assert not hasattr(sae, "input_min")
    assert training_scaler(sae, "minmax_batch") is column_minmax
    x = rec.item.detach()
    torch.testing.assert_close(sae.encode(x), sae.forward_scaled(x).z)
