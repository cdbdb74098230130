"""Speed of the base recommenders: training samples/s per model (full ranking: bench_ranking.py).

Datasets: an ML-1M-sized synthetic one (6,040 users x 3,706 items, 1M clustered interactions,
5 test items per user) and, with ``--ml100k PATH/u.data``, real ML-100K (5 random test items per
user, seed 0). Target on a 2-core CPU: an MF/BPR epoch over 2M samples < 5 s.

    python benchmarks/bench_recommenders.py [--ml100k path/to/u.data] [--models mf bpr ...]
    python benchmarks/bench_recommenders.py --ml100k path/to/u.data --quality   # accuracy table
    python benchmarks/bench_recommenders.py --ml100k path/to/u.data --anchor [--repeats 3]  # cornac
    python benchmarks/bench_recommenders.py --thread-counts 1 2 --models mf bpr  # 1 vs 2 threads
    python benchmarks/bench_recommenders.py --scale-step    # one MF step at ML-20M table size
    python benchmarks/bench_recommenders.py --lightgcn [--ml100k path/to/u.data --seeds 0 1 2]

``--anchor`` trains MF and BPR (dense Adam, ``sparse_updates`` and the ``per_sample`` preset)
and, when the ``cornac`` package is installed, cornac's BPR (k=64, 200 iterations) on the same
ML-100K split, and prints training seconds and test NDCG@10 side by side (ranked by the same
``rank_metrics``).
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
from recsae.recommenders.train import make_step, resolve_config, train_recommender

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


def bench_anchor(split: Split, seed: int = 0, repeats: int = 1) -> str:
    """Markdown rows: samples trained, training seconds (sampling and optimisation, validation
    excluded; the fastest of ``repeats`` identical runs), throughput and test NDCG@10 of recsae
    MF/BPR (dense Adam, sparse row updates and compiled per-sample SGD) and of cornac's BPR when
    installed (one sampled triple per training interaction and iteration; seeded, so one
    thread)."""
    seen, test = split.matrix("train") + split.matrix("valid"), split.matrix("test")
    rows = [
        "| model | samples | train s | samples/s | NDCG@10 |",
        "|---|---|---|---|---|",
    ]
    for name, train_cfg in (
        ("mf", {}),
        ("mf", {"sparse_updates": True}),
        ("mf", {"preset": "per_sample"}),
        ("bpr", {}),
        ("bpr", {"sparse_updates": True}),
        ("bpr", {"preset": "per_sample"}),
    ):
        seconds = np.inf
        for _ in range(repeats):
            model, history = train_recommender(
                split, name, {}, train_cfg, seed=seed, log=lambda s: None
            )
            seconds = min(seconds, sum(h["seconds"] for h in history))
        samples = sum(h["samples"] for h in history)
        ndcg = rank_metrics(model.full_scores, seen, test, [10])["ndcg@10"]
        rows.append(
            f"| recsae {name} {train_cfg or 'default'} | {samples:,} | {seconds:.1f} "
            f"| {samples / seconds:,.0f} | {ndcg:.4f} |"
        )
    try:
        import cornac
    except ImportError:
        rows.append("| cornac BPR | - | - | - | - (cornac is not installed: pip install cornac) |")
        return "\n".join(rows)
    train = split.train
    triples = list(
        zip(train["user"].astype(str), train["item"].astype(str), train["rating"], strict=True)
    )
    data = cornac.data.Dataset.from_uir(triples, seed=seed)
    iterations = 200
    seconds = np.inf
    for _ in range(repeats):
        anchor = cornac.models.BPR(
            k=64, max_iter=iterations, learning_rate=0.01, lambda_reg=0.01, seed=seed
        )
        start = time.perf_counter()
        anchor.fit(data)
        seconds = min(seconds, time.perf_counter() - start)
    inner_user = np.array([data.uid_map.get(str(u), -1) for u in range(split.n_users)])
    inner_item = np.array([data.iid_map.get(str(i), -1) for i in range(split.n_items)])
    known = inner_item >= 0
    user_f = torch.as_tensor(anchor.u_factors[np.maximum(inner_user, 0)], dtype=torch.float32)
    item_f = torch.zeros(split.n_items, anchor.i_factors.shape[1])
    item_f[known] = torch.as_tensor(anchor.i_factors[inner_item[known]], dtype=torch.float32)
    bias = torch.full((split.n_items,), -1e9)
    bias[known] = torch.as_tensor(anchor.i_biases[inner_item[known]], dtype=torch.float32)
    ndcg = rank_metrics(lambda u: user_f[u] @ item_f.T + bias, seen, test, [10])["ndcg@10"]
    samples = iterations * len(train)
    rows.append(
        f"| cornac {cornac.__version__} BPR k=64, {iterations} iters | {samples:,} | "
        f"{seconds:.1f} | {samples / seconds:,.0f} | {ndcg:.4f} |"
    )
    return "\n".join(rows)


LIGHTGCN_SETTINGS = (
    ("autograd, batch 8,192 (default)", {}),
    ("analytic_gradients, batch 8,192", {"analytic_gradients": True}),
    (
        "preset large_batch (analytic, batch 49,152, lr 0.02, patience 40)",
        {"preset": "large_batch"},
    ),
)


def bench_lightgcn(
    large: Split, small: Split | None, seeds: list[int], epochs: int = 3
) -> list[str]:
    """Markdown rows per LightGCN training setting: seconds per epoch on ``large`` (the fastest
    of ``epochs``, settings interleaved epoch by epoch so that a change of machine load hits all
    alike) and its ratio to the default's, and on ``small`` (ML-100K) per seed the epochs to
    early stopping and the test NDCG@10 of the restored model, with mean +- std over seeds."""
    rows = [
        "| LightGCN setting | s/epoch, ML-1M size | vs default | ML-100K: epochs per seed | "
        "s/epoch | test NDCG@10 per seed | mean +- std |",
        "|---|---|---|---|---|---|---|",
    ]
    large_seconds = {label: [] for label, _ in LIGHTGCN_SETTINGS}
    for _ in range(epochs):
        for label, train_cfg in LIGHTGCN_SETTINGS:
            cfg = {**train_cfg, "epochs": 1, "early_stopping_patience": 0}
            _, history = train_recommender(large, "lightgcn", {}, cfg, seed=0, log=lambda s: None)
            large_seconds[label].append(history[0]["seconds"])
    default = min(large_seconds[LIGHTGCN_SETTINGS[0][0]])
    if small is not None:
        seen, test = small.matrix("train") + small.matrix("valid"), small.matrix("test")
    for label, train_cfg in LIGHTGCN_SETTINGS:
        fastest = min(large_seconds[label])
        row = f"| {label} | {fastest:.2f} | {default / fastest:.1f}x |"
        if small is None:
            rows.append(row + " - | - | - | - |")
            continue
        n_epochs, seconds, ndcgs = [], [], []
        for seed in seeds:
            model, history = train_recommender(
                small, "lightgcn", {}, train_cfg, seed=seed, log=lambda s: None
            )
            n_epochs.append(len(history))
            seconds += [h["seconds"] for h in history]
            ndcgs.append(rank_metrics(model.full_scores, seen, test, [10])["ndcg@10"])
        spread = float(np.std(ndcgs, ddof=1)) if len(ndcgs) > 1 else 0.0
        rows.append(
            row + f" {' / '.join(map(str, n_epochs))} | {np.mean(seconds):.3f} | "
            f"{' / '.join(f'{v:.4f}' for v in ndcgs)} | {np.mean(ndcgs):.4f} +- {spread:.4f} |"
        )
    return rows


def bench_threads(split: Split, name: str, counts: list[int], epochs: int = 2) -> list[str]:
    """Wall and CPU seconds per epoch of ``name`` (defaults) at each torch thread count."""
    lines = []
    for threads in counts:
        torch.set_num_threads(threads)
        cfg = {"epochs": epochs, "early_stopping_patience": 0}
        wall, cpu = time.perf_counter(), time.process_time()
        train_recommender(split, name, {}, cfg, seed=0, log=lambda s: None)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        lines.append(
            f"{name:9s} {threads} thread(s): {wall / epochs:6.2f} s/epoch wall, "
            f"{cpu / epochs:6.2f} s/epoch CPU"
        )
    return lines


def bench_scale_step(
    n_users: int = 138_493, n_items: int = 26_744, batch: int = 8192, steps: int = 10
) -> list[str]:
    """ms per MF and BPR optimizer step (loss, gradients, update) on a random batch at ML-20M
    table size (d=64), with dense Adam (autograd) and with sparse row updates (analytic
    gradients and row-wise Adam)."""
    lines = []
    gen = torch.Generator().manual_seed(0)
    data = {
        key: torch.randint(0, n_users if key == "users" else n_items, (steps, batch), generator=gen)
        for key in ("users", "items", "pos", "neg")
    }
    data["labels"] = torch.randint(0, 2, (steps, batch), generator=gen).float()
    for name in ("mf", "bpr"):
        for sparse in (False, True):
            params, cfg = resolve_config(name, {}, {"sparse_updates": sparse})
            step = make_step(model_class(name)(n_users, n_items, params), cfg)
            start = time.perf_counter()
            for index in range(steps):
                step({k: v[index] for k, v in data.items()}, f"step {index}")
            ms = (time.perf_counter() - start) / steps * 1000
            lines.append(
                f"{name.upper():3s} step, {batch:,} samples, {n_users:,} x {n_items:,} tables, "
                f"{'sparse row updates' if sparse else 'dense Adam':18s}: {ms:7.1f} ms"
            )
    return lines


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
    parser.add_argument(
        "--anchor", action="store_true", help="recsae MF/BPR vs cornac BPR on ML-100K (--ml100k)"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="--anchor: time each run this often, keep the min"
    )
    parser.add_argument(
        "--thread-counts", type=int, nargs="+", help="time --models per epoch at these threads"
    )
    parser.add_argument(
        "--scale-step", action="store_true", help="MF step at ML-20M table size, dense vs sparse"
    )
    parser.add_argument(
        "--lightgcn",
        action="store_true",
        help="LightGCN s/epoch at ML-1M size per training setting (+ ML-100K NDCG with --ml100k)",
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="--lightgcn: ML-100K training seeds"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.scale_step:
        print("\n".join(bench_scale_step()), flush=True)
        return
    if args.lightgcn:
        small = ml100k(args.ml100k, n_valid=1) if args.ml100k else None
        print("\n".join(bench_lightgcn(synthetic_ml1m(), small, args.seeds)), flush=True)
        return
    if args.thread_counts:
        split = ml100k(args.ml100k) if args.ml100k else synthetic_ml1m()
        for name in args.models:
            print("\n".join(bench_threads(split, name, args.thread_counts)), flush=True)
        return
    if args.anchor:
        if not args.ml100k:
            parser.error("--anchor needs --ml100k PATH/u.data")
        print(bench_anchor(ml100k(args.ml100k, n_valid=1), repeats=args.repeats))
        return
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


if __name__ == "__main__":
    main()
