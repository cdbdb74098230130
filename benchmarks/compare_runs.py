"""Table by table, how far a rerun of a workflow moved its numbers, beside the seed spread.

    python benchmarks/compare_runs.py REFERENCE/results/tables RERUN/results/tables [--top 3]
        [--by dataset model]

For every CSV table both folders hold (rows matched by their text columns and the sweep or seed
columns named in KEYS), prints per numeric column the largest absolute difference and, where the
reference table has the column's seed standard deviation (``<column>_std``: tables averaged over
SAE seeds), the largest difference in units of that standard deviation, with the rows where it is
largest. With ``--by``, the same per group of rows (e.g. per dataset and recommender) in tables
that have those columns. Wall-clock columns are skipped. Use it to check that a rerun under
another machine, kernel setting or thread count stays within the spread that
docs/results/real-data.md states.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ("beta", "seed", "k", "width", "level")
SKIPPED = ("train_seconds", "n_seeds")


def is_flag(column: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(column)


def key_columns(table: pd.DataFrame) -> list[str]:
    """Columns that identify a row: the text columns and the sweep/seed columns of KEYS (flags
    are compared, not matched on)."""
    return [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c]) or c in KEYS]


def compare(reference: pd.DataFrame, rerun: pd.DataFrame, top: int) -> list[str]:
    """Lines for one table: rows in one run only, flags that differ, and per numeric column the
    max |diff| and max |diff| / seed std."""
    keys = key_columns(reference)
    merged = reference.merge(rerun, on=keys, how="outer", suffixes=("", "_rerun"), indicator=True)
    lines = []
    unmatched = int((merged["_merge"] != "both").sum())
    if unmatched:
        lines.append(f"  {unmatched} row(s) in only one of the runs")
    merged = merged[merged["_merge"] == "both"]
    for column in [c for c in reference.columns if is_flag(reference[c])]:
        flipped = int((merged[column] != merged[f"{column}_rerun"]).sum())
        lines.append(f"  {column}: {flipped} of {len(merged)} rows differ")
    numeric = [
        c
        for c in reference.columns
        if c not in keys
        and c not in SKIPPED
        and not c.endswith("_std")
        and pd.api.types.is_numeric_dtype(reference[c])
        and not is_flag(reference[c])
    ]
    for column in numeric:
        diff = (merged[f"{column}_rerun"] - merged[column]).abs()
        if diff.notna().sum() == 0:
            continue
        line = f"  {column}: max |diff| {diff.max():.4g}"
        std = merged.get(f"{column}_std")
        if std is not None:
            units = (diff / std.where(std > 0)).replace([np.inf], np.nan)
            if units.max() > 0:
                worst = units.nlargest(top).index
                where = "; ".join(
                    "/".join(str(merged.at[i, k]) for k in keys) + f" {units[i]:.2f}" for i in worst
                )
                line += f", max {units.max():.2f} seed std (largest: {where})"
        lines.append(line)
    return lines


def compare_groups(
    reference: pd.DataFrame, rerun: pd.DataFrame, by: list[str], top: int
) -> list[tuple[str, list[str]]]:
    """``compare`` per group of rows with equal values in the columns ``by`` (groups of either
    run), as (group name joined by "/", lines)."""
    groups = pd.concat([reference[by], rerun[by]]).drop_duplicates().sort_values(by)
    result = []
    for values in groups.itertuples(index=False):
        in_reference = (reference[by] == list(values)).all(axis=1)
        in_rerun = (rerun[by] == list(values)).all(axis=1)
        name = "/".join(str(v) for v in values)
        result.append((name, compare(reference[in_reference], rerun[in_rerun], top)))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="results/tables of the reference run")
    parser.add_argument("rerun", type=Path, help="results/tables of the rerun")
    parser.add_argument("--top", type=int, default=3, help="rows shown per column")
    parser.add_argument("--by", nargs="+", default=[], help="columns to compare per group of")
    args = parser.parse_args()
    for path in sorted(args.reference.glob("*.csv")):
        other = args.rerun / path.name
        if not other.is_file():
            print(f"{path.name}: not in {args.rerun}")
            continue
        print(path.name)
        reference, rerun = pd.read_csv(path), pd.read_csv(other)
        by = [c for c in args.by if c in reference.columns and c in rerun.columns]
        if not by:
            print("\n".join(compare(reference, rerun, args.top)))
            continue
        for group, lines in compare_groups(reference, rerun, by, args.top):
            print(f" {group}")
            print("\n".join(lines))


if __name__ == "__main__":
    main()
