"""Alignment of SAE neurons with external metadata concepts, and planted-concept recovery.

For activations A (N entities, H neurons) and binary concept labels Y (N, C):
* AUROC[k, c]: area under the ROC curve of neuron k's activation as a score for concept c, from
  average ranks (ties share their mean rank), i.e. exactly ``sklearn.metrics.roc_auc_score``:
  ``(sum of positive ranks - P(P+1)/2) / (P * Q)`` with P positives and Q negatives. A neuron that
  is constant on the entities scores 0.5 everywhere.
* precision[k, c]: share of concept c among neuron k's top-``top_k`` ACTIVE entities (latent > 0),
  i.e. the top-k minus the entities it does not fire on; 0 for a neuron that never fires.
* base rate of concept c: its share of all N entities, the precision of a neuron that picks
  entities at random.
* captured: neuron k captures concept c when AUROC[k, c] >= ``threshold`` AND precision[k, c] >=
  base rate[c] + ``margin``. AUROC alone can be earned by accident: a neuron that ranks a concept's
  few items slightly above the bulk reaches a high AUROC while none of its top items has the
  concept; the precision term asks that its strongest activations actually carry it.
* best concept of a neuron: argmax of AUROC over concepts (first on ties), reported with its AUROC,
  precision and base rate; its LABEL: the concept of highest AUROC among those it captures (null
  when it captures none); both null for neurons that never fire on this entity kind.
* coverage: share of concepts that some neuron captures (also per family).

Concepts come from ``concepts.parquet`` plus count buckets computed here from the TRAIN split:
items get family "popularity" (tail/mid/head), users family "activity" (light/mid/heavy). An entity
is placed by the average-rank quantile q of its train count (ties share a bucket): q <= cuts[0]
-> first bucket, cuts[0] < q <= cuts[1] -> second, ...; default cuts (0.5, 0.8): bottom half,
next 30 %, top 20 % of the catalogue. A concept is skipped (counted per family in "skipped") when it
has fewer than ``min_count`` positives or fewer than ``min_count`` negatives among the ACTIVE
entities (those with at least ``active_min_interactions`` training interactions, see evaluate.py):
a concept whose items the recommender barely saw has embeddings that barely moved from their
initialisation, and no neuron should be credited with it.

Planted-concept recovery (synthetic data, families starting with "planted_"): per planted concept
the best neuron's AUROC and the best neuron's precision@R, and their means over all concepts and
per family (the chance level is the ``random`` method of ``recsae.methods``, swept like any other
method). precision@R[k, c] is the share of concept
c among neuron k's top-R_c entities, R_c = number of positives of c (R-precision: 1 only when the
neuron ranks exactly the concept's members first); entities the neuron does not fire on count as
misses and ties are broken by entity id. AUROC rewards any direction on which the concept sits
above the rest; precision@R asks that the neuron's strongest activations be the concept alone, so
it separates a concept-specific neuron from a direction that mixes a few concepts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsae.metrics.spec import Metric, MetricFamily
from recsae.metrics.topk import topk_by_id

PLANTED_PREFIX = "planted_"
BUCKET_NAMES = {"popularity": ("tail", "mid", "head"), "activity": ("light", "mid", "heavy")}


@dataclass(frozen=True)
class Concepts:
    """Binary labels (N, C) as CSR float64 with each column's family, name and positive count."""

    labels: sp.csr_matrix
    family: list[str]
    name: list[str]
    skipped: dict[str, int]

    @property
    def n_positives(self) -> np.ndarray:
        return np.asarray(self.labels.sum(0)).ravel().astype(np.int64)

    def __len__(self) -> int:
        return len(self.name)

    def dense(self) -> np.ndarray:
        """(N, C) bool labels."""
        return self.labels.toarray().astype(bool)

    def select(self, columns) -> Concepts:
        columns = list(columns)
        return Concepts(
            self.labels[:, columns].tocsr(),
            [self.family[j] for j in columns],
            [self.name[j] for j in columns],
            dict(self.skipped),
        )


