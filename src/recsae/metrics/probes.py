"""Supervised probes per concept: the linear ceiling on the embeddings and sparse probes on latents.

For features X (N, F) and binary concept labels (N, C), every probe is scored by cross-validation:
``folds`` stratified folds (scikit-learn ``StratifiedKFold(shuffle=True, random_state=seed)``; fewer
when a class has fewer members), the AUROC of the held-out fold's scores, averaged over folds.

* ceiling (``probe_ceiling``): logistic regression with balanced class weights on standardised
  X (scikit-learn ``StandardScaler`` + ``LogisticRegression(class_weight="balanced")``), the best a
  linear read-out of the embedding reaches; equal to scikit-learn's ``cross_val_score(...,
  scoring="roc_auc").mean()`` of that pipeline.
* k-sparse probes (``sparse_probes``) on latents Z (N, H): in each training fold the k latents with
  the largest |mean(positives) - mean(negatives)| / std (ties: lower index) are selected and the
  same balanced logistic regression is fitted on them alone. The 1-sparse probe is the single
  best latent; a logistic regression on one feature is monotone in it, with the sign of the
  class-mean difference, so it is scored as +-z_j directly.
* share of the ceiling: per concept (``ceiling_share``) (AUROC - 0.5) / (ceiling - 0.5), the share
  of the linear probe's above-chance AUROC that a method's best latent reaches (NaN where the
  ceiling is <= 0.5); pooled over concepts (``pooled_ceiling_share``) sum(AUROC - 0.5) /
  sum(ceiling - 0.5) over the concepts whose ceiling is above 0.5. The pooled ratio is the summary:
  a mean of per-concept ratios is dominated by concepts whose ceiling is barely above chance (a
  ceiling of 0.51 turns a best-latent AUROC of 0.70 into a "share" of 20). The best latent is
  chosen on all entities while the ceiling is cross-validated, so a share can exceed 1.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from recsae.metrics.alignment import average_ranks
from recsae.metrics.spec import Metric, MetricFamily

MAX_ITER = 1000


def balanced_probe():
    """The probe model: standardisation + balanced logistic regression (scikit-learn)."""
    return make_pipeline(
        StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=MAX_ITER)
    )


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC of scores (N,) for binary labels (N,), ties sharing their average rank."""
    labels = np.asarray(labels, dtype=bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = average_ranks(torch.as_tensor(np.asarray(scores, dtype=np.float64))[:, None])[:, 0]
    return float((ranks.numpy()[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, ...]]:
    """(train, test) index arrays of ``min(folds, minority count)`` stratified shuffled folds;
    empty when a class has fewer than 2 members."""
    labels = np.asarray(labels, dtype=bool)
    n_splits = min(folds, int(labels.sum()), int((~labels).sum()))
    if n_splits < 2:
        return []
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


def probe_auroc(x: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated AUROC of the balanced logistic probe on features x (N, F) for labels (N,)."""
    labels = np.asarray(labels, dtype=bool)
    scores = []
    for train, test in stratified_folds(labels, folds, seed):
        probe = balanced_probe().fit(x[train], labels[train])
        scores.append(auroc(probe.decision_function(x[test]), labels[test]))
    return float(np.mean(scores)) if scores else float("nan")


def probe_ceiling(x: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """(C,) cross-validated balanced-probe AUROC on x (N, F) of each concept of labels (N, C)."""
    x = np.asarray(x, dtype=np.float64)
    return np.array([probe_auroc(x, labels[:, c], folds, seed) for c in range(labels.shape[1])])


def mean_difference_order(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(H,) latent indices by decreasing |mean over positives - mean over negatives| / std of
    z (N, H) for labels (N,) (constant latents score 0; ties: lower index first)."""
    labels = np.asarray(labels, dtype=bool)
    diff = z[labels].mean(0) - z[~labels].mean(0)
    std = z.std(0)
    score = np.divide(np.abs(diff), std, out=np.zeros_like(diff), where=std > 0)
    return np.argsort(-score, kind="stable")


def sparse_probe_auroc(
    z: np.ndarray, labels: np.ndarray, k: int, folds: int = 5, seed: int = 0
) -> float:
    """Cross-validated AUROC of the k-sparse probe on latents z (N, H) for labels (N,)."""
    labels = np.asarray(labels, dtype=bool)
    scores = []
    for train, test in stratified_folds(labels, folds, seed):
        chosen = mean_difference_order(z[train], labels[train])[:k]
        if k == 1:
            j = chosen[0]
            sign = np.sign(z[train][labels[train], j].mean() - z[train][~labels[train], j].mean())
            fold_scores = (sign or 1.0) * z[test, j]
        else:
            probe = balanced_probe().fit(z[np.ix_(train, chosen)], labels[train])
            fold_scores = probe.decision_function(z[np.ix_(test, chosen)])
        scores.append(auroc(fold_scores, labels[test]))
    return float(np.mean(scores)) if scores else float("nan")


def sparse_probes(
    z: np.ndarray, labels: np.ndarray, ks=(1, 2, 5), folds: int = 5, seed: int = 0
) -> dict[int, np.ndarray]:
    """{k: (C,) cross-validated k-sparse probe AUROC} on latents z (N, H), labels (N, C)."""
    z = np.asarray(z, dtype=np.float64)
    return {
        int(k): np.array(
            [
                sparse_probe_auroc(z, labels[:, c], int(k), folds, seed)
                for c in range(labels.shape[1])
            ]
        )
        for k in ks
    }


def ceiling_share(best: np.ndarray, ceiling: np.ndarray) -> np.ndarray:
    """(C,) (best - 0.5) / (ceiling - 0.5); NaN where the ceiling is <= 0.5 or missing."""
    best, ceiling = np.asarray(best, dtype=np.float64), np.asarray(ceiling, dtype=np.float64)
    above = ceiling - 0.5
    out = np.full_like(best, np.nan)
    ok = np.isfinite(above) & (above > 0)
    out[ok] = (best[ok] - 0.5) / above[ok]
    return out


def pooled_ceiling_share(best: np.ndarray, ceiling: np.ndarray) -> float | None:
    """sum(best - 0.5) / sum(ceiling - 0.5) over the concepts (C,) whose ceiling is above 0.5 and
    whose best AUROC is known; None when there is no such concept."""
    best, ceiling = np.asarray(best, dtype=np.float64), np.asarray(ceiling, dtype=np.float64)
    ok = np.isfinite(best) & np.isfinite(ceiling) & (ceiling > 0.5)
    if not ok.any():
        return None
    return float((best[ok] - 0.5).sum() / (ceiling[ok] - 0.5).sum())


def _mean(values: np.ndarray) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


def probe_summary(
    ceiling: np.ndarray,
    z: np.ndarray,
    labels: np.ndarray,
    best_latent_auroc: np.ndarray,
    ks=(1, 2, 5),
    folds: int = 5,
    seed: int = 0,
) -> dict:
    """Probes of one entity kind: the ceiling per concept (C,) (``probe_ceiling`` of the
    embeddings with the same labels, folds and seed; it does not depend on the latents, so the
    workflow computes it once per recommender), latents z (N, H), labels (N, C) bool and the best
    single latent's AUROC per concept (C,) (``alignment_summary`` per_concept auroc).

    Keys: ceiling_mean, best_latent_auroc_mean, sparse_k{k}_mean (means over concepts, NaN
    skipped; None without concepts), ceiling_share (``pooled_ceiling_share``) and per_concept
    lists of the same (per-concept ``ceiling_share``)."""
    ceiling = np.asarray(ceiling, dtype=np.float64)
    if ceiling.shape != (labels.shape[1],):
        raise ValueError(
            f"ceiling has shape {ceiling.shape}; expected one value per concept "
            f"({labels.shape[1]},)"
        )
    sparse = sparse_probes(z, labels, ks, folds, seed)
    means = {
        "ceiling": ceiling,
        "best_latent_auroc": np.asarray(best_latent_auroc, dtype=np.float64),
        **{f"sparse_k{k}": values for k, values in sparse.items()},
    }
    per_concept = {**means, "ceiling_share": ceiling_share(best_latent_auroc, ceiling)}
    return {
        **{f"{key}_mean": _mean(values) for key, values in means.items()},
        "ceiling_share": pooled_ceiling_share(best_latent_auroc, ceiling),
        "folds": folds,
        "ks": [int(k) for k in ks],
        "per_concept": {
            key: [None if not np.isfinite(v) else float(v) for v in values]
            for key, values in per_concept.items()
        },
    }


PROBE_CEILING = {
    part: Metric(
        f"probe_ceiling_{part}",
        part,
        None,
        f"mean over {part[:-1]} concepts of the linear probe's AUROC on the embeddings",
    )
    for part in ("items", "users")
}
CONCEPT_AUROC = {
    part: Metric(
        f"concept_auroc_{part}",
        part,
        "max",
        f"mean over {part[:-1]} concepts of the best latent's AUROC",
    )
    for part in ("items", "users")
}
CEILING_SHARE = {
    part: Metric(
        f"ceiling_share_{part}",
        part,
        "max",
        "sum(best-latent AUROC - 0.5) / sum(ceiling - 0.5) over concepts",
    )
    for part in ("items", "users")
}
SPARSE_PROBE = {
    part: Metric(
        f"sparse_probe_k{{k}}_{part}",
        part,
        "max",
        f"mean over {part[:-1]} concepts of the k-sparse probe's AUROC, per k of probe_ks",
    )
    for part in ("items", "users")
}


def _summarize(m: dict, cfg: dict) -> dict:
    out = {}
    for part in ("items", "users"):
        probes = m["probes"][part]
        out[PROBE_CEILING[part].key] = probes["ceiling_mean"]
        out[CONCEPT_AUROC[part].key] = probes["best_latent_auroc_mean"]
        out[CEILING_SHARE[part].key] = probes["ceiling_share"]
        out.update(
            {SPARSE_PROBE[part].key.format(k=k): probes[f"sparse_k{k}_mean"] for k in probes["ks"]}
        )
    return out


FAMILY = MetricFamily(
    "probes",
    "probes",
    tuple(
        metric[part]
        for part in ("items", "users")
        for metric in (PROBE_CEILING, CONCEPT_AUROC, CEILING_SHARE, SPARSE_PROBE)
    ),
    _summarize,
)
