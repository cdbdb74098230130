"""The metric registry: declarations cover exactly the summary that evaluation writes, directions
and titles reach the report, and the metrics.json reference is generated from them."""

import re
import subprocess
import sys

import pytest

from recsae.config import fill_defaults
from recsae.metrics.registry import (
    FAMILIES,
    METRICS,
    goal_of,
    metric_for,
    reference_markdown,
    summary,
)
from recsae.metrics.spec import Metric
from recsae.report.collect import best_mask, best_point_goal
from recsae.report.figures import axis_title


def _fake_metrics(cfg: dict) -> dict:
    """A metrics.json dict (plus the interventions) with every section the families read."""
    probe = {"ceiling_mean": 0.9, "best_latent_auroc_mean": 0.8, "ceiling_share": 0.7}
    probe |= {"ks": cfg["probe_ks"], **{f"sparse_k{k}_mean": 0.6 for k in cfg["probe_ks"]}}
    part = {"coverage": 0.5, "labelled_fraction": 0.4, "mean_best_auroc": 0.3}
    part |= {"mean_best_precision": 0.2}
    scores = {"score_mse": 1.0, "score_recovered": 0.9, "rbo": 0.8, "rbo_ext": 0.7}
    scores |= {"kendall_tau": 0.6, "kendall_tau_b_scores": 0.5}
    scores |= {f"overlap@{k}": 0.4 for k in cfg["overlap_ks"]}
    ranks = {f"{m}@{k}": 0.1 for k in cfg["ks"] for m in ("hr", "ndcg", "mrr", "recall")}
    ranks |= {f"precision@{k}": 0.1 for k in cfg["ks"]} | {"mpr": 0.2}
    return {
        "monosemanticity": {"ms_mean": 0.1, "ms_alive": 0.2},
        "monosemanticity_active": {"ms_mean": 0.3},
        "alignment": {"items": part, "users": part},
        "planted": {"items": {"auroc_mean": 0.9, "precision_at_r_mean": 0.8}, "users": None},
        "health": {"l0_users": 3.0, "l0_items": 4.0, "dead_fraction": 0.1, "dense_fraction": 0.0},
        "probes": {"items": probe, "users": probe},
        "fidelity": {
            "users": {"mse": 1.0, "fvu": 0.5, "cosine": 0.9},
            "items": {"mse": 1.0, "fvu": 0.5, "cosine": 0.9},
            "scores": scores,
        },
        "accuracy": {"reconstructed": ranks | {"n_users": 5}, "delta": ranks},
        "interventions": {"summary": {"filtering": {"levels": [{"selectivity": 0.1}]}}},
    }


def test_every_summary_key_is_declared_once():
    cfg = fill_defaults("metrics")
    keys = list(summary(_fake_metrics(cfg), cfg))
    for key in keys:
        matching = [m.key for m in METRICS if m.matches(key)]
        assert len(matching) == 1, (key, matching)
    assert "n_users" not in keys
    assert "rbo30" in keys and "overlap@10" in keys and "delta_mpr" in keys
    # every declaration is used by some key of the summary
    assert all(any(m.matches(k) for k in keys) for m in METRICS)


def test_families_have_unique_names_and_keys():
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)
    assert len({m.key for m in METRICS}) == len(METRICS)


def test_templates_match_their_numbers_only():
    rbo = metric_for("rbo30")
    assert rbo is not None and rbo.goal == "max"
    assert rbo.label("rbo30") == "RBO@30 vs original top-30"
    assert metric_for("rbo_ext").key == "rbo_ext"
    assert metric_for("delta_ndcg@10").key == "delta_ndcg@{k}"
    assert metric_for("ndcg@10").key == "ndcg@{k}"
    assert metric_for("not_a_metric") is None
    assert goal_of("l0_items") == "min" and goal_of("mpr") == "min" and goal_of("x") is None


def test_a_bad_level_or_goal_is_refused():
    with pytest.raises(ValueError, match="level"):
        Metric("x", "pairs", "max", "d")
    with pytest.raises(ValueError, match="goal"):
        Metric("x", "items", "up", "d")


def test_best_point_goal_follows_the_declared_direction():
    import pandas as pd

    frame = pd.DataFrame(
        {"g": ["a", "a"], "point": ["p1", "p2"], "l0_items": [5.0, 1.0], "fvu_users": [0.2, 0.4]}
    )
    goal = best_point_goal({"best_point_metric": "fvu_users", "best_point_goal": None})
    assert goal == "min"
    assert best_mask(frame, ["g"], "fvu_users", goal).tolist() == [True, False]
    assert best_point_goal({"best_point_metric": "fvu_users", "best_point_goal": "max"}) == "max"
    with pytest.raises(ValueError, match="best_point_goal"):
        best_point_goal({"best_point_metric": "probe_ceiling_items", "best_point_goal": None})


def test_axis_titles_come_from_declarations():
    assert axis_title("ms_mean") == metric_for("ms_mean").title
    assert axis_title("rbo10") == "RBO@10 vs original top-10"
    assert axis_title("width") == "dictionary width (neurons)"
    assert axis_title("ms_alive") == "ms_alive"


def test_reference_lists_every_declared_key():
    text = reference_markdown()
    rows = re.findall(r"^\| `([^`]+)` \| (items|users) \| (max|min|-) \|", text, re.M)
    assert [key for key, _, _ in rows] == [m.key for m in METRICS]
    out = subprocess.run(
        [sys.executable, "-m", "recsae.cli", "metrics-reference"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == text