def build_concepts(
    frame: pd.DataFrame, n_entities: int, min_count: int = 5, active: np.ndarray | None = None
) -> Concepts:
    """Concepts from long-format labels (columns id, family, concept) over ids 0..n_entities-1.

    Keeps concepts with at least ``min_count`` positives and ``min_count`` negatives among the
    entities where ``active`` (n_entities,) bool is True (None: all entities).
    """
    if len(frame) and (frame["id"].min() < 0 or frame["id"].max() >= n_entities):
        raise ValueError(
            f"concept ids must lie in [0, {n_entities}), got {frame['id'].min()} to "
            f"{frame['id'].max()}"
        )
    keys = (
        frame[["family", "concept"]]
        .astype(str)
        .drop_duplicates()
        .sort_values(["family", "concept"])
    )
    keys = keys.reset_index(drop=True)
    col = pd.MultiIndex.from_frame(keys).get_indexer(
        pd.MultiIndex.from_frame(frame[["family", "concept"]].astype(str))
    )
    labels = sp.csr_matrix(
        (np.ones(len(frame)), (frame["id"].to_numpy(np.int64), col)), shape=(n_entities, len(keys))
    )
    labels.sum_duplicates()
    labels.data[:] = 1.0
    active = np.ones(n_entities, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    if active.shape != (n_entities,):
        raise ValueError(f"active mask has shape {active.shape}, expected ({n_entities},)")
    pos = np.asarray(labels[active].sum(0)).ravel()
    keep = (pos >= min_count) & (active.sum() - pos >= min_count)
    skipped = keys.loc[~keep, "family"].value_counts().sort_index()
    return Concepts(
        labels[:, np.flatnonzero(keep)].tocsr(),
        keys.loc[keep, "family"].tolist(),
        keys.loc[keep, "concept"].tolist(),
        {str(k): int(v) for k, v in skipped.items()},
    )


def count_buckets(counts: np.ndarray, family: str, cuts=(0.5, 0.8)) -> pd.DataFrame:
    """Long-format labels (id, family, concept) bucketing entities by the quantile of ``counts``."""
    cuts = np.asarray(cuts, dtype=np.float64)
    if len(cuts) == 0 or np.any(np.diff(cuts) <= 0) or cuts[0] <= 0 or cuts[-1] >= 1:
        raise ValueError(f"bucket cuts must be increasing and inside (0, 1), got {cuts.tolist()}")
    names = BUCKET_NAMES.get(family) if len(cuts) == 2 else None
    names = names or tuple(f"q{i}" for i in range(len(cuts) + 1))
    quantile = average_ranks(torch.as_tensor(counts, dtype=torch.float64)[:, None])[:, 0].numpy()
    bucket = np.searchsorted(cuts, quantile / len(counts), side="left")
    return pd.DataFrame(
        {
            "id": np.arange(len(counts), dtype=np.int64),
            "family": family,
            "concept": np.asarray(names, dtype=object)[bucket],
        }
    )


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """(N, H) float64 ranks 1..N of each column of x (N, H), ties given their average rank."""
    n = x.shape[0]
    vals, order = x.sort(dim=0)
    pos = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)[:, None].expand_as(vals)
    starts = torch.ones_like(vals, dtype=torch.bool)
    starts[1:] = vals[1:] != vals[:-1]
    ends = torch.ones_like(starts)
    ends[:-1] = starts[1:]
    first = torch.where(starts, pos, torch.zeros_like(pos)).cummax(0).values
    last = torch.where(ends, pos, torch.full_like(pos, n + 1)).flip(0).cummin(0).values.flip(0)
    return torch.empty_like(pos).scatter_(0, order, (first + last) / 2)


def auroc_matrix(acts: torch.Tensor, labels: sp.csr_matrix, chunk: int = 256) -> np.ndarray:
    """(H, C) AUROC of every neuron's activation (acts (N, H)) for every concept (labels (N, C))."""
    if acts.shape[0] != labels.shape[0]:
        raise ValueError(f"activations have {acts.shape[0]} rows, labels {labels.shape[0]}")
    n = acts.shape[0]
    pos = np.asarray(labels.sum(0)).ravel()
    neg = n - pos
    labels_t = labels.T.tocsr()
    out = np.empty((acts.shape[1], labels.shape[1]))
    for start in range(0, acts.shape[1], chunk):
        ranks = average_ranks(acts[:, start : start + chunk]).cpu().numpy()  # (N, c)
        rank_sum = np.asarray(labels_t @ ranks).T  # (c, C)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start : start + chunk] = (rank_sum - pos * (pos + 1) / 2) / (pos * neg)
    return out


