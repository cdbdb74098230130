"""``identity``: the embedding's own dimensions as concepts (raw values, not centred), each split
into its positive and negative half: 2 * d latents, exact reconstruction without top-k."""

from __future__ import annotations

import torch

from recsae.methods.base import MethodSpec, SignedDirections


class IdentityDirections(SignedDirections):
    method = "identity"


def fit(x: torch.Tensor, width: int, top_k: int | None, seed: int) -> IdentityDirections:
    """x (N, d) sets only the size; ``seed`` is unused (nothing is random)."""
    d = x.shape[1]
    eye = torch.eye(d)
    return IdentityDirections(d, 2 * d, top_k).set_directions(eye, eye)


METHOD = MethodSpec(
    IdentityDirections, fit, "the embedding's raw dimensions, split into +/- halves"
)
