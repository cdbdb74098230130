"""``random``: a seeded random orthonormal basis of the embedding space (QR of a Gaussian matrix),
applied to the raw embeddings like ``identity``, each direction split into positive and negative
halves: 2 * d latents, exact reconstruction without top-k. It is the chance level of every
concept metric: a rotation of ``identity`` that knows nothing about the data."""

from __future__ import annotations

import torch

from recsae.methods.base import MethodSpec, SignedDirections
from recsae.seeding import torch_generator


class RandomDirections(SignedDirections):
    method = "random"


def fit(x: torch.Tensor, width: int, top_k: int | None, seed: int) -> RandomDirections:
    """x (N, d) sets only the size; ``seed`` draws the basis."""
    d = x.shape[1]
    gaussian = torch.randn(
        d, d, generator=torch_generator(seed, "random_method"), dtype=torch.float64
    )
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r))[None, :]  # the unique Haar-distributed Q
    return RandomDirections(d, 2 * d, top_k).set_directions(q, q.T)


METHOD = MethodSpec(
    RandomDirections,
    fit,
    "seeded random orthonormal directions (the chance level), split into +/- halves",
)