def top_precision(acts: torch.Tensor, labels: sp.csr_matrix, top_k: int = 30) -> np.ndarray:
    """(H, C) share of each concept among each neuron's top-``top_k`` active entities."""
    k = min(top_k, acts.shape[0])
    values, indices = topk_by_id(acts, k, dim=0)
    active = (values > 0).cpu().numpy().T  # (H, k)
    idx = indices.cpu().numpy().T
    rows = np.repeat(np.arange(acts.shape[1]), k)
    member = sp.csr_matrix(
        (active.ravel().astype(np.float64), (rows, idx.ravel())),
        shape=(acts.shape[1], acts.shape[0]),
    )
    hits = np.asarray((member @ labels).todense())
    n_active = active.sum(1, keepdims=True)
    return np.divide(hits, n_active, out=np.zeros_like(hits), where=n_active > 0)


def precision_at_r(acts: torch.Tensor, labels: sp.csr_matrix, chunk: int = 256) -> np.ndarray:
    """(H, C) share of concept c among neuron k's top-R_c entities, R_c = positives of c.

    acts (N, H), labels (N, C) binary; entities in the top-R_c that the neuron does not fire on
    (latent <= 0) count as misses; ties are broken by entity id (stable sort).
    """
    if acts.shape[0] != labels.shape[0]:
        raise ValueError(f"activations have {acts.shape[0]} rows, labels {labels.shape[0]}")
    n_pos = np.asarray(labels.sum(0)).ravel().astype(np.int64)
    labels_t = labels.T.tocsr()
    out = np.zeros((acts.shape[1], labels.shape[1]))
    acts = acts.detach().cpu().to(torch.float64)
    for start in range(0, acts.shape[1], chunk):
        block = acts[:, start : start + chunk]  # (N, h)
        order = block.argsort(dim=0, descending=True, stable=True)
        position = (
            torch.empty_like(order)
            .scatter_(0, order, torch.arange(len(block))[:, None].expand_as(order))
            .numpy()
        )
        active = (block > 0).numpy()
        for r in np.unique(n_pos[n_pos > 0]):
            cols = np.flatnonzero(n_pos == r)
            in_top = ((position < r) & active).astype(np.float64)  # (N, h)
            out[start : start + chunk, cols] = np.asarray(labels_t[cols] @ in_top).T / r
    return out


def alignment(
    acts: torch.Tensor,
    concepts: Concepts,
    top_k: int = 30,
    threshold: float = 0.8,
    margin: float = 0.1,
) -> dict:
    """Alignment summary of activations (N, H) against ``concepts``; see ``alignment_summary``."""
    if len(concepts) == 0:
        return alignment_summary(acts, concepts, None, None, top_k, threshold, margin)
    auroc = auroc_matrix(acts, concepts.labels)
    precision = top_precision(acts, concepts.labels, top_k)
    return alignment_summary(acts, concepts, auroc, precision, top_k, threshold, margin)


def captured(
    auroc: np.ndarray, precision: np.ndarray, base_rate: np.ndarray, threshold: float, margin: float
) -> np.ndarray:
    """(H, C) bool: neuron k captures concept c (AUROC >= threshold and precision >= base rate of
    c + margin), from the (H, C) AUROC and precision tables and the (C,) base rates."""
    return (auroc >= threshold) & (precision >= base_rate[None, :] + margin)


