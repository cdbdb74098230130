"""``kmeans``: k-means clusters of the training embeddings (scikit-learn, ``width`` clusters) with
soft memberships as latents, z = softmax(-||x - c_j||^2 / tau) over clusters j, tau = the mean
squared distance of a training input to its nearest centroid; decoding mixes the centroids,
x_hat = z @ C. The top-k form keeps each input's k largest memberships and renormalises them to
sum to 1 (a mixture of its k nearest centroids)."""

from __future__ import annotations

import torch
from sklearn.cluster import KMeans

from recsae.methods.base import ConceptMethod, MethodSpec, keep_top_k

N_INIT = 3


class KMeansMemberships(ConceptMethod):
    """Buffers: centroids (h, d), temperature ()."""

    method = "kmeans"

    def __init__(self, input_dim: int, width: int, top_k: int | None = None):
        super().__init__(input_dim, width, top_k)
        self.register_buffer("centroids", torch.zeros(width, input_dim))
        self.register_buffer("temperature", torch.ones(()))

    def sq_distances(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d) -> (N, h) squared distances to the centroids."""
        c = self.centroids
        d2 = x.pow(2).sum(1, keepdim=True) - 2 * x @ c.T + c.pow(2).sum(1)[None, :]
        return d2.clamp_min(0)

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """(N, d) -> z (N, h) >= 0, each row summing to 1."""
        z = torch.softmax(-self.sq_distances(x) / self.temperature, dim=1)
        if self.top_k is None:
            return z
        z = keep_top_k(z, self.top_k)
        return z / z.sum(1, keepdim=True).clamp_min(1e-30)

    def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
        """(N, h) -> (N, d)."""
        return z @ self.centroids


def fit(x: torch.Tensor, width: int, top_k: int | None, seed: int) -> KMeansMemberships:
    """x (N, d) training embeddings (N >= width); ``seed`` seeds the k-means initialisation."""
    data = x.detach().cpu().double().numpy()
    if len(data) < width:
        raise ValueError(
            f"kmeans: {width} clusters (sae config key 'width') need at least as "
            f"many training inputs, got {len(data)}"
        )
    km = KMeans(n_clusters=width, n_init=N_INIT, random_state=seed).fit(data)
    model = KMeansMemberships(x.shape[1], width, top_k)
    model.centroids.copy_(torch.as_tensor(km.cluster_centers_, dtype=model.centroids.dtype))
    nearest = model.sq_distances(x.detach().cpu().float()).min(dim=1).values
    model.temperature.fill_(float(nearest.mean().clamp_min(1e-12)))
    return model


METHOD = MethodSpec(KMeansMemberships, fit, "k-means memberships (width clusters)")
