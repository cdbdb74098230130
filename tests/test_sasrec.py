"""SASRec: the history matrix, causal masking, the training losses against a brute-force
reference, determinism, learning on planted sequences, checkpoints, and the SAE stage on its
hidden states (prediction-aware loss, an intervention on a planted concept)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recsae.data.tables import Split
from recsae.interventions import ConceptEditor
from recsae.metrics.accuracy import rank_metrics
from recsae.recommenders import MostPop, load_checkpoint, save_checkpoint
from recsae.recommenders.sasrec import SASRec, history_matrix
from recsae.recommenders.train import train_recommender
from recsae.sae.config import SAEPoint
from recsae.sae.model import SAEConfig, SparseAutoencoder
from recsae.sae.train import point_for, sae_loss_terms, train_sae

SMALL = {"dim": 8, "n_blocks": 2, "n_heads": 2, "max_len": 6, "dropout": 0.0, "loss": "ce"}


def interactions(rows) -> pd.DataFrame:
    """Frame of (user, item, timestamp) rows in the canonical columns."""
    users, items, times = (np.asarray(c, np.int64) for c in zip(*rows, strict=True))
    return pd.DataFrame(
        {
            "user": users,
            "item": items,
            "rating": np.ones(len(users), np.float32),
            "timestamp": times,
        }
    )


def toy_model(params=None, n_users=5, n_items=12, seed=0) -> SASRec:
    """A SASRec with random histories of 0..8 items per user (some shorter than max_len + 1)."""
    torch.manual_seed(seed)
    model = SASRec(n_users, n_items, {**SMALL, **(params or {})})
    rng = np.random.default_rng(seed)
    rows = []
    for user, length in enumerate([8, 3, 1, 0, 7][:n_users]):
        items = rng.choice(n_items, size=length, replace=False)
        rows += [(user, int(item), int(t)) for t, item in enumerate(items)]
    model.prepare_history(interactions(rows))
    return model


def test_history_matrix_keeps_the_last_items_in_time_order():
    rows = [(0, 5, 30), (0, 2, 10), (0, 7, 20), (0, 1, 20), (2, 3, 1), (0, 4, 40)]
    got = history_matrix(interactions(rows), n_users=3, n_items=9, width=4)
    # user 0 by time, ties by item: 2 (10), 1 (20), 7 (20), 5 (30), 4 (40) -> last four
    expected = np.array([[1, 7, 5, 4], [9, 9, 9, 9], [9, 9, 9, 3]])
    np.testing.assert_array_equal(got, expected)


def test_a_later_item_never_changes_an_earlier_position():
    model = toy_model().eval()
    rng = np.random.default_rng(1)
    sequences = torch.as_tensor(rng.integers(0, model.n_items, size=(4, model.max_len)))
    sequences[1, :2] = model.pad
    with torch.no_grad():
        base = model.encode(sequences)
        for t in range(2, model.max_len):
            changed = sequences.clone()
            changed[:, t] = (changed[:, t] + 1) % model.n_items
            out = model.encode(changed)
            torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=0)
            assert (out[:, t:] - base[:, t:]).abs().amax() > 1e-4


class ReferenceSASRec(nn.Module):
    """An independent forward pass with the same weights: torch's MultiheadAttention with a plain
    causal mask on ONE user's unpadded item list (positions right-aligned in the window)."""

    def __init__(self, model: SASRec):
        super().__init__()
        self.model = model
        self.attentions = []
        for block in model.blocks:
            attn = nn.MultiheadAttention(model.item_emb.embedding_dim, model.params["n_heads"])
            mine = block.attention
            with torch.no_grad():
                attn.in_proj_weight.copy_(
                    torch.cat([mine.query.weight, mine.key.weight, mine.value.weight])
                )
                attn.in_proj_bias.copy_(
                    torch.cat([mine.query.bias, mine.key.bias, mine.value.bias])
                )
                attn.out_proj.weight.copy_(mine.out.weight)
                attn.out_proj.bias.copy_(mine.out.bias)
            self.attentions.append(attn.eval())

    def forward(self, items: list[int]) -> torch.Tensor:
        """(n, dim) hidden states of the n items (n <= max_len) in order."""
        m, n = self.model, len(items)
        dim = m.item_emb.embedding_dim
        h = m.item_emb.weight[items] * math.sqrt(dim) + m.pos_emb.weight[m.max_len - n :]
        future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        for block, attn in zip(m.blocks, self.attentions, strict=True):
            q = F.layer_norm(
                h, (dim,), block.attention_norm.weight, block.attention_norm.bias, 1e-8
            )
            out, _ = attn(q[:, None], h[:, None], h[:, None], attn_mask=future, need_weights=False)
            h = q + out[:, 0]
            norm = block.feed_forward_norm
            h = F.layer_norm(h, (dim,), norm.weight, norm.bias, 1e-8)
            first, second = block.feed_forward[0], block.feed_forward[3]
            h = h + second(torch.relu(first(h)))
        return F.layer_norm(h, (dim,), m.final_norm.weight, m.final_norm.bias, 1e-8)


