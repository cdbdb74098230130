"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead"; the variant of Gemma Scope).

Each latent j has a learned threshold theta_j > 0 (stored as its log):

    z = JumpReLU(pre) = pre * H(pre - theta)                          (N, h)
    L0 penalty = lambda_l0 * mean_n sum_j H(pre_nj - theta_j)          (scalar)

H (the Heaviside step) has no useful gradient, so both are trained with straight-through
estimators: pseudo-derivatives with respect to theta from a rectangle kernel of width
``jumprelu_bandwidth`` (epsilon), K(u) = 1{|u| < 1/2},

    d JumpReLU / d theta = -(theta / epsilon) K((pre - theta) / epsilon)
    d H(pre - theta) / d theta = -(1 / epsilon) K((pre - theta) / epsilon)

while d JumpReLU / d pre = H(pre - theta) and the step passes no gradient to pre.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from recsae.sae.variants.base import SAEVariant


def _window(pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """K((pre - theta) / epsilon): 1 where |pre - theta| < epsilon / 2, else 0; (N, h)."""
    return ((pre - threshold).abs() < bandwidth / 2).to(pre.dtype)


class _JumpReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        gate = (pre > threshold).to(grad.dtype)
        window = _window(pre, threshold, ctx.bandwidth)
        grad_threshold = (grad * -(threshold / ctx.bandwidth) * window).sum(dim=0)
        return grad * gate, grad_threshold, None


class _StepFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        window = _window(pre, threshold, ctx.bandwidth)
        grad_threshold = (grad * -(1.0 / ctx.bandwidth) * window).sum(dim=0)
        return torch.zeros_like(pre), grad_threshold, None


def jumprelu(pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """pre (N, h), threshold (h,) -> pre * H(pre - threshold) (N, h), with the STE gradients."""
    return _JumpReLUFunction.apply(pre, threshold, bandwidth)


def step(pre: torch.Tensor, threshold: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """pre (N, h), threshold (h,) -> H(pre - threshold) (N, h), with the STE gradient."""
    return _StepFunction.apply(pre, threshold, bandwidth)


class JumpReLU(nn.Module):
    """The activation with a learned per-latent threshold (parameter ``log_threshold`` (h,));
    ``penalty(pre)`` is the L0 term its training adds to the loss."""

    def __init__(self, width: int, threshold_init: float, bandwidth: float, lambda_l0: float):
        super().__init__()
        self.bandwidth, self.lambda_l0 = bandwidth, lambda_l0
        self.log_threshold = nn.Parameter(torch.full((width,), math.log(threshold_init)))

    def forward(self, pre_acts: torch.Tensor) -> torch.Tensor:
        """(N, h) -> (N, h)."""
        return jumprelu(pre_acts, self.log_threshold.exp(), self.bandwidth)

    def penalty(self, pre_acts: torch.Tensor) -> torch.Tensor:
        """lambda_l0 * mean over rows of the number of active latents; pre_acts (N, h)."""
        active = step(pre_acts, self.log_threshold.exp(), self.bandwidth)
        return self.lambda_l0 * active.sum(dim=-1).mean()


def _make(config) -> JumpReLU:
    options = config.options
    return JumpReLU(
        config.width,
        options["jumprelu_threshold_init"],
        options["jumprelu_bandwidth"],
        options["lambda_l0"],
    )


VARIANT = SAEVariant(
    name="jumprelu",
    description="a learned threshold per latent, trained with straight-through estimators on an "
    "L0 penalty",
    marker="v",
    make_activation=_make,
    settings={
        "jumprelu_threshold_init": {
            "description": "Initial threshold of every latent (JumpReLU).",
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 0.001,
        },
        "jumprelu_bandwidth": {
            "description": "Width epsilon of the rectangle kernel of the pseudo-derivatives "
            "(JumpReLU).",
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 0.001,
        },
        "lambda_l0": {
            "description": "Weight of the L0 penalty (JumpReLU).",
            "type": "number",
            "minimum": 0,
            "default": 0.0,
        },
    },
)
