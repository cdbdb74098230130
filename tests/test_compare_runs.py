"""benchmarks/compare_runs.py: the per-column differences between two runs' tables, overall and
per group of rows."""

import importlib.util
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]

spec = importlib.util.spec_from_file_location("compare_runs", REPO / "benchmarks/compare_runs.py")
compare_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_runs)


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two runs of a beta table: the rerun moves ml-100k/ncf by 0.25 at beta 1 (2.5 seed stds)
    and lastfm/mf by 0.01 at beta 0 (0.5 seed std); one lastfm row is missing from the rerun."""
    reference = pd.DataFrame(
        {
            "dataset": ["ml-100k", "ml-100k", "lastfm", "lastfm"],
            "model": ["ncf", "ncf", "mf", "mf"],
            "beta": [0, 1, 0, 1],
            "rbo30": [0.30, 0.40, 0.80, 0.90],
            "rbo30_std": [0.1, 0.1, 0.02, 0.02],
        }
    )
    rerun = reference.iloc[:3].copy()
    rerun.loc[1, "rbo30"] += 0.25
    rerun.loc[2, "rbo30"] += 0.01
    return reference, rerun


def test_whole_table_reports_the_largest_difference_and_its_seed_units():
    reference, rerun = tables()
    lines = compare_runs.compare(reference, rerun, top=1)
    assert lines[0] == "  1 row(s) in only one of the runs"
    assert lines[1].startswith("  rbo30: max |diff| 0.25, max 2.50 seed std")
    assert "ml-100k/ncf/1 2.50" in lines[1]


def test_groups_report_each_pairs_own_largest_difference():
    reference, rerun = tables()
    groups = dict(compare_runs.compare_groups(reference, rerun, ["dataset", "model"], top=1))
    assert list(groups) == ["lastfm/mf", "ml-100k/ncf"]
    assert groups["ml-100k/ncf"] == [
        "  rbo30: max |diff| 0.25, max 2.50 seed std (largest: ml-100k/ncf/1 2.50)"
    ]
    assert groups["lastfm/mf"][0] == "  1 row(s) in only one of the runs"
    assert groups["lastfm/mf"][1].startswith("  rbo30: max |diff| 0.01, max 0.50 seed std")
