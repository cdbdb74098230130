"""Non-SAE concept extractors, swept with the sae config key ``method`` beside the SAE variants:
``identity``, ``pca``, ``ica``, ``random`` (signed: 2 * d latents, split into positive and
negative halves), ``nmf`` and ``kmeans`` (``width`` latents). Each is fitted on the SAE-training
embeddings (training users and all items) and written as a sweep point like an SAE; ``variant:
topk`` keeps each input's ``k`` largest latents (the L0-matched form). One module per method."""

from __future__ import annotations

import torch

from recsae.methods import ica, identity, kmeans, nmf, pca, random_basis
from recsae.methods.base import (
    CHECKPOINT_FORMAT,
    ConceptMethod,
    MethodOutput,
    keep_top_k,
    method_from_payload,
    save_method,
)

FITTERS = {
    "identity": identity.fit,
    "pca": pca.fit,
    "ica": ica.fit,
    "random": random_basis.fit,
    "nmf": nmf.fit,
    "kmeans": kmeans.fit,
}


def fit_method(cfg: dict, x: torch.Tensor, seed: int) -> ConceptMethod:
    """The method ``cfg["method"]`` (a resolved sae config) fitted on embeddings x (N, d), in eval
    mode; ``variant: topk`` keeps ``k`` latents per input."""
    if cfg["method"] not in FITTERS:
        raise ValueError(
            f"sae config key 'method': {cfg['method']!r} is not one of {list(FITTERS)}"
        )
    top_k = cfg["k"] if cfg["variant"] == "topk" else None
    return FITTERS[cfg["method"]](x, cfg["width"], top_k, seed).eval()


__all__ = [
    "CHECKPOINT_FORMAT",
    "FITTERS",
    "ConceptMethod",
    "MethodOutput",
    "fit_method",
    "keep_top_k",
    "method_from_payload",
    "save_method",
]
