"""Full-ranking evaluation against a bare torch loop, on ML-1M-sized data (6,040 x 3,706).

The bare loop is the least any full ranking has to do: per batch of 1,024 users the score block
U @ V.T, the training items masked to -inf, and the top-20 (``torch.topk``); it computes no
metric. recsae's ``rank_metrics`` ranks the same scores with every metric at K = 10, 20 and the
exact rank of every test item for MPR (ties broken by item id). Printed side by side, with
their ratio, for a dot model (d=64) and for MostPop (integer scores: many ties), one-shot and
with the evaluation prepared once (``RankingTask``: what validation epochs, fidelity and
interventions reuse).

    python benchmarks/bench_ranking.py [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import scipy.sparse as sp
import torch
from bench_recommenders import synthetic_ml1m

from recsae.metrics.accuracy import RankingTask, rank_metrics
from recsae.recommenders.mostpop import MostPop


def bare_loop(score_fn, exclude: sp.csr_matrix, n_users: int, batch_size: int = 1024) -> None:
    """Scores, -inf on excluded items and top-20 per batch; no metrics."""
    indptr = torch.as_tensor(exclude.indptr.astype(np.int64))
    indices = torch.as_tensor(exclude.indices.astype(np.int64))
    for start in range(0, n_users, batch_size):
        users = torch.arange(start, min(start + batch_size, n_users))
        scores = score_fn(users).contiguous()
        bounds = indptr[start : start + len(users) + 1]
        rows = torch.repeat_interleave(torch.arange(len(users)), bounds.diff())
        scores[rows, indices[bounds[0] : bounds[-1]]] = float("-inf")
        scores.topk(20, dim=1)


def best_of(repeats: int, fn) -> float:
    """Least wall seconds of ``repeats`` calls of fn()."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls; the least is shown")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = synthetic_ml1m()
    seen, test = split.matrix("train"), split.matrix("test")
    gen = torch.Generator().manual_seed(0)
    user_emb = torch.randn(split.n_users, 64, generator=gen)
    item_emb = torch.randn(split.n_items, 64, generator=gen)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{torch.backends.cpu.get_cpu_capability()} kernels; {split.n_users:,} users x "
        f"{split.n_items:,} items, {seen.nnz:,} excluded, {test.nnz:,} test items; best of "
        f"{args.repeats}"
    )
    task = RankingTask(seen, test, [10, 20])
    for label, score_fn in (
        ("dot d=64", lambda u: user_emb[u] @ item_emb.T),
        ("MostPop (ties)", MostPop(seen).full_scores),
    ):
        bare = best_of(args.repeats, partial(bare_loop, score_fn, seen, split.n_users))
        once = best_of(args.repeats, partial(rank_metrics, score_fn, seen, test, [10, 20]))
        prepared = best_of(args.repeats, partial(task.evaluate, score_fn))
        print(
            f"{label:15s} bare loop {bare:6.3f} s | rank_metrics {once:6.3f} s "
            f"({once / bare:4.2f}x) | prepared RankingTask.evaluate {prepared:6.3f} s "
            f"({prepared / bare:4.2f}x)",
            flush=True,
        )


if __name__ == "__main__":
    main()
