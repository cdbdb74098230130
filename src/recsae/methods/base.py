"""What every non-SAE concept extractor shares: non-negative latents, the L0-matched top-k form,
checkpoints and a forward pass shaped like the SAE's.

Shapes: N inputs, d = ``input_dim``, h = ``width`` latents. Every method is an ``nn.Module`` with
``latents`` (N, d) -> z (N, h), z >= 0, and ``reconstruct`` z (N, h) -> (N, d). ``encode`` and
``decode`` wrap them with the SAE's signatures (``encode(x, return_stats)``, ``decode(z, stats)``;
a method keeps no per-input statistics, so its stats are None), so ``recsae.interventions`` edits a
latent and decodes it the same way for an SAE and for a baseline.
Weights are buffers (nothing is trained by gradient); a checkpoint holds them with the
constructor's arguments and loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from recsae.io import save_torch

CHECKPOINT_FORMAT = "recsae-method-1"


def keep_top_k(z: torch.Tensor, k: int | None) -> torch.Tensor:
    """(N, h) -> (N, h): each row's k largest entries kept, the rest zeroed (ties: lower index);
    ``k`` None keeps everything."""
    if k is None or k >= z.shape[1]:
        return z
    top = z.topk(k, dim=1, sorted=False)
    return torch.zeros_like(z).scatter(1, top.indices, top.values)


@dataclass
class MethodOutput:
    """One forward pass: latents z (N, h) and reconstruction x_hat (N, d)."""

    z: torch.Tensor
    x_hat: torch.Tensor


class ConceptMethod(nn.Module):
    """Base of the baselines: subclasses set ``method``, ``input_dim``, ``width``, ``top_k`` and
    implement ``latents`` and ``reconstruct``; ``init_args`` are the constructor's keyword
    arguments."""

    method = ""

    def __init__(self, input_dim: int, width: int, top_k: int | None = None):
        super().__init__()
        self.input_dim, self.width, self.top_k = int(input_dim), int(width), top_k

    def init_args(self) -> dict:
        return {"input_dim": self.input_dim, "width": self.width, "top_k": self.top_k}

    def encode(self, x: torch.Tensor, return_stats: bool = False):
        """(N, d) -> z (N, h); with ``return_stats`` the pair (z, None), as an SAE's encode."""
        z = self.latents(x)
        return (z, None) if return_stats else z

    def decode(self, z: torch.Tensor, stats: None = None) -> torch.Tensor:
        """(N, h) -> (N, d); ``stats`` is accepted for the SAE's signature and unused."""
        return self.reconstruct(z)

    def forward(self, x: torch.Tensor) -> MethodOutput:
        """(N, d) -> MethodOutput(z (N, h), x_hat (N, d))."""
        z = self.latents(x)
        return MethodOutput(z, self.reconstruct(z))


class SignedDirections(ConceptMethod):
    """Projections s = (x - mean) @ encoder on m = d directions, split into non-negative halves
    z = [relu(s), relu(-s)] (h = 2m latents: latent j fires on the positive side of direction j,
    latent m + j on its negative side); decode x = (z[:, :m] - z[:, m:]) @ decoder + mean.
    Exact at full rank when decoder is the inverse of encoder and no top-k applies.

    Buffers: mean (d,), encoder (d, m), decoder (m, d)."""

    def __init__(self, input_dim: int, width: int, top_k: int | None = None):
        super().__init__(input_dim, width, top_k)
        m = width // 2
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("encoder", torch.zeros(input_dim, m))
        self.register_buffer("decoder", torch.zeros(m, input_dim))

    def set_directions(self, encoder, decoder, mean=None) -> SignedDirections:
        """Fill the buffers from arrays: encoder (d, m), decoder (m, d), mean (d,) or None (0)."""
        dtype = self.encoder.dtype
        self.encoder.copy_(torch.as_tensor(encoder, dtype=dtype))
        self.decoder.copy_(torch.as_tensor(decoder, dtype=dtype))
        if mean is not None:
            self.mean.copy_(torch.as_tensor(mean, dtype=dtype))
        return self

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d) -> signed coordinates (N, m)."""
        return (x - self.mean) @ self.encoder

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d) -> z (N, 2m), non-negative, at most ``top_k`` non-zero per row."""
        s = self.project(x)
        return keep_top_k(torch.cat([torch.relu(s), torch.relu(-s)], dim=1), self.top_k)

    def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
        """(N, 2m) -> (N, d)."""
        m = self.encoder.shape[1]
        return (z[:, :m] - z[:, m:]) @ self.decoder + self.mean


@dataclass(frozen=True)
class MethodSpec:
    """One concept extractor as the registry (``recsae.methods.METHODS``) knows it: ``module``
    (its ``ConceptMethod`` class; ``module.method`` is the config's ``method`` value) and
    ``fit(x (N, d), width, top_k, seed)``. ``signed``: a ``SignedDirections`` method, with 2 * d
    latents whatever the config's width."""

    module: type[ConceptMethod]
    fit: Callable[[torch.Tensor, int, int | None, int], ConceptMethod]
    description: str

    @property
    def name(self) -> str:
        return self.module.method

    @property
    def signed(self) -> bool:
        return issubclass(self.module, SignedDirections)


class MethodSettings(Protocol):
    """What fitting a method reads of a resolved sweep point (``recsae.sae.config.SAEPoint``):
    the method, its variant (``topk`` keeps each input's ``k`` largest latents) and width."""

    @property
    def method(self) -> str: ...

    @property
    def variant(self) -> str: ...

    @property
    def width(self) -> int: ...

    @property
    def k(self) -> int: ...


def save_method(model: ConceptMethod, path: str | Path, extra: dict | None = None) -> None:
    """Write the method's name, constructor arguments, buffers and ``extra`` atomically."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "method": model.method,
        "config": model.init_args(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    save_torch(path, payload)
