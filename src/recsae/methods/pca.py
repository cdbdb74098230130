"""``pca``: the principal directions of the centred training embeddings (all d of them, by
decreasing variance), each split into positive and negative halves: 2 * d latents; orthonormal,
so decoding inverts encoding exactly without top-k."""

from __future__ import annotations

import numpy as np
import torch

from recsae.methods.base import MethodSpec, SignedDirections


class PCADirections(SignedDirections):
    method = "pca"


def fit(x: torch.Tensor, width: int, top_k: int | None, seed: int) -> PCADirections:
    """x (N, d) training embeddings; ``seed`` is unused (the SVD is deterministic). Each
    direction's sign is fixed so that its largest-magnitude coordinate is positive."""
    data = x.detach().cpu().double().numpy()
    mean = data.mean(axis=0)
    _, _, vt = np.linalg.svd(data - mean, full_matrices=False)  # vt (r, d), r = min(N, d)
    basis = np.eye(data.shape[1])
    basis[: len(vt)] = vt
    if len(vt) < data.shape[1]:  # fewer inputs than dimensions: complete the orthonormal basis
        basis = np.linalg.qr(basis.T)[0].T
    pivot = np.abs(basis).argmax(axis=1)
    basis *= np.sign(basis[np.arange(len(basis)), pivot])[:, None]
    d = data.shape[1]
    return PCADirections(d, 2 * d, top_k).set_directions(basis.T, basis, mean)


METHOD = MethodSpec(
    PCADirections, fit, "principal directions of the training embeddings, split into +/- halves"
)
