"""Fidelity of SAE reconstructions: embeddings, scores, rankings and accuracy.

Definitions: docs/method.md, "Metrics".

All score-based measures use the recommender's full logits (``score_matrix`` with user and item
ids, so biases are included) of the ORIGINAL embeddings (U, V) and of the RECONSTRUCTED ones
(U~, V~: users and items both reconstructed), over the given (held-out) users x all items.

* Embedding: MSE (mean over elements), FVU = sum ||x - x~||^2 / sum ||x - mean(x)||^2 (mean over
  rows), mean cosine similarity of x and x~ per row.
* score_mse: mean over (user, item) pairs of (y(u,i) - y~(u,i))^2. baseline_mse: MSE of the
  baseline that predicts every pair the mean original score, i.e. the variance of the original
  scores over those pairs. score_recovered = 1 - score_mse / baseline_mse (1: exact; 0: no better
  than the constant mean score; negative: worse).
* Ranking agreement (``recsae.metrics.agreement``): top-k lists of original and reconstructed scores
  over the same candidates (all items minus the user's TRAIN items), per-user RBO (truncated at k,
  the paper's number), RBO_ext, overlap@K and Kendall tau-b of the two score vectors restricted to
  the union of both top-k lists; means over users (tau: over users where it is defined).
* Accuracy: ``recsae.metrics.accuracy.rank_metrics`` on the test split (train + valid excluded) with
  the original and the reconstructed embeddings, and delta = reconstructed - original.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recsae.metrics.accuracy import RankingTask
from recsae.metrics.agreement import exclusion_mask, ranking_agreement
from recsae.metrics.spec import Metric, MetricFamily


def embedding_fidelity(x: torch.Tensor, x_hat: torch.Tensor) -> dict:
    """MSE, FVU and mean cosine similarity of reconstructions x_hat (N, d) of x (N, d)."""
    if x.shape != x_hat.shape:
        raise ValueError(
            f"embeddings {tuple(x.shape)} and reconstructions {tuple(x_hat.shape)} differ"
        )
    x, x_hat = x.to(torch.float64), x_hat.to(torch.float64)
    err = (x - x_hat).pow(2).sum()
    total = (x - x.mean(0)).pow(2).sum()
    return {
        "mse": float(err / x.numel()),
        "fvu": float(err / total) if total > 0 else None,
        "cosine": float(torch.nn.functional.cosine_similarity(x, x_hat, dim=1).mean()),
    }


@torch.no_grad()
def score_fidelity(
    model,
    emb: tuple[torch.Tensor, torch.Tensor],
    recon: tuple[torch.Tensor, torch.Tensor],
    users: np.ndarray,
    train: sp.csr_matrix,
    k: int = 30,
    p: float = 0.9,
    overlap_ks=(10, 30),
    batch_size: int = 1024,
) -> dict:
    """Score MSE, score recovered and ranking agreement on ``users`` x all items.

    emb = (U (n_users, d), V (n_items, d)) original tables, recon = (U~, V~) reconstructed ones;
    ``train`` (n_users, n_items) holds the items excluded from the top-k lists.
    """
    (user_emb, item_emb), (user_hat, item_hat) = emb, recon
    device = item_emb.device
    items = torch.arange(item_emb.shape[0], device=device)
    count, mean, m2, sq_err = 0, 0.0, 0.0, 0.0
    per_user: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(users), batch_size):
        batch = torch.as_tensor(users[start : start + batch_size], device=device)
        orig = model.score_matrix(user_emb[batch], item_emb, users=batch, items=items)
        hat = model.score_matrix(user_hat[batch], item_hat, users=batch, items=items)
        o64 = orig.to(torch.float64)
        n_b, mean_b = o64.numel(), float(o64.mean())
        m2_b = float((o64 - mean_b).pow(2).sum())
        delta = mean_b - mean
        m2 += m2_b + delta**2 * count * n_b / (count + n_b)
        mean += delta * n_b / (count + n_b)
        count += n_b
        sq_err += float((o64 - hat.to(torch.float64)).pow(2).sum())
        agreement = ranking_agreement(
            orig, hat, exclusion_mask(train, batch.cpu(), device), k, p, overlap_ks
        )
        for key, values in agreement.items():
            per_user.setdefault(key, []).append(values.cpu())
    if count == 0:
        raise ValueError("score fidelity needs at least one user")
    score_mse, baseline_mse = sq_err / count, m2 / count
    out = {
        "n_users": len(users),
        "k": k,
        "p": p,
        "score_mse": score_mse,
        "baseline_mse": baseline_mse,
        "score_recovered": 1 - score_mse / baseline_mse if baseline_mse > 0 else None,
    }
    for key, chunks in per_user.items():
        values = torch.cat(chunks)
        defined = ~torch.isnan(values)
        out[key] = float(values[defined].mean()) if bool(defined.any()) else None
        if key == "kendall_tau":
            out["n_tau_undefined"] = int((~defined).sum())
    return out


def accuracy_fidelity(
    model,
    emb: tuple[torch.Tensor, torch.Tensor],
    recon: tuple[torch.Tensor, torch.Tensor],
    users: np.ndarray,
    exclude: sp.csr_matrix,
    relevant: sp.csr_matrix,
    ks=(10, 20),
    batch_size: int = 1024,
) -> dict:
    """rank_metrics of original and reconstructed embeddings on ``users``: original,
    reconstructed and delta (reconstructed - original) dicts of metric -> value."""
    task = RankingTask(
        exclude, relevant, list(ks), users=users, batch_size=batch_size, device=emb[1].device
    )
    results = {
        name: task.evaluate(full_score_fn(model, *tables))
        for name, tables in (("original", emb), ("reconstructed", recon))
    }
    results["delta"] = {
        key: value - results["original"][key]
        for key, value in results["reconstructed"].items()
        if key != "n_users" and isinstance(value, int | float)
    }
    return results


def full_score_fn(model, user_emb: torch.Tensor, item_emb: torch.Tensor):
    """score_fn(users (B,)) -> logits (B, n_items) of ``model`` on tables user_emb (n_users, d)
    and item_emb (n_items, d)."""
    items = torch.arange(item_emb.shape[0], device=item_emb.device)

    @torch.no_grad()
    def score_fn(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(item_emb.device)
        return model.score_matrix(user_emb[batch], item_emb, users=batch, items=items)

    return score_fn


EMBEDDING_METRICS = {
    part: (
        Metric(f"mse_{part}", part, "min", "mean squared error of the reconstructed embeddings"),
        Metric(f"fvu_{part}", part, "min", "fraction of the embeddings' variance unexplained"),
        Metric(f"cos_{part}", part, "max", "mean cosine of embedding and reconstruction"),
    )
    for part in ("users", "items")
}
SCORE_MSE = Metric("score_mse", "users", "min", "MSE of reconstructed vs original logits")
SCORE_RECOVERED = Metric(
    "score_recovered",
    "users",
    "max",
    "1 - score_mse / variance of the original logits",
    "score variance recovered (1 = exact)",
)
RBO = Metric(
    "rbo{agreement_k}",
    "users",
    "max",
    "RBO of the original and reconstructed top-agreement_k lists (truncated, the paper's)",
    "RBO@{agreement_k} vs original top-{agreement_k}",
)
RBO_EXT = Metric("rbo_ext", "users", "max", "extrapolated RBO of the two top-agreement_k lists")
KENDALL_TAU = Metric(
    "kendall_tau",
    "users",
    "max",
    "the authors' tau-b of the two top-k lists' ranks over their union",
    "Kendall τ vs original top-k",
)
KENDALL_TAU_B_SCORES = Metric(
    "kendall_tau_b_scores", "users", "max", "tau-b of the two score vectors over the lists' union"
)
OVERLAP = Metric(
    "overlap@{k}", "users", "max", "shared share of the two top-K lists, per overlap_ks"
)
SCORE_METRICS = (
    SCORE_MSE,
    SCORE_RECOVERED,
    RBO,
    RBO_EXT,
    KENDALL_TAU,
    KENDALL_TAU_B_SCORES,
    OVERLAP,
)
ACCURACY_METRICS = tuple(
    Metric(f"{prefix}{name}", "users", goal, f"{what} on the test split, {how}")
    for prefix, how in (("", "reconstructed embeddings"), ("delta_", "reconstructed - original"))
    for name, goal, what in (
        ("hr@{k}", "max", "hit rate@K"),
        ("ndcg@{k}", "max", "NDCG@K"),
        ("mrr@{k}", "max", "MRR@K"),
        ("recall@{k}", "max", "recall@K"),
        ("precision@{k}", "max", "precision@K"),
        ("mpr", "min", "mean percentile rank"),
    )
)


def _summarize_embeddings(m: dict, cfg: dict) -> dict:
    out = {}
    for part, (mse, fvu, cos) in EMBEDDING_METRICS.items():
        fid = m["fidelity"][part]
        out.update({mse.key: fid["mse"], fvu.key: fid["fvu"], cos.key: fid["cosine"]})
    return out


def _summarize_scores(m: dict, cfg: dict) -> dict:
    scores = m["fidelity"]["scores"]
    return {
        SCORE_MSE.key: scores["score_mse"],
        SCORE_RECOVERED.key: scores["score_recovered"],
        RBO.key.format(agreement_k=cfg["agreement_k"]): scores["rbo"],
        RBO_EXT.key: scores["rbo_ext"],
        KENDALL_TAU.key: scores["kendall_tau"],
        KENDALL_TAU_B_SCORES.key: scores["kendall_tau_b_scores"],
        **{OVERLAP.key.format(k=k): scores[f"overlap@{k}"] for k in cfg["overlap_ks"]},
    }


def _summarize_accuracy(m: dict, cfg: dict) -> dict:
    out = {}
    for key, value in m["accuracy"]["reconstructed"].items():
        if key in m["accuracy"]["delta"]:
            out[key] = value
            out[f"delta_{key}"] = m["accuracy"]["delta"][key]
    return out


EMBEDDING_FAMILY = MetricFamily(
    "embedding fidelity",
    "fidelity.users, fidelity.items",
    tuple(metric for metrics in EMBEDDING_METRICS.values() for metric in metrics),
    _summarize_embeddings,
)
SCORE_FAMILY = MetricFamily("score fidelity", "fidelity.scores", SCORE_METRICS, _summarize_scores)
ACCURACY_FAMILY = MetricFamily("accuracy", "accuracy", ACCURACY_METRICS, _summarize_accuracy)
