"""``ica``: FastICA (scikit-learn, ``whiten="unit-variance"``) on the centred training embeddings
with d components, each split into positive and negative halves: 2 * d latents. The decoder is
FastICA's mixing matrix, the inverse of its unmixing matrix, so reconstruction is exact without
top-k."""

from __future__ import annotations

import warnings

import torch
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning

from recsae.methods.base import MethodSpec, SignedDirections

MAX_ITER = 200  # FastICA iterations at most (each is O(N d^2))
TOL = 1e-4


class ICADirections(SignedDirections):
    method = "ica"


def fit(x: torch.Tensor, width: int, top_k: int | None, seed: int) -> ICADirections:
    """x (N, d) training embeddings; ``seed`` seeds FastICA's initial unmixing matrix. Each
    source's sign is fixed so that its skewness is non-negative (the heavy tail is the positive
    half)."""
    data = x.detach().cpu().double().numpy()
    d = data.shape[1]
    ica = FastICA(
        n_components=d, whiten="unit-variance", max_iter=MAX_ITER, tol=TOL, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sources = ica.fit_transform(data)  # (N, d)
    sign = (sources**3).mean(axis=0) >= 0
    flip = sign * 2.0 - 1.0
    unmixing = ica.components_ * flip[:, None]  # (d, d): s = (x - mean) @ unmixing.T
    mixing = ica.mixing_ * flip[None, :]  # (d, d): x = s @ mixing.T + mean
    return ICADirections(d, 2 * d, top_k).set_directions(unmixing.T, mixing.T, ica.mean_)


METHOD = MethodSpec(ICADirections, fit, "independent components (FastICA), split into +/- halves")
