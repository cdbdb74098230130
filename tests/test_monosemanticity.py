"""MS score against a hand-written reference, its edge cases, and the health metrics."""

import numpy as np
import pytest
import torch

from recsae.metrics.health import health
from recsae.metrics.monosemanticity import (
    active_monosemanticity,
    minmax_scale,
    monosemanticity,
    ms_scores,
)


def reference_ms(acts, emb, top_k):
    """Loop implementation of the MS score (docs/method.md, "Metrics"), one neuron at a time."""
    acts, emb = np.asarray(acts, float), np.asarray(emb, float)
    out = []
    for col in acts.T:
        span = col.max() - col.min()
        scaled = (col - col.min()) / span if span > 0 else np.zeros_like(col)
        top = np.argsort(-scaled, kind="stable")[: min(top_k, len(col))]
        a = scaled[top]
        unit = emb[top] / np.linalg.norm(emb[top], axis=1, keepdims=True)
        r, s = np.outer(a, a), unit @ unit.T
        np.fill_diagonal(r, 0)
        np.fill_diagonal(s, 0)
        out.append((r * s).sum() / r.sum() if r.sum() > 0 else 0.0)
    return np.array(out)


def test_hand_computed_tiny_case():
    # neuron 0 fires on items 0 and 1 (a = 1, 0.5 after scaling), whose embeddings are orthogonal
    # -> MS 0; neuron 1 fires on items 2, 3 with parallel embeddings -> MS 1.
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    acts = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 3.0]])
    assert ms_scores(acts, emb, top_k=2).tolist() == pytest.approx([0.0, 1.0])
    # top-3 of neuron 0 = items 0, 1 and a zero-activation item: the zero adds no weight
    assert ms_scores(acts, emb, top_k=3)[0].item() == pytest.approx(0.0)
    # three items with weights: a = (1, .5, .5) on items (2, 3, 0), cosines 1, 1/sqrt2, 1/sqrt2
    acts3 = torch.tensor([[1.0], [0.0], [2.0], [1.0]])
    num = 2 * (0.5 * 1.0 + 1 * 0.5 * 2**-0.5 + 0.5 * 0.5 * 2**-0.5)
    den = 2 * (0.5 + 0.5 + 0.25)
    assert ms_scores(acts3 + 0.0, emb, top_k=3).item() == pytest.approx(num / den)


def test_matches_reference_and_chunking():
    rng = np.random.default_rng(0)
    acts = np.maximum(rng.normal(size=(200, 40)), 0) * rng.random(40)
    acts[:, 3] = 0.0  # dead
    acts[:, 4] = 1.7  # constant
    acts[:, 5] = 0.0
    acts[7, 5] = 2.0  # fires on a single item
    emb = rng.normal(size=(200, 8))
    expected = reference_ms(acts, emb, 30)
    got = ms_scores(torch.as_tensor(acts), torch.as_tensor(emb), 30, chunk=7)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)
    assert got[3] == 0 and got[4] == 0 and got[5] == 0
    # the scaling is over all items, so chunking over neurons does not change anything
    np.testing.assert_allclose(ms_scores(torch.as_tensor(acts), torch.as_tensor(emb), 30, 512), got)


def test_fewer_items_than_top_k():
    rng = np.random.default_rng(1)
    acts, emb = np.abs(rng.normal(size=(6, 3))), rng.normal(size=(6, 4))
    got = ms_scores(torch.as_tensor(acts), torch.as_tensor(emb), top_k=30)
    np.testing.assert_allclose(got.numpy(), reference_ms(acts, emb, 30), atol=1e-10)


def test_minmax_scale_constant_columns_are_zero():
    scaled = minmax_scale(torch.tensor([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]]))
    assert scaled[:, 0].tolist() == [0.0, 1.0, 0.5] and scaled[:, 1].tolist() == [0.0] * 3


def test_summary_means_over_all_and_alive():
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    acts = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])  # neuron 1 never fires
    out = monosemanticity(acts, emb, top_k=2)
    ms0 = float(np.cos(np.arctan(0.1)))
    assert out["per_neuron"] == pytest.approx([ms0, 0.0])
    assert out["ms_alive"] == pytest.approx(ms0) and out["ms_mean"] == pytest.approx(ms0 / 2)
    assert out["n_alive"] == 1
    assert monosemanticity(torch.zeros(3, 2), emb)["ms_alive"] is None


def test_mismatched_rows_raise():
    with pytest.raises(ValueError, match="item latents have 3 rows"):
        ms_scores(torch.zeros(3, 2), torch.zeros(4, 2))


def test_health():
    users = torch.tensor([[1.0, 0.0, 0.0, 2.0], [1.0, 0.0, 0.0, 0.0]])
    items = torch.tensor([[0.5, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])
    out = health(users, items)
    assert out["l0_users"] == pytest.approx(1.5) and out["l0_items"] == pytest.approx(4 / 3)
    assert out["n_dead"] == 1 and out["dead_fraction"] == pytest.approx(0.25)
    assert out["n_dense"] == 1 and out["dense_fraction"] == pytest.approx(0.25)  # neuron 0: 5/5
    assert out["freq_items"] == pytest.approx([1.0, 1 / 3, 0.0, 0.0])
    with pytest.raises(ValueError, match="neurons"):
        health(users, items[:, :3])


def test_active_ms_leaves_out_barely_trained_items():
    """Neuron fires most on items 0, 1 (no training interactions, identical embeddings: MS 1 over
    all items) and less on active items 2, 3 (orthogonal embeddings: MS 0 over active items)."""
    acts = torch.tensor([[1.0], [1.0], [0.5], [0.5], [0.0]])
    emb = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    counts = np.array([0, 0, 10, 10, 10])
    assert monosemanticity(acts, emb, top_k=2)["ms_mean"] == pytest.approx(1.0)
    active = active_monosemanticity(acts, emb, counts, min_interactions=5, top_k=2)
    assert active["ms_mean"] == pytest.approx(0.0) and active["n_items"] == 3
    assert active["min_interactions"] == 5
    everything = active_monosemanticity(acts, emb, counts, min_interactions=0, top_k=2)
    assert everything["ms_mean"] == pytest.approx(1.0) and everything["n_items"] == 5
    too_few = active_monosemanticity(acts, emb, counts, min_interactions=11, top_k=2)
    assert too_few["ms_mean"] is None and too_few["per_neuron"] == [None]
