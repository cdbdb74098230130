"""JumpReLU SAE: forward pass, the straight-through pseudo-derivatives against their definition,
its L0 penalty in training, and the checkpoint round trip."""

import math

import numpy as np
import pytest
import torch

from recsae.sae.config import SAEConfig, SAEPoint
from recsae.sae.model import build_sae, load_sae, save_sae
from recsae.sae.variants.jumprelu import JumpReLU, jumprelu, step


def _inputs():
    pre = torch.tensor([[0.10, 0.503, -1.0], [0.4995, 0.50, 2.0]], dtype=torch.float64)
    threshold = torch.tensor([0.5, 0.5, 1.9], dtype=torch.float64)
    return pre, threshold


def test_forward_keeps_pre_activations_above_their_threshold():
    pre, threshold = _inputs()
    expected = np.where(pre.numpy() > threshold.numpy(), pre.numpy(), 0.0)
    np.testing.assert_array_equal(jumprelu(pre, threshold, 0.01).numpy(), expected)
    np.testing.assert_array_equal(
        step(pre, threshold, 0.01).numpy(), (pre.numpy() > threshold.numpy()).astype(float)
    )


def test_pseudo_derivatives_follow_the_rectangle_kernel():
    pre, threshold = _inputs()
    eps = 0.01
    pre.requires_grad_(True)
    threshold.requires_grad_(True)
    upstream = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=torch.float64)
    (jumprelu(pre, threshold, eps) * upstream).sum().backward()
    p, t, g = pre.detach().numpy(), threshold.detach().numpy(), upstream.numpy()
    window = (np.abs(p - t) < eps / 2).astype(float)  # K((pre - theta) / eps)
    np.testing.assert_allclose(pre.grad.numpy(), g * (p > t))
    np.testing.assert_allclose(threshold.grad.numpy(), (g * -(t / eps) * window).sum(0))
    # brute force: which entries lie in the window
    assert window.tolist() == [[0, 1, 0], [1, 1, 0]]

    pre.grad, threshold.grad = None, None
    (step(pre, threshold, eps) * upstream).sum().backward()
    np.testing.assert_array_equal(pre.grad.numpy(), np.zeros_like(p))
    np.testing.assert_allclose(threshold.grad.numpy(), (g * -(1 / eps) * window).sum(0))


def test_penalty_is_lambda_times_mean_l0_and_lowers_thresholds_only_near_them():
    act = JumpReLU(width=3, threshold_init=0.5, bandwidth=0.2, lambda_l0=0.1).double()
    pre = torch.tensor([[0.45, 0.9, 0.0], [0.55, 0.58, 0.1]], dtype=torch.float64)
    value = act.penalty(pre)
    assert float(value.detach()) == pytest.approx(0.1 * (1 + 2) / 2)
    value.backward()
    # d/dlog(theta) = theta * sum_n -(1/eps) K(.) * lambda / N; window |pre - 0.5| < 0.1
    in_window = np.array([2, 1, 0])
    expected = 0.5 * -(1 / 0.2) * in_window * 0.1 / 2
    np.testing.assert_allclose(act.log_threshold.grad.numpy(), expected)


def test_jumprelu_resolves_builds_trains_and_round_trips(tmp_path):
    point = SAEPoint.resolve({"variant": "jumprelu", "width": 8, "lambda_l0": 0.5}, 4)
    assert not point.ranked
    config = SAEConfig.from_point(point, 4)
    sae = build_sae(config, seed=0)
    assert math.isclose(float(sae.activation.log_threshold.detach().exp()[0]), 0.001, rel_tol=1e-6)
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(sae.parameters(), lr=0.01)
    out = sae(x)
    loss = (out.x_hat - x).pow(2).mean() + sae.activation.penalty(out.pre_acts)
    loss.backward()
    assert sae.activation.log_threshold.grad is not None
    optimizer.step()
    save_sae(sae.eval(), tmp_path / "sae.pt")
    loaded = load_sae(tmp_path / "sae.pt")
    torch.testing.assert_close(loaded.encode(x), sae.encode(x))
    torch.testing.assert_close(loaded.activation.log_threshold, sae.activation.log_threshold)
