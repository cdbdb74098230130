"""Neuron cards: for the chosen SAE of a (dataset, model) pair (``chosen`` in sweep.csv), the
top neurons (by the AUROC of their best item concept, or by MS; alive neurons only) each get a
card: their most activating items with titles, the concept histogram of those items against the
catalogue, and the items' popularity against the catalogue's. One figure per pair, one card per
row.

A card's title names the neuron's LABEL (a concept it captures: AUROC at the threshold and top-k
precision above the concept's base rate by the margin; recsae.metrics.alignment) with its AUROC,
precision and base rate; a neuron that captures no concept says "no label" and shows its
best-AUROC concept with the same three numbers, so a high AUROC with a precision at the base rate
reads as what it is. The histogram uses the family of the label (else of the best concept) when
items.parquet/concepts.parquet label it (popularity buckets are derived, not labelled: then the
family with the most labels).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsae import paths
from recsae.io import read_json
from recsae.report.figures import chosen_point, placeholder, plt, read_sweep, save
from recsae.report.labels import item_names

TITLE_WIDTH = 42
CARD_KEYS = ("concept", "family", "auroc", "precision", "base_rate", "label", "label_family")
CARD_KEYS += ("label_auroc", "label_precision", "label_base_rate")


def item_latents(model_path, sae_path, device: str = "cpu") -> np.ndarray:
    """(n_items, H) SAE latents of the recommender's item embeddings."""
    from recsae.interventions import sae_encode
    from recsae.recommenders.base import load_checkpoint
    from recsae.sae.model import load_sae

    model = load_checkpoint(model_path, device)
    sae = load_sae(sae_path, device)
    with torch.no_grad():
        return sae_encode(sae, model.item_embeddings().detach()).cpu().numpy()


def rank_neurons(metrics: dict, latents: np.ndarray, order: str = "auroc") -> list[int]:
    """Alive neurons (some item activates them), best first: by the AUROC of their best item
    concept (``order="auroc"``) or by their MS score (``"ms"``); ties to the lower id."""
    alive = latents.max(0) > 0
    aurocs = (
        ((metrics.get("alignment") or {}).get("items") or {}).get("per_neuron", {}).get("auroc")
    )
    ms = (metrics.get("monosemanticity") or {}).get("per_neuron")
    values = aurocs if order == "auroc" else ms
    if values is None or len(values) != latents.shape[1]:
        values = ms if ms is not None and len(ms) == latents.shape[1] else [None] * latents.shape[1]

    def key(j):
        v = values[j]
        return (-(v if v is not None and math.isfinite(v) else -np.inf), j)

    return sorted(np.flatnonzero(alive).tolist(), key=key)


def _label(items: pd.DataFrame, item: int) -> str:
    (name,) = item_names(items.loc[[item]])
    return textwrap.shorten(name, TITLE_WIDTH, placeholder="...")


def _family(concepts: pd.DataFrame, family: str | None) -> str | None:
    families = concepts["family"].value_counts()
    if families.empty:
        return None
    return family if family in families.index else str(families.index[0])


def _concept_shares(concepts: pd.DataFrame, family: str, top: np.ndarray, n_items: int, n=8):
    labels = concepts[concepts.family == family]
    catalogue = labels.groupby("concept")["id"].nunique() / n_items
    in_top = labels[labels.id.isin(top)].groupby("concept")["id"].nunique() / max(len(top), 1)
    frame = pd.DataFrame({"top": in_top, "catalogue": catalogue}).fillna(0.0)
    return frame.sort_values(["top", "catalogue"], ascending=False).head(n)


def _evidence(info: dict, prefix: str, top_k) -> str:
    """ "(AUROC a, P@k p vs base b)" from ``info``'s ``<prefix>auroc/precision/base_rate``."""
    text = f"(AUROC {info[prefix + 'auroc']:.2f}"
    if info.get(prefix + "precision") is not None and info.get(prefix + "base_rate") is not None:
        text += f", P@{top_k} {info[prefix + 'precision']:.2f} vs base"
        text += f" {info[prefix + 'base_rate']:.2f}"
    return text + ")"