def alignment_summary(
    acts: torch.Tensor,
    concepts: Concepts,
    auroc: np.ndarray | None,
    precision: np.ndarray | None,
    top_k: int,
    threshold: float,
    margin: float = 0.1,
) -> dict:
    """Summary of the (H, C) AUROC and precision tables of activations acts (N, H).

    Keys: n_concepts, skipped (family -> count), top_k, threshold, margin, coverage (None without
    concepts), coverage_by_family, labelled_fraction (share of firing neurons with a label),
    mean_best_auroc / mean_best_precision (over neurons that fire), per_neuron {concept, family,
    auroc, precision, base_rate (the best-AUROC concept's), label, label_family, label_auroc,
    label_precision, label_base_rate} (null for neurons that never fire; label* null for
    unlabelled ones) and
    per_concept {family, concept, n_positives, base_rate, covered, best_neuron (the capturing
    neuron of highest AUROC, else the highest-AUROC one), auroc, precision}, as column lists.
    """
    n_neurons = acts.shape[1]
    alive = (acts > 0).any(0).cpu().numpy()
    out = {
        "n_concepts": len(concepts),
        "skipped": concepts.skipped,
        "top_k": top_k,
        "threshold": threshold,
        "margin": margin,
    }
    neuron_keys = ("concept", "family", "auroc", "precision", "base_rate", "label", "label_family")
    neuron_keys += ("label_auroc", "label_precision", "label_base_rate")
    if len(concepts) == 0:
        concept_keys = ("family", "concept", "n_positives", "base_rate", "covered", "best_neuron")
        return out | {
            "coverage": None,
            "coverage_by_family": {},
            "labelled_fraction": None,
            "mean_best_auroc": None,
            "mean_best_precision": None,
            "per_neuron": {key: [None] * n_neurons for key in neuron_keys},
            "per_concept": {key: [] for key in (*concept_keys, "auroc", "precision")},
        }
    neurons, columns = np.arange(n_neurons), np.arange(len(concepts))
    base_rate = concepts.n_positives / acts.shape[0]
    hits = captured(auroc, precision, base_rate, threshold, margin)
    best_c = auroc.argmax(1)
    label_c = np.where(hits, auroc, -np.inf).argmax(1)
    labelled = hits.any(1) & alive
    covered = hits.any(0)
    best_n = np.where(covered, np.where(hits, auroc, -np.inf).argmax(0), auroc.argmax(0))
    families = np.asarray(concepts.family, dtype=object)
    neuron_auroc, neuron_precision = auroc[neurons, best_c], precision[neurons, best_c]

    def if_alive(values, mask=alive):
        return [v if a else None for v, a in zip(values, mask, strict=True)]

    return out | {
        "coverage": float(covered.mean()),
        "coverage_by_family": {
            fam: float(covered[families == fam].mean()) for fam in sorted(set(concepts.family))
        },
        "labelled_fraction": float(labelled[alive].mean()) if alive.any() else None,
        "mean_best_auroc": float(neuron_auroc[alive].mean()) if alive.any() else None,
        "mean_best_precision": float(neuron_precision[alive].mean()) if alive.any() else None,
        "per_neuron": {
            "concept": if_alive([concepts.name[c] for c in best_c]),
            "family": if_alive([concepts.family[c] for c in best_c]),
            "auroc": if_alive(neuron_auroc.tolist()),
            "precision": if_alive(neuron_precision.tolist()),
            "base_rate": if_alive(base_rate[best_c].tolist()),
            "label": if_alive([concepts.name[c] for c in label_c], labelled),
            "label_family": if_alive([concepts.family[c] for c in label_c], labelled),
            "label_auroc": if_alive(auroc[neurons, label_c].tolist(), labelled),
            "label_precision": if_alive(precision[neurons, label_c].tolist(), labelled),
            "label_base_rate": if_alive(base_rate[label_c].tolist(), labelled),
        },
        "per_concept": {
            "family": list(concepts.family),
            "concept": list(concepts.name),
            "n_positives": concepts.n_positives.tolist(),
            "base_rate": base_rate.tolist(),
            "covered": covered.tolist(),
            "best_neuron": best_n.tolist(),
            "auroc": auroc[best_n, columns].tolist(),
            "precision": precision[best_n, columns].tolist(),
        },
    }


def planted_recovery(acts: torch.Tensor, concepts: Concepts) -> dict | None:
    """Best-neuron AUROC and precision@R per planted concept for activations acts (N, H); None
    without planted concepts.

    Keys: n_concepts; auroc_mean, precision_at_r_mean (means over concepts); by_family {family:
    the same two means}; per_concept {family, concept, best_neuron (by AUROC), auroc,
    best_neuron_precision (by precision@R), precision_at_r}.
    """
    cols = [j for j, fam in enumerate(concepts.family) if fam.startswith(PLANTED_PREFIX)]
    if not cols:
        return None
    planted = concepts.select(cols)
    auroc = auroc_matrix(acts, planted.labels)
    precision = precision_at_r(acts, planted.labels)
    best = {"auroc": auroc.max(0), "precision_at_r": precision.max(0)}
    families = np.asarray(planted.family, dtype=object)
    return {
        "n_concepts": len(cols),
        **{f"{key}_mean": float(values.mean()) for key, values in best.items()},
        "by_family": {
            fam: {
                f"{key}_mean": float(values[families == fam].mean()) for key, values in best.items()
            }
            for fam in sorted(set(planted.family))
        },
        "per_concept": {
            "family": planted.family,
            "concept": planted.name,
            "best_neuron": auroc.argmax(0).tolist(),
            "best_neuron_precision": precision.argmax(0).tolist(),
            **{key: values.tolist() for key, values in best.items()},
        },
    }


