"""SASRec: training seconds per epoch on ML-100K and at ML-1M size, and its accuracy.

Splits are leave-last-out by timestamp (per user the last item is test, the one before valid;
``recsae.data.split`` with ``protocol: leave_last_out``, seed 0). ML-100K needs ``--ml100k
PATH/u.data``; the ML-1M-sized data set is synthetic: 6,040 users x 3,706 items, 1M distinct
interactions (bench_recommenders.synthetic_ml1m) in a random order per user as their timestamps.

    python benchmarks/bench_sasrec.py [--ml100k path/to/u.data] [--epochs 2] [--loss ce bce]
        [--max-len 50 200] [--threads 1] [--skip-ml1m]
    python benchmarks/bench_sasrec.py --ml100k path/to/u.data --quality [--seeds 0 1 2]

An epoch is one pass over the users with two or more training items (validation excluded).
``--quality`` trains SASRec (default settings, early stopping on the validation item) and MF
(default settings) and prints test HR@10 and NDCG@10 with MostPop, full ranking with the user's
train and valid items excluded. SASRec reads the user's training items (the suite's protocol,
the user state the SAE analyses); the row ``sasrec (+valid in input)`` feeds it train + valid,
the protocol of Kang & McAuley and Klenitskiy & Vasilev, whose test item is the next one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsae.data.split import SplitSettings, assign_parts
from recsae.data.tables import INTERACTION_COLUMNS, SPLIT_PARTS, Split
from recsae.metrics.accuracy import rank_metrics
from recsae.recommenders.mostpop import MostPop
from recsae.recommenders.train import train_recommender

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recommenders import synthetic_ml1m  # noqa: E402

KS = [10]


def leave_last_out(frame: pd.DataFrame, n_users: int, n_items: int, seed: int = 0) -> Split:
    """The suite's leave-last-out split (1 test, 1 valid item per user) of canonical
    interactions."""
    settings = SplitSettings.from_settings({"protocol": "leave_last_out", "test_n": 1})
    frame = frame.astype(INTERACTION_COLUMNS).reset_index(drop=True)
    part, _ = assign_parts(
        frame["user"].to_numpy(),
        frame["timestamp"].to_numpy(),
        settings,
        np.random.default_rng(np.random.SeedSequence([seed])),
    )
    parts = {
        name: frame[part == code].reset_index(drop=True) for code, name in enumerate(SPLIT_PARTS)
    }
    return Split(n_users=n_users, n_items=n_items, **parts)


def ml100k(path: str) -> Split:
    """ML-100K u.data (tab-separated user, item, rating, timestamp), ids remapped densely."""
    frame = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "timestamp"])
    frame["user"] = pd.factorize(frame["user"], sort=True)[0]
    frame["item"] = pd.factorize(frame["item"], sort=True)[0]
    return leave_last_out(frame, int(frame["user"].max() + 1), int(frame["item"].max() + 1))


def ml1m_sized(seed: int = 0) -> Split:
    """The synthetic ML-1M-sized interactions with a random order per user as timestamps."""
    split = synthetic_ml1m(seed)
    frame = pd.concat([split.train, split.valid, split.test], ignore_index=True)
    frame["timestamp"] = np.random.default_rng(seed).permutation(len(frame))
    return leave_last_out(frame, split.n_users, split.n_items, seed)


def bench_epochs(split: Split, loss: str, max_len: int, epochs: int) -> str:
    """Mean training seconds of ``epochs`` epochs (the validation at the end not counted)."""
    cfg = {"epochs": epochs, "eval_every": epochs, "early_stopping_patience": 0}
    params = {"loss": loss, "max_len": max_len}
    _, history = train_recommender(split, "sasrec", params, cfg, 0, log=lambda s: None)
    seconds = float(np.mean([h["seconds"] for h in history]))
    users = history[0]["samples"]
    return (
        f"sasrec loss={loss:3s} max_len={max_len:3d} {users:>6,d} users/epoch "
        f"{seconds:8.2f} s/epoch"
    )


def held_out_metrics(score_fn, split: Split) -> dict:
    seen = split.matrix("train") + split.matrix("valid")
    return rank_metrics(score_fn, seen, split.matrix("test"), KS)


def quality_rows(split: Split, seed: int) -> dict[str, dict]:
    """Test metrics of MostPop, MF and SASRec (two input protocols) for one seed."""
    rows = {"mostpop": held_out_metrics(MostPop(split.matrix("train")).full_scores, split)}
    mf, _ = train_recommender(split, "mf", {}, {}, seed, log=lambda s: None)
    rows["mf"] = held_out_metrics(mf.full_scores, split)
    start = time.perf_counter()
    sasrec, history = train_recommender(split, "sasrec", {}, {}, seed, log=lambda s: None)
    rows["sasrec"] = {**held_out_metrics(sasrec.full_scores, split), "epochs": len(history)}
    rows["sasrec"]["seconds"] = time.perf_counter() - start
    sasrec.prepare_history(pd.concat([split.train, split.valid], ignore_index=True))
    with torch.no_grad():
        rows["sasrec (+valid in input)"] = held_out_metrics(sasrec.eval().full_scores, split)
    return rows


def quality_table(split: Split, seeds: list[int]) -> str:
    runs = [quality_rows(split, seed) for seed in seeds]
    lines = ["| model | HR@10 | NDCG@10 |", "|---|---|---|"]
    for name in runs[0]:
        cells = []
        for metric in ("hr@10", "ndcg@10"):
            values = np.array([run[name][metric] for run in runs])
            cells.append(f"{values.mean():.4f} ± {values.std():.4f}")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    sasrec = [run["sasrec"] for run in runs]
    lines.append(
        f"\nSASRec: {np.mean([r['epochs'] for r in sasrec]):.0f} epochs, "
        f"{np.mean([r['seconds'] for r in sasrec]):.0f} s per run; seeds {seeds}"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", help="path to ML-100K u.data (optional)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per setting")
    parser.add_argument("--loss", nargs="+", default=["ce", "bce"], choices=["ce", "bce"])
    parser.add_argument("--max-len", type=int, nargs="+", default=[200], help="windows to time")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--quality", action="store_true", help="accuracy table (needs --ml100k)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--skip-ml1m", action="store_true", help="no ML-1M-sized timing")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    if args.quality:
        if not args.ml100k:
            parser.error("--quality needs --ml100k")
        print(quality_table(ml100k(args.ml100k), args.seeds))
        return
    datasets = {}
    if args.ml100k:
        datasets["ML-100K"] = ml100k(args.ml100k)
    if not args.skip_ml1m:
        datasets["ML-1M size (synthetic)"] = ml1m_sized()
    for name, split in datasets.items():
        print(f"{name}: {split.n_users} users x {split.n_items} items, {len(split.train)} train")
        for loss in args.loss:
            for max_len in args.max_len:
                print("  " + bench_epochs(split, loss, max_len, args.epochs))


if __name__ == "__main__":
    main()
