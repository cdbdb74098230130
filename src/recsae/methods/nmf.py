"""``nmf``: non-negative matrix factorisation of the split embeddings phi(x) = [relu(x), relu(-x)]
(N, 2d), a non-negative transform that loses nothing (x = phi+ - phi-). scikit-learn's NMF learns
``width`` non-negative parts H (h, 2d); an input's latents are its non-negative least-squares
coefficients on H, z = argmin_{z >= 0} ||phi(x) - z H||^2 (accelerated projected gradient, a fixed
number of steps from z = 0, so exact zeros appear), and decoding maps the parts back to the
embedding space: x_hat = z @ (H[:, :d] - H[:, d:])."""

from __future__ import annotations

import warnings

import torch
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning

from recsae.methods.base import ConceptMethod, MethodSpec, keep_top_k

FIT_MAX_ITER = 400
ENCODE_STEPS = 300


def split_signs(x: torch.Tensor) -> torch.Tensor:
    """(N, d) -> (N, 2d) non-negative [relu(x), relu(-x)]."""
    return torch.cat([torch.relu(x), torch.relu(-x)], dim=1)


class NMFParts(ConceptMethod):
    """Buffers: parts (h, 2d), non-negative."""

    method = "nmf"

    def __init__(self, input_dim: int, width: int, top_k: int | None = None):
        super().__init__(input_dim, width, top_k)
        self.register_buffer("parts", torch.zeros(width, 2 * input_dim))

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d) -> z (N, h) >= 0: NNLS coefficients of phi(x) on the parts (FISTA)."""
        target = split_signs(x) @ self.parts.T  # (N, h)
        gram = self.parts @ self.parts.T  # (h, h)
        step = 1.0 / torch.linalg.matrix_norm(gram, ord=2).clamp_min(1e-12)
        z = y = torch.zeros_like(target)
        t = 1.0
        for _ in range(ENCODE_STEPS):
            z_next = torch.relu(y - step * (y @ gram - target))
            t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
            y = z_next + (t - 1) / t_next * (z_next - z)
            z, t = z_next, t_next
        return keep_top_k(z, self.top_k)

    def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
        """(N, h) -> (N, d)."""
        d = self.input_dim
        return z @ (self.parts[:, :d] - self.parts[:, d:])


def fit(x: torch.Tensor, width: int, top_k: int | None, seed: int) -> NMFParts:
    """x (N, d) training embeddings; ``seed`` seeds scikit-learn's NMF. The initialisation is
    NNDSVDa where it applies (width <= min(N, 2d)), else seeded random (a wider dictionary than
    the 2d split features)."""
    data = split_signs(x.detach().cpu().double()).numpy()
    init = "nndsvda" if width <= min(data.shape) else "random"
    nmf = NMF(n_components=width, init=init, max_iter=FIT_MAX_ITER, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        nmf.fit(data)
    model = NMFParts(x.shape[1], width, top_k)
    model.parts.copy_(torch.as_tensor(nmf.components_, dtype=model.parts.dtype))
    return model


METHOD = MethodSpec(
    NMFParts, fit, "non-negative parts of the split embeddings [relu(x), relu(-x)] (width parts)"
)
