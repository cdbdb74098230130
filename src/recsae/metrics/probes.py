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
PROBE_BATCH = 64  # (concept, fold) probes solved together


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


def balanced_logistic_scores(
    x: torch.Tensor, labels: torch.Tensor, train: torch.Tensor, c: float = 1.0
) -> torch.Tensor:
    """Decision scores (P, N) of P balanced logistic probes, each fitted on its training rows.

    x (P, N, F) float64 features, labels (P, N) bool, train (P, N) bool (the rows probe p is
    fitted on; each must hold both classes). Probe p is scikit-learn's ``balanced_probe()``
    written out and solved for all P at once: the features are standardised with the mean and
    standard deviation of its training rows (``StandardScaler``: a constant feature is left
    unscaled), and (w, b) minimises sum_i s_i log(1 + exp(-y_i (w.x_i + b))) + |w|^2 / (2c) over
    the training rows, with class weights s = n / (2 n_class) (``class_weight="balanced"``). The
    problem is strictly convex; damped Newton steps solve it until the Newton decrement is below
    1e-15 of the objective (its optimum to rounding); scikit-learn's L-BFGS stops at a gradient
    of 1e-4, so its solutions differ from these in about the fifth digit."""
    weight_of_row = train.to(x.dtype)
    n_train = weight_of_row.sum(1, keepdim=True)
    mean = (x * weight_of_row[..., None]).sum(1, keepdim=True) / n_train[..., None]
    var = (((x - mean) ** 2) * weight_of_row[..., None]).sum(1, keepdim=True) / n_train[..., None]
    scale = var.sqrt()
    scale = torch.where(scale < 10 * torch.finfo(x.dtype).eps, torch.ones_like(scale), scale)
    design = torch.cat([(x - mean) / scale, torch.ones_like(x[..., :1])], dim=2)  # (P, N, F+1)
    target = labels.to(x.dtype)
    n_pos = (target * weight_of_row).sum(1, keepdim=True)
    sample = weight_of_row * torch.where(
        labels, n_train / (2 * n_pos), n_train / (2 * (n_train - n_pos))
    )
    penalty = torch.full((design.shape[2],), 1.0 / c, dtype=x.dtype)
    penalty[-1] = 0.0  # the intercept is not penalised

    def objective(f: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """(..., P) objective of scores f (..., P, N) and parameters theta (..., P, F+1)."""
        loss = (sample * (torch.nn.functional.softplus(f) - target * f)).sum(-1)
        return loss + 0.5 * (penalty * theta**2).sum(-1)

    theta = torch.zeros(design.shape[0], design.shape[2], dtype=x.dtype)
    f = torch.zeros_like(target)
    current = objective(f, theta)
    active = torch.ones_like(current, dtype=torch.bool)
    for _ in range(100):
        p = torch.sigmoid(f)
        grad = torch.bmm(design.transpose(1, 2), (sample * (p - target))[..., None])[..., 0]
        grad = grad + penalty * theta
        weighted = design * (sample * p * (1 - p))[..., None]
        hessian = torch.bmm(weighted.transpose(1, 2), design) + torch.diag(penalty)
        direction = torch.linalg.solve(hessian, grad)  # (P, F+1)
        # Newton decrement: the objective's distance to its minimum, to second order
        active &= (grad * direction).sum(1) / 2 > 1e-15 * (1 + current.abs())
        if not active.any():
            break
        shift = torch.bmm(design, direction[..., None])[..., 0]  # (P, N)
        step = active.to(x.dtype)
        for _ in range(40):  # halve the step of the probes whose objective would rise
            trial = objective(f - step[:, None] * shift, theta - step[:, None] * direction)
            rising = trial > current
            if not rising.any():
                break
            step = torch.where(rising, step / 2, step)
        step = torch.where(rising, torch.zeros_like(step), step)
        active &= ~rising  # no step lowers the objective: at the optimum to rounding
        theta, f = theta - step[:, None] * direction, f - step[:, None] * shift
        current = torch.where(rising, current, trial)
    return torch.bmm(design, theta[..., None])[..., 0]


def sparse_probes(
    z: np.ndarray, labels: np.ndarray, ks=(1, 2, 5), folds: int = 5, seed: int = 0
) -> dict[int, np.ndarray]:
    """{k: (C,) cross-validated k-sparse probe AUROC} on latents z (N, H), labels (N, C) bool.

    Per concept and fold (``stratified_folds``), the k latents of the training rows'
    ``mean_difference_order`` are the probe's features; k = 1 is scored as +-z_j (a logistic
    regression on one feature is monotone in it, with the sign of the class-mean difference),
    larger k by ``balanced_logistic_scores``, all (concept, fold) probes of one k solved
    together. A concept's AUROC is the mean over its folds; NaN where a class has fewer than 2
    members."""
    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    n, n_concepts = labels.shape
    problems = []  # (concept, train rows, test rows, latents by decreasing mean difference)
    for c in range(n_concepts):
        for train, test in stratified_folds(labels[:, c], folds, seed):
            order = mean_difference_order(z[train], labels[train, c])
            problems.append((c, train, test, order[: max(ks)]))
    out = {}
    for k in ks:
        k = int(k)
        fold_aurocs = [[] for _ in range(n_concepts)]
        if k == 1:
            for c, train, test, order in problems:
                j = order[0]
                sign = np.sign(
                    z[train][labels[train, c], j].mean() - z[train][~labels[train, c], j].mean()
                )
                fold_aurocs[c].append(auroc((sign or 1.0) * z[test, j], labels[test, c]))
        for start in range(0, len(problems) if k > 1 else 0, PROBE_BATCH):
            batch = problems[start : start + PROBE_BATCH]
            x = torch.as_tensor(z.T[np.stack([order[:k] for *_, order in batch])]).transpose(1, 2)
            concept_labels = torch.as_tensor(labels[:, [c for c, *_ in batch]].T.copy())
            train_rows = torch.zeros(len(batch), n, dtype=torch.bool)
            for row, (_, train, _, _) in enumerate(batch):
                train_rows[row, torch.as_tensor(train)] = True
            scores = balanced_logistic_scores(x, concept_labels, train_rows).numpy()
            for row, (c, _, test, _) in enumerate(batch):
                fold_aurocs[c].append(auroc(scores[row, test], labels[test, c]))
        out[k] = np.array([np.mean(a) if a else np.nan for a in fold_aurocs])
    return out


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