def brute_force_loss(model: SASRec, users, neg=None) -> float:
    """Mean over every (user, position) whose next training item is known of -log softmax (ce)
    or -log sigmoid(pos) - sum log(1 - sigmoid(neg)) (bce), from ``ReferenceSASRec`` states and
    numpy."""
    reference = ReferenceSASRec(model)
    table = model.item_emb.weight.detach().numpy()[: model.n_items].astype(np.float64)
    losses = []
    for row, user in enumerate(users):
        history = [int(i) for i in model.history[user] if int(i) != model.pad]
        inputs = history[:-1][-model.max_len :]
        with torch.no_grad():
            states = reference(inputs).numpy().astype(np.float64)
        offset = model.max_len - len(inputs)
        for t, state in enumerate(states):
            target = history[len(history) - len(inputs) + t]
            logits = table @ state
            if neg is None:
                top = logits.max()
                losses.append(top + np.log(np.exp(logits - top).sum()) - logits[target])
            else:
                negatives = neg[row, offset + t]
                losses.append(
                    np.logaddexp(0, -logits[target]) + np.logaddexp(0, logits[negatives]).sum()
                )
    return float(np.mean(losses))


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_training_loss_equals_a_brute_force_computation(loss):
    model = toy_model({"loss": loss}).eval()  # eval: no dropout, as the reference
    users = np.array([0, 1, 4])
    batch = {"users": torch.as_tensor(users)}
    neg = None
    if loss == "bce":
        neg = np.random.default_rng(3).integers(0, model.n_items, size=(3, model.max_len, 2))
        batch["neg"] = torch.as_tensor(neg)
    with torch.no_grad():
        got = float(model.training_loss(batch))
    assert got == pytest.approx(brute_force_loss(model, users, neg), rel=1e-5)


def test_padding_row_and_user_states_match_the_reference():
    model = toy_model().eval()
    reference = ReferenceSASRec(model)
    states = model.user_embeddings()
    for user in (0, 1, 4):
        items = [int(i) for i in model.history[user, 1:] if int(i) != model.pad]
        torch.testing.assert_close(states[user], reference(items)[-1], rtol=1e-5, atol=1e-5)
    assert model.item_embeddings().shape == (model.n_items, SMALL["dim"])
    assert not model.item_emb.weight[model.pad].detach().any()


def sequence_split(n_users=60, per=10, length=8, seed=0) -> tuple[Split, np.ndarray]:
    """Planted sequences: the items form 4 cycles of ``per`` (concept = item // per); user u walks
    cycle u % 4 for ``length`` steps from a random start, so the next item is always the cycle's
    successor. Leave-last-out: the last step is test, the one before valid. Returns (split, the
    concept of each item)."""
    rng = np.random.default_rng(seed)
    rows = {"train": [], "valid": [], "test": []}
    for user in range(n_users):
        walk = (user % 4) * per + (rng.integers(per) + np.arange(length)) % per
        for t, item in enumerate(walk):
            part = "test" if t == length - 1 else "valid" if t == length - 2 else "train"
            rows[part].append((user, int(item), t))
    frames = {part: interactions(r) for part, r in rows.items()}
    return Split(n_users=n_users, n_items=4 * per, **frames), np.arange(4 * per) // per


FAST = {"epochs": 60, "lr": 0.01, "batch_size": 32, "eval_every": 5, "early_stopping_patience": 0}


@pytest.fixture(scope="module")
def planted():
    split, concept = sequence_split()
    model, history = train_recommender(
        split, "sasrec", {**SMALL, "dim": 16}, FAST, seed=0, log=lambda _: None
    )
    return split, concept, model, history


