"""Speed of the per-SAE neuron metrics: MS score, concept alignment, planted recovery, probes.

Synthetic input: 10,000 items x 1,000 neurons (sparse ReLU latents, ~5 % active), 64-d item
embeddings, 60 multi-label concepts. Prints seconds per stage. Run:

    python benchmarks/bench_metrics.py [--items 10000] [--neurons 1000] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from recsae.metrics.alignment import alignment, build_concepts, planted_recovery
from recsae.metrics.monosemanticity import monosemanticity
from recsae.metrics.probes import probe_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--neurons", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--concepts", type=int, default=60)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(args.items, args.dim, generator=gen)
    enc = torch.randn(args.dim, args.neurons, generator=gen)
    latents = torch.relu(emb @ enc - 1.65 * args.dim**0.5)  # about 5 % active
    rng = np.random.default_rng(0)
    labels = rng.random((args.items, args.concepts)) < rng.uniform(0.01, 0.2, args.concepts)
    ids, cols = np.nonzero(labels)
    frame = pd.DataFrame(
        {"id": ids, "family": np.where(cols % 2, "genre", "planted_x"), "concept": cols.astype(str)}
    )
    concepts = build_concepts(frame, args.items)
    emb, latents = emb.to(args.device), latents.to(args.device)
    print(
        f"{args.items} items x {args.neurons} neurons, d={args.dim}, {len(concepts)} concepts, "
        f"device {args.device}, active share {float((latents > 0).float().mean()):.3f}"
    )
    for name, fn in (
        ("monosemanticity", lambda: monosemanticity(latents, emb)),
        ("alignment", lambda: alignment(latents, concepts)),
        ("planted recovery", lambda: planted_recovery(latents, concepts)),
        (
            "probes (ceiling + sparse k=1,2,5, 5 folds)",
            lambda: probe_summary(
                emb.cpu().double().numpy(),
                latents.cpu().double().numpy(),
                concepts.dense(),
                np.full(len(concepts), 0.5),
            ),
        ),
    ):
        fn()  # warm-up
        start = time.perf_counter()
        fn()
        print(f"{name:45s} {time.perf_counter() - start:8.2f} s")


if __name__ == "__main__":
    main()
