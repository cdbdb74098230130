"""SAE training throughput on a synthetic frozen dot-product recommender (ML-1M sized by default).

    python benchmarks/bench_sae.py                          # every variant x expansions 1.1, 4, 8
    python benchmarks/bench_sae.py --variants topk --expansions 16 --epochs 2 --device cuda
    python benchmarks/bench_sae.py --sweep config.yaml --sweep-key sae.sweep   # time a whole sweep

Throughput is embeddings (users + items) per second of training, excluding the first epoch when
more than one is run (warm-up).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from recsae.data.tables import Split
from recsae.recommenders.base import Recommender
from recsae.sae.config import SAE_DEFAULTS
from recsae.sae.train import point_for, train_sae
from recsae.sweep import sweep_points


class SyntheticDot(Recommender):
    """Frozen dot-product model with random low-rank-structured embeddings."""

    scorer_kind = "dot"

    def __init__(self, n_users: int, n_items: int, params: dict):
        super().__init__(n_users, n_items, params)
        gen = torch.Generator().manual_seed(0)
        d, rank = params["dim"], max(2, params["dim"] // 4)
        basis = torch.randn(rank, d, generator=gen)
        self.user = nn.Parameter(torch.randn(n_users, rank, generator=gen) @ basis / rank**0.5)
        self.item = nn.Parameter(torch.randn(n_items, rank, generator=gen) @ basis / rank**0.5)

    def user_embeddings(self):
        return self.user

    def item_embeddings(self):
        return self.item

    def score_pairs(self, user_emb, item_emb, users=None, items=None):
        return (user_emb * item_emb).sum(-1)

    def score_matrix(self, user_emb, item_emb, users=None, items=None):
        return user_emb @ item_emb.T

    def training_loss(self, batch):
        raise NotImplementedError("synthetic benchmark model is never trained")


def synthetic_split(n_users: int, n_items: int) -> Split:
    rng = np.random.default_rng(0)
    n = 20 * n_users
    train = pd.DataFrame(
        {
            "user": rng.integers(0, n_users, n),
            "item": rng.integers(0, n_items, n),
            "rating": 1.0,
            "timestamp": 0,
        }
    )
    return Split(train, train.iloc[:0], train.iloc[:0], n_users, n_items)


def time_point(rec, split, settings: dict, device: str) -> dict:
    point = point_for(rec, settings)
    start = time.perf_counter()
    _, history = train_sae(rec, split, point, "bench", seed=0, device=device, log=None)
    total = time.perf_counter() - start
    timed = history[1:] or history
    return {
        "seconds": total,
        "embeddings_per_second": float(np.mean([h["embeddings_per_second"] for h in timed])),
        "l0_items": history[-1]["l0_items"],
        "dead_fraction": history[-1]["dead_fraction"],
    }


def load_sweep(path: Path, key: str | None) -> dict:
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        cfg = yaml.safe_load(text)
    else:
        cfg = json.loads(text)
    for part in key.split(".") if key else []:
        cfg = cfg[part]
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=6040)
    parser.add_argument("--items", type=int, default=3706)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument(
        "--variants", nargs="+", default=["relu", "topk", "batchtopk", "matryoshka"]
    )
    parser.add_argument("--expansions", nargs="+", type=float, default=[1.1, 4.0, 8.0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--sweep", type=Path, default=None, help="YAML/JSON holding a sweep config")
    parser.add_argument("--sweep-key", default=None, help="dotted key of the sweep inside --sweep")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rec = SyntheticDot(args.users, args.items, {"dim": args.dim})
    split = synthetic_split(args.users, args.items)
    base = {"epochs": args.epochs, "batch_size": args.batch_size, "k": args.k, "beta": args.beta}
    if args.sweep:
        points = sweep_points(load_sweep(args.sweep, args.sweep_key), {**SAE_DEFAULTS, **base})
    else:
        points = {
            f"{variant} x{expansion:g}": {**base, "variant": variant, "expansion": expansion}
            for variant in args.variants
            for expansion in args.expansions
        }
    print(
        f"# {args.users} users x {args.items} items, d={args.dim}, batch {args.batch_size}, "
        f"{args.epochs} epoch(s), device {args.device}, torch threads {torch.get_num_threads()}"
    )
    print(f"{'point':<48} {'seconds':>8} {'emb/s':>10} {'L0 item':>8} {'dead':>6}")
    total = 0.0
    for name, settings in points.items():
        result = time_point(rec, split, settings, args.device)
        total += result["seconds"]
        print(
            f"{name:<48} {result['seconds']:>8.2f} {result['embeddings_per_second']:>10.0f} "
            f"{result['l0_items']:>8.2f} {result['dead_fraction']:>6.3f}"
        )
    print(f"# {len(points)} point(s), {total:.1f} s in all")


if __name__ == "__main__":
    main()