def entity_concepts(
    frame: pd.DataFrame, entity: str, counts: np.ndarray, bucket_family: str, cfg: dict
) -> Concepts:
    """The scored concepts of one entity ("item" or "user"): its rows of the long label table
    ``frame`` (entity, id, family, concept) plus the ``bucket_family`` buckets of its training
    ``counts`` (N,), keeping concepts with ``min_concept_count`` active positives and negatives
    (active: at least ``active_min_interactions`` training interactions; ``cfg``: the metrics
    block)."""
    rows = frame.loc[frame["entity"] == entity, ["id", "family", "concept"]]
    buckets = count_buckets(counts, bucket_family, cfg["bucket_cuts"])
    return build_concepts(
        pd.concat([rows, buckets], ignore_index=True),
        len(counts),
        cfg["min_concept_count"],
        active=counts >= cfg["active_min_interactions"],
    )


COVERAGE_ITEMS = Metric(
    "coverage_items",
    "items",
    "max",
    "share of item concepts some neuron captures (AUROC and precision margin)",
    "item concepts captured (share)",
)
LABELLED_ITEMS = Metric(
    "labelled_items", "items", "max", "share of neurons firing on items that carry a concept label"
)
COVERAGE_USERS = Metric(
    "coverage_users", "users", "max", "share of user concepts some neuron captures"
)
BEST_AUROC_ITEMS = Metric(
    "best_auroc_items", "items", "max", "mean over firing neurons of their best item-concept AUROC"
)
BEST_AUROC_USERS = Metric(
    "best_auroc_users", "users", "max", "mean over firing neurons of their best user-concept AUROC"
)
BEST_PRECISION_ITEMS = Metric(
    "best_precision_items",
    "items",
    "max",
    "mean over firing neurons of the top-align_top_k precision of their best item concept",
)
PLANTED_AUROC = Metric(
    "planted_auroc", "items", "max", "mean over planted item concepts of the best neuron's AUROC"
)
PLANTED_PRECISION_R = Metric(
    "planted_precision_r",
    "items",
    "max",
    "mean over planted item concepts of the best neuron's precision@R",
)


def _summarize_alignment(m: dict, cfg: dict) -> dict:
    items, users = m["alignment"]["items"], m["alignment"]["users"]
    return {
        COVERAGE_ITEMS.key: items["coverage"],
        LABELLED_ITEMS.key: items["labelled_fraction"],
        COVERAGE_USERS.key: users["coverage"],
        BEST_AUROC_ITEMS.key: items["mean_best_auroc"],
        BEST_AUROC_USERS.key: users["mean_best_auroc"],
        BEST_PRECISION_ITEMS.key: items["mean_best_precision"],
    }


def _summarize_planted(m: dict, cfg: dict) -> dict:
    planted = m["planted"]["items"]
    return {
        PLANTED_AUROC.key: planted["auroc_mean"] if planted else None,
        PLANTED_PRECISION_R.key: planted["precision_at_r_mean"] if planted else None,
    }


ALIGNMENT_FAMILY = MetricFamily(
    "alignment",
    "alignment",
    (
        COVERAGE_ITEMS,
        LABELLED_ITEMS,
        COVERAGE_USERS,
        BEST_AUROC_ITEMS,
        BEST_AUROC_USERS,
        BEST_PRECISION_ITEMS,
    ),
    _summarize_alignment,
)
PLANTED_FAMILY = MetricFamily(
    "planted recovery",
    "planted",
    (PLANTED_AUROC, PLANTED_PRECISION_R),
    _summarize_planted,
)
