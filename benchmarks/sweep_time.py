"""Wall time of a finished SAE sweep, from the Snakemake `benchmark:` files of its jobs.

    python benchmarks/sweep_time.py results/benchmarks/ml-100k

Prints, per model, the number of sweep points and the summed seconds of train_sae and
evaluate_sae jobs (each job's own wall time; the sweep's elapsed time is lower when jobs ran in
parallel), plus the slowest point.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def sweep_times(bench_dir: Path) -> pd.DataFrame:
    """One row per (model, point, stage) with the job's wall seconds."""
    rows = []
    for path in sorted(bench_dir.glob("*/sae/**/*.tsv")):
        model = path.relative_to(bench_dir).parts[0]
        point = "/".join(path.relative_to(bench_dir / model / "sae").parts[:-1])
        seconds = float(pd.read_csv(path, sep="\t")["s"].iloc[0])
        rows.append({"model": model, "point": point, "stage": path.stem, "seconds": seconds})
    if not rows:
        raise SystemExit(f"no SAE benchmark files under {bench_dir} (run the workflow first)")
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench_dir", type=Path, help="results/benchmarks/<dataset>")
    args = parser.parse_args()
    times = sweep_times(args.bench_dir)
    per_stage = times.pivot_table(index="model", columns="stage", values="seconds", aggfunc="sum")
    per_stage.insert(0, "points", times.groupby("model")["point"].nunique())
    per_stage["total"] = per_stage[["train", "evaluate"]].sum(axis=1)
    print(per_stage.round(1).to_string())
    slowest = times.groupby(["model", "point"])["seconds"].sum().idxmax()
    total = times["seconds"].sum()
    print(f"\nall points: {total:.1f} s of job time; slowest point: {'/'.join(slowest)}")


if __name__ == "__main__":
    main()