def _card(axes, neuron, acts, items, concepts, info, n_top):
    text_ax, bar_ax, pop_ax = axes
    order = np.argsort(-acts, kind="stable")
    top = order[acts[order] > 0][:n_top]
    concept, family = info.get("concept"), info.get("family")
    head = f"neuron {neuron}"
    if info.get("label") is not None:
        family = info["label_family"]
        head += f" | label: {family}={info['label']} " + _evidence(info, "label_", info["top_k"])
    elif concept is not None:
        head += f" | no label; best AUROC: {family}={concept} " + _evidence(info, "", info["top_k"])
    if info.get("ms") is not None:
        head += f" | MS {info['ms']:.2f}"
    text_ax.axis("off")
    text_ax.set_title(head, loc="left", fontsize=9, fontweight="bold")
    lines = [
        f"{i + 1:>2}. {_label(items, int(item))}  [{acts[item]:.2f}]" for i, item in enumerate(top)
    ]
    text_ax.text(
        0.0,
        1.0,
        "\n".join(lines) or "(no active item)",
        va="top",
        ha="left",
        family="monospace",
        fontsize=7.5,
        transform=text_ax.transAxes,
    )

    fam = _family(concepts, family)
    if fam is None or len(top) == 0:
        bar_ax.axis("off")
    else:
        shares = _concept_shares(concepts, fam, top, len(items))
        y = np.arange(len(shares))
        bar_ax.barh(y - 0.2, shares["top"], height=0.4, color="tab:blue", label="top items")
        bar_ax.barh(y + 0.2, shares["catalogue"], height=0.4, color="lightgrey", label="catalogue")
        bar_ax.set_yticks(y, [textwrap.shorten(str(c), 18, placeholder="..") for c in shares.index])
        bar_ax.invert_yaxis()
        bar_ax.set_xlim(0, 1)
        bar_ax.set_title(f"{fam}: share of items", fontsize=8)
        bar_ax.legend(fontsize=7, loc="lower right")
        bar_ax.tick_params(labelsize=7)

    pop = items["popularity"].to_numpy(float) if "popularity" in items else None
    if pop is None or len(top) == 0:
        pop_ax.axis("off")
        return
    logpop = np.log10(1 + pop)
    low, high = float(logpop.min()), float(logpop.max())
    bins = np.linspace(low, high if high > low else low + 1, 21)
    pop_ax.hist(logpop, bins=bins, density=True, color="lightgrey", label="catalogue")
    pop_ax.hist(
        logpop[top], bins=bins, density=True, color="tab:orange", alpha=0.8, label="top items"
    )
    pop_ax.axvline(np.median(logpop), color="grey", ls="--", lw=1)
    pop_ax.axvline(np.median(logpop[top]), color="tab:orange", ls="--", lw=1)
    pop_ax.set_title("popularity (log10(1 + train count); dashed: medians)", fontsize=8)
    pop_ax.set_yticks([])
    pop_ax.legend(fontsize=7)
    pop_ax.tick_params(labelsize=7)


def neuron_cards(
    results_dir: str | Path,
    tables_dir: str | Path,
    dataset: str,
    model: str,
    settings: dict,
    png,
    svg,
    device: str = "cpu",
) -> None:
    """Write the neuron-card figure of (dataset, model)'s chosen SAE (see the module docstring)."""
    cfg = settings["report"]
    results_dir = Path(results_dir)
    point = chosen_point(read_sweep(tables_dir), dataset, model)
    n_cards = int(cfg["neuron_cards"])
    if point is None or n_cards == 0:
        why = "no chosen SAE" if point is None else "report.neuron_cards is 0"
        return placeholder(f"{dataset} / {model}: {why}", png, svg)
    sae_dir = Path(paths.sae_dir(dataset, model, point, results_dir))
    model_path = Path(paths.model_dir(dataset, model, results_dir)) / "model.pt"
    latents = item_latents(model_path, sae_dir / "sae.pt", device)
    metrics = read_json(sae_dir / "metrics.json")
    neurons = rank_neurons(metrics, latents, cfg["neuron_card_order"])[:n_cards]
    if not neurons:
        return placeholder(f"{dataset} / {model} {point}: every neuron is dead", png, svg)
    data_dir = Path(paths.data_dir(dataset, results_dir))
    items = pd.read_parquet(data_dir / "items.parquet").set_index("item").sort_index()
    concepts = pd.read_parquet(data_dir / "concepts.parquet")
    concepts = concepts[concepts.entity == "item"]
    item_alignment = (metrics.get("alignment") or {}).get("items") or {}
    per_neuron = item_alignment.get("per_neuron") or {}
    ms = (metrics.get("monosemanticity") or {}).get("per_neuron")

    fig, axes = plt.subplots(
        len(neurons),
        3,
        figsize=(15, 2.7 * len(neurons) + 0.6),
        squeeze=False,
        gridspec_kw={"width_ratios": [1.5, 1, 1]},
    )
    for row, neuron in enumerate(neurons):
        info = {key: (per_neuron.get(key) or [None] * (neuron + 1))[neuron] for key in CARD_KEYS}
        info["top_k"] = item_alignment.get("top_k")
        info["ms"] = ms[neuron] if ms is not None and neuron < len(ms) else None
        _card(
            axes[row],
            neuron,
            latents[:, neuron],
            items,
            concepts,
            info,
            int(cfg["neuron_card_items"]),
        )
    fig.suptitle(
        f"{dataset} / {model}: neuron cards of SAE {point} "
        f"(top {len(neurons)} alive neurons by {cfg['neuron_card_order']})",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    save(fig, png, svg)
