"""Non-SAE concept extractors, swept with the sae config key ``method`` beside the SAE variants:
``identity``, ``pca``, ``ica``, ``random`` (signed: 2 * d latents, split into positive and
negative halves), ``nmf`` and ``kmeans`` (``width`` latents). Each is fitted on the SAE-training
embeddings (training users and all items) and written as a sweep point like an SAE; ``variant:
topk`` keeps each input's ``k`` largest latents (the L0-matched form). One module per method,
each declaring one ``MethodSpec``; one line of ``METHODS`` registers it."""

from __future__ import annotations

import torch

from recsae.methods import ica, identity, kmeans, nmf, pca, random_basis
from recsae.methods.base import (
    CHECKPOINT_FORMAT,
    ConceptMethod,
    MethodOutput,
    MethodSettings,
    MethodSpec,
    keep_top_k,
    save_method,
)

# the registry: the config's ``method`` values besides ``sae`` (the schema's enum is composed
# from it, recsae.config.compose_schema)
METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        identity.METHOD,
        pca.METHOD,
        ica.METHOD,
        random_basis.METHOD,
        nmf.METHOD,
        kmeans.METHOD,
    )
}


def fit_method(point: MethodSettings, x: torch.Tensor, seed: int) -> ConceptMethod:
    """The method ``point.method`` (of a resolved sweep point) fitted on embeddings x (N, d), in
    eval mode, with ``point.width`` latents; ``variant: topk`` keeps ``k`` latents per input."""
    if point.method not in METHODS:
        raise ValueError(f"sae config key 'method': {point.method!r} is not one of {list(METHODS)}")
    top_k = point.k if point.variant == "topk" else None
    return METHODS[point.method].fit(x, point.width, top_k, seed).eval()


def method_from_payload(payload: dict, device: str | torch.device = "cpu") -> ConceptMethod:
    """Rebuild a method from a loaded checkpoint payload (eval mode, on ``device``)."""
    name = payload.get("method")
    if name not in METHODS:
        raise ValueError(f"unknown concept method {name!r} in checkpoint; known: {sorted(METHODS)}")
    model = METHODS[name].module(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()


__all__ = [
    "CHECKPOINT_FORMAT",
    "METHODS",
    "ConceptMethod",
    "MethodOutput",
    "MethodSettings",
    "MethodSpec",
    "fit_method",
    "keep_top_k",
    "method_from_payload",
    "save_method",
]