def test_sasrec_learns_the_planted_successor(planted):
    split, _, model, _ = planted
    seen = split.matrix("train") + split.matrix("valid")
    train, valid = split.matrix("train"), split.matrix("valid")
    ours = rank_metrics(model.full_scores, train, valid, [1])
    popular = rank_metrics(MostPop(train).full_scores, train, valid, [1])
    assert ours["hr@1"] > 0.9 > popular["hr@1"] + 0.5
    assert rank_metrics(model.full_scores, seen, split.matrix("test"), [10])["hr@10"] > 0.9


def test_bce_setting_learns_too():
    split, _ = sequence_split()
    model, _ = train_recommender(
        split, "sasrec", {**SMALL, "dim": 16, "loss": "bce"}, FAST, seed=0, log=lambda _: None
    )
    valid = rank_metrics(model.full_scores, split.matrix("train"), split.matrix("valid"), [3])
    assert valid["hr@3"] > 0.8


def test_same_seed_same_weights_other_seed_other_weights():
    split, _ = sequence_split(n_users=16)
    cfg = {**FAST, "epochs": 3, "eval_every": 1}
    params = {**SMALL, "dropout": 0.3, "loss": "bce"}

    def weights(seed):
        model, _ = train_recommender(split, "sasrec", params, cfg, seed=seed, log=lambda _: None)
        return {k: v.clone() for k, v in model.state_dict().items()}

    first, again, other = weights(0), weights(0), weights(1)
    for key in first:
        torch.testing.assert_close(first[key], again[key], rtol=0, atol=0)
    assert any(not torch.equal(first[k], other[k]) for k in first if k != "history")


def test_checkpoint_restores_the_user_states(planted, tmp_path):
    _, _, model, _ = planted
    save_checkpoint(model, tmp_path / "model.pt")
    loaded = load_checkpoint(tmp_path / "model.pt")
    torch.testing.assert_close(loaded.user_embeddings(), model.user_embeddings())
    loaded.final_valid.fill_(False)  # recomputed from the saved histories and weights
    torch.testing.assert_close(loaded.user_embeddings(), model.user_embeddings())


def test_sae_prediction_loss_on_the_hidden_states_equals_brute_force(planted):
    split, _, model, _ = planted
    model.zero_grad(set_to_none=True)
    model.requires_grad_(False)
    point = SAEPoint.resolve({"expansion": 2.0, "beta": 1.0}, 16, "dot")
    sae = SparseAutoencoder(SAEConfig.from_point(point, 16))
    users, items = model.user_embeddings()[:7], model.item_embeddings()[:9]
    terms, out_u, out_v = sae_loss_terms(sae, model, users, items, point)
    u, v = users.double().numpy(), items.double().numpy()
    u_hat, v_hat = out_u.x_hat.detach().double().numpy(), out_v.x_hat.detach().double().numpy()
    squared = [
        (u_hat[a] @ v_hat[b] - u[a] @ v[b]) ** 2 for a in range(len(u)) for b in range(len(v))
    ]
    assert float(terms["pred"].detach()) == pytest.approx(np.mean(squared), rel=1e-5)
    terms["pred"].backward()
    assert all(p.grad is None for p in model.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in sae.parameters())
    model.requires_grad_(True)


def test_an_sae_edit_of_the_hidden_state_moves_the_planted_concept(planted):
    """Adding to the concept's best-aligned TopK latent of users who walk other cycles (encode,
    edit, decode the hidden state, then score) fills their top 3 with the concept's items."""
    split, concept, model, _ = planted
    settings = {"variant": "topk", "k": 2, "expansion": 2.0, "epochs": 150, "batch_size": 32}
    sae, _ = train_sae(model, split, point_for(model, {**settings, "lr": 0.01}), "toy", 0, log=None)
    editor = ConceptEditor(model, sae, level_scale="max")
    train = split.matrix("train")
    for target in range(4):
        neuron, auroc = editor.neuron_for_concept(np.flatnonzero(concept == target))
        assert auroc > 0.5
        outsiders = torch.as_tensor(np.flatnonzero(np.arange(split.n_users) % 4 != target))
        shares = []
        for level in (0.0, 1.0, 3.0):
            edited = editor.edit_users(outsiders, neuron, level, mode="add")
            lists = editor.rerank(edited, train, outsiders, k=3).cpu().numpy()
            shares.append(float((concept[lists] == target).mean()))
        assert shares[0] < 0.25 and shares[0] < shares[1] < shares[2]
        assert shares[2] > shares[0] + 0.5
