"""Speed of the base recommenders: training samples/s per model and full-ranking evaluation time.

Datasets: an ML-1M-sized synthetic one (6,040 users x 3,706 items, 1M clustered interactions,
5 test items per user) and, with ``--ml100k PATH/u.data``, real ML-100K (5 random test items per
user, seed 0). Targets on a 2-core CPU: an MF/BPR epoch over 2M samples < 5 s; full ranking of
6,040 x 3,706 with all metrics < 2 s.

    python benchmarks/bench_recommenders.py [--ml100k path/to/u.data] [--models mf bpr ...]
    python benchmarks/bench_recommenders.py --ml100k path/to/u.data --quality   # accuracy table
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from recsae.data.tables import Split
from recsae.metrics.accuracy import rank_metrics
from recsae.recommenders import model_class
from recsae.recommenders.mostpop import MostPop
from recsae.recommenders.train import train_recommender

COLUMNS = {"user": "int64", "item": "int64", "rating": "float32", "timestamp": "int64"}


def holdout_split(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    n_test: int = 5,
    n_valid: int = 0,
    seed: int = 0,
) -> Split:
    """Every interaction is a positive; per user, ``n_test`` random ones go to test and the next
    ``n_valid`` random ones to validation (numpy default_rng(seed) permutation)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"user": users, "item": items}).drop_duplicates()
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    frame["rating"], frame["timestamp"] = 1.0, 0
    position = frame.groupby("user").cumcount().to_numpy()
    parts = {
        "train": frame[position >= n_test + n_valid],
        "valid": frame[(position >= n_test) & (position < n_test + n_valid)],
        "test": frame[position < n_test],
    }
    parts = {k: v.astype(COLUMNS).reset_index(drop=True) for k, v in parts.items()}
    return Split(n_users=n_users, n_items=n_items, **parts)


def synthetic_ml1m(seed: int = 0) -> Split:
    """6,040 x 3,706, 1M distinct interactions: 20 user clusters that prefer (70%) 20 item
    clusters, heavy-tailed user activity, skewed item popularity inside each cluster."""
    n_users, n_items, n_inter, n_clusters = 6040, 3706, 1_000_209, 20
    rng = np.random.default_rng(seed)
    user_cluster = rng.integers(0, n_clusters, n_users)
    item_cluster = rng.integers(0, n_clusters, n_items)
    activity = np.minimum(rng.pareto(1.5, n_users) + 1.0, 30.0)
    users = rng.choice(n_users, size=int(n_inter * 2.2), p=activity / activity.sum())
    same = rng.random(len(users)) < 0.7
    cluster = np.where(same, user_cluster[users], rng.integers(0, n_clusters, len(users)))
    order = np.argsort(item_cluster, kind="stable")
    starts = np.searchsorted(item_cluster[order], np.arange(n_clusters + 1))
    sizes = np.diff(starts)
    offset = (rng.random(len(users)) ** 2 * sizes[cluster]).astype(int)
    items = order[starts[cluster] + offset]
    frame = pd.DataFrame({"user": users, "item": items}).drop_duplicates().iloc[:n_inter]
    return holdout_split(frame["user"].to_numpy(), frame["item"].to_numpy(), n_users, n_items)


def ml100k(path: str, n_valid: int = 0) -> Split:
    """ML-100K u.data (tab-separated user, item, rating, timestamp), ids remapped densely."""
    frame = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "timestamp"])
    users = pd.factorize(frame["user"], sort=True)[0]
    items = pd.factorize(frame["item"], sort=True)[0]
    return holdout_split(users, items, int(users.max() + 1), int(items.max() + 1), n_valid=n_valid)


def quality_table(split: Split, models: list[str], seed: int = 0) -> str:
    """Markdown table of test HR/NDCG/MRR/Recall@10 for each model (default settings, early
    stopping on the validation item) and MostPop, ranked over all items not seen in train/valid."""
    seen, test = split.matrix("train") + split.matrix("valid"), split.matrix("test")
    rows = ["| model | HR@10 | NDCG@10 | MRR@10 | Recall@10 | MPR | train s |", "|---" * 7 + "|"]
    entries = [("mostpop", MostPop(split.matrix("train")), 0.0)]
    for name in models:
        start = time.perf_counter()
        model, _ = train_recommender(split, name, {}, {}, seed=seed, log=lambda s: None)
        entries.append((name, model, time.perf_counter() - start))
    for name, model, seconds in entries:
        m = rank_metrics(model.full_scores, seen, test, [10])
        rows.append(
            f"| {name} | {m['hr@10']:.4f} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} "
            f"| {m['recall@10']:.4f} | {m['mpr']:.4f} | {seconds:.0f} |"
        )
    return "\n".join(rows)


def bench_training(split: Split, name: str, samples: int | None, epochs: int = 2) -> str:
    """Mean seconds and samples/s of an epoch (negative sampling included) with the model's default
    settings, or with the negative ratio that makes an epoch about ``samples`` long."""
    cfg = {"epochs": epochs, "early_stopping_patience": 0}
    if samples is not None:
        per_positive = round(samples / len(split.train))
        pointwise = model_class(name).objective == "pointwise"
        cfg["negatives"] = max(1, per_positive - 1 if pointwise else per_positive)
    _, history = train_recommender(split, name, {}, cfg, seed=0, log=lambda s: None)
    seconds = float(np.mean([h["seconds"] for h in history]))
    n = history[0]["samples"]
    return (
        f"{name:9s} {n:>10,d} samples/epoch {seconds:7.2f} s/epoch {n / seconds:>12,.0f} samples/s"
    )


def bench_ranking(split: Split, repeats: int = 3) -> str:
    """Full ranking of every test user with all metrics at K = 10, 20, for a dot model (d=64)."""
    seen, test = split.matrix("train"), split.matrix("test")
    gen = torch.Generator().manual_seed(0)
    users = torch.randn(split.n_users, 64, generator=gen)
    items = torch.randn(split.n_items, 64, generator=gen)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        rank_metrics(lambda u: users[u] @ items.T, seen, test, [10, 20])
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    rank_metrics(MostPop(seen).full_scores, seen, test, [10, 20])
    pop = time.perf_counter() - start
    return (
        f"full ranking {split.n_users:,} x {split.n_items:,}, ks 10/20, all metrics: "
        f"dot d=64 {min(times):.2f} s (best of {repeats}), MostPop (tied scores) {pop:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", help="path to ML-100K u.data (optional)")
    parser.add_argument("--models", nargs="+", default=["mf", "bpr", "ncf", "lightgcn"])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per model")
    parser.add_argument(
        "--quality",
        action="store_true",
        help="instead of timing: train every model with its defaults on ML-100K (5 test + 1 "
        "validation item per user, seed 0) and print the accuracy table",
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.quality:
        if not args.ml100k:
            parser.error("--quality needs --ml100k PATH/u.data")
        print(quality_table(ml100k(args.ml100k, n_valid=1), args.models))
        return
    datasets = []
    if args.ml100k:
        datasets.append(("ML-100K", ml100k(args.ml100k), None))
    datasets.append(("synthetic ML-1M-sized", synthetic_ml1m(), 2_000_000))
    for label, split, samples in datasets:
        print(
            f"\n== {label}: {split.n_users:,} users, {split.n_items:,} items, "
            f"{len(split.train):,} train / {len(split.test):,} test interactions"
        )
        for name in args.models:
            print(bench_training(split, name, samples, args.epochs), flush=True)
        print(bench_ranking(split), flush=True)


if __name__ == "__main__":
    main()
