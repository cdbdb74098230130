"""Named SAE presets: full sets of SAE settings per recommender family.

``paper`` is the authors' SAE (docs/method.md, "The SAE: paper preset"), one per family:

* ``dot`` (MF and every dot-product model): tied decoder, learned pre-bias and latent bias, ReLU,
  per-row standardisation, each training batch's own per-column min-max (``minmax_batch``: the
  authors' training loop; evaluation feeds the raw embeddings, as their code does), the ML-1M MF
  weights;
* ``pairwise`` (NCF): ``Linear(d, h)`` with bias, ReLU, tied decoder without bias (no pre-bias),
  no standardisation and no scaling, the ML-1M NCF weights, soft-target BCE over the batch's
  positive pairs only.

Both batch the recommender's (user, item) training samples, 256 per step, 18 epochs.

A preset sits just below the config layer that names it: the layer's own keys override it, and
so do later layers (``recsae.workflow.sae_defaults``).
"""

from __future__ import annotations

FAMILIES = ("dot", "pairwise")

_PAPER_COMMON = {
    "variant": "relu",
    "width": None,
    "expansion": 1.1,
    "tied": True,
    "rho": 0.05,
    "lambda_l1": 0.0,
    "lr": 1e-3,
    "batch_size": 256,
    "epochs": 18,
    "holdout_fraction": 0.2,
    "batching": "samples",
    "negatives_per_positive": 1,
}

SAE_PRESETS: dict[str, dict[str, dict]] = {
    "paper": {
        "dot": {
            **_PAPER_COMMON,
            "standardize": True,
            "pre_bias": True,
            "input_scaling": "minmax_batch",
            "alpha": 0.1,
            "beta": 1.0,
            "lambda_kl": 0.01,
        },
        "pairwise": {
            **_PAPER_COMMON,
            "standardize": False,
            "pre_bias": False,
            "input_scaling": "none",
            "alpha": 2.0,
            "beta": 10.0,
            "lambda_kl": 0.07,
            "pred_loss": "bce",
            "pred_pairs": "positives",
        },
    }
}


def preset_settings(name: str | None, family: str | None) -> dict:
    """The settings of preset ``name`` for a recommender whose ``scorer_kind`` is ``family``;
    {} for no preset (None)."""
    if name is None:
        return {}
    if name not in SAE_PRESETS:
        raise ValueError(f"sae config key 'preset': {name!r} is not one of {sorted(SAE_PRESETS)}")
    if family not in FAMILIES:
        raise ValueError(
            f"sae config key 'preset': {name!r} needs the recommender's family "
            f"({' or '.join(FAMILIES)}), got {family!r}"
        )
    return {**SAE_PRESETS[name][family], "preset": name}


def apply_presets(layers: list[dict], family: str | None) -> dict:
    """Merge config layers in order; a layer that names a ``preset`` first lays down that preset's
    settings, so its own keys and every later layer's keys win over the preset's."""
    merged: dict = {}
    for layer in layers:
        if layer.get("preset") is not None:
            merged.update(preset_settings(layer["preset"], family))
        merged.update(layer)
    return merged
