"""Fitting time of the non-SAE concept extractors (``recsae.methods``) at ML-1M size.

Input: 6,040 user + 3,706 item embeddings (d = 64 by default), drawn as a seeded mixture of sparse
(Laplace) and Gaussian factors, as a trained factor model's would be roughly. Prints, per method,
the seconds to fit and to encode + decode every embedding, dense and L0-matched (k = 4), as wall
time and as this process's CPU time (the figure that does not grow with other jobs' load). Run:

    python benchmarks/bench_methods.py [--dim 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from recsae.methods import METHODS, fit_method
from recsae.sae.config import SAEPoint

ML1M_USERS, ML1M_ITEMS = 6_040, 3_706


def embeddings(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """(n, dim): half Laplace, half Gaussian factors, mixed by a random matrix."""
    gen = torch.Generator().manual_seed(seed)
    half = dim // 2
    laplace = torch.distributions.Laplace(0.0, 1.0).sample((n, half))
    factors = torch.cat([laplace, torch.randn(n, dim - half, generator=gen)], dim=1)
    return factors @ torch.randn(dim, dim, generator=gen) / dim**0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = embeddings(ML1M_USERS + ML1M_ITEMS, args.dim)
    print(f"{len(x)} embeddings x d={args.dim}, {args.threads} thread(s)")
    print(
        f"{'method':10s} {'form':6s} {'latents':>7s} {'fit s':>8s} {'fit cpu s':>10s} "
        f"{'encode+decode s':>16s}"
    )
    for method in METHODS:
        for variant in ("relu", "topk"):
            point = SAEPoint.resolve({"method": method, "variant": variant, "k": 4}, args.dim)
            start, cpu = time.perf_counter(), time.process_time()
            model = fit_method(point, x, seed=0)
            fit, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
            start = time.perf_counter()
            with torch.no_grad():
                model.decode(model.encode(x))
            code = time.perf_counter() - start
            form = "dense" if variant == "relu" else "k=4"
            print(
                f"{method:10s} {form:6s} {model.width:7d} {fit:8.2f} {fit_cpu:10.2f} {code:16.2f}"
            )


if __name__ == "__main__":
    main()
