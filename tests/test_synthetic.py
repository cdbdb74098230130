"""The planted-concept generator: reproducible, concepts drive interactions, canonical output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsae.data import synthetic
from recsae.data.prepare import prepare_dataset
from recsae.data.synthetic import SyntheticSettings, generate
from recsae.data.tables import validate_canonical

SETTINGS = {
    "source": "synthetic",
    "n_users": 300,
    "n_items": 200,
    "interactions_per_user": 30,
    "n_clusters": 5,
    "n_eras": 3,
    "n_popularity_levels": 3,
}


def test_reproducible_and_seed_dependent():
    cfg = SyntheticSettings.from_settings(SETTINGS)
    a, b, c = generate(cfg, 7), generate(cfg, 7), generate(cfg, 8)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.concepts, b.concepts)
    assert not a.interactions.equals(c.interactions)


def test_no_duplicate_pairs_and_counts():
    raw = generate(SyntheticSettings.from_settings(SETTINGS), 0)
    inter = raw.interactions
    assert not inter.duplicated(["user", "item"]).any()
    per_user = inter.groupby("user").size()
    assert per_user.min() >= 10 and abs(per_user.mean() - 30) < 5


def _labels(concepts, entity, family):
    rows = concepts[(concepts["entity"] == entity) & (concepts["family"] == family)]
    return rows.set_index("id")["concept"]


def test_planted_concepts_drive_interactions(tmp_path):
    stats = prepare_dataset("demo", SETTINGS, tmp_path / "raw", tmp_path / "data", seed=0)
    validate_canonical(tmp_path / "data")
    inter = pd.read_parquet(tmp_path / "data" / "interactions.parquet")
    concepts = pd.read_parquet(tmp_path / "data" / "concepts.parquet")
    assert {"planted_cluster", "planted_era", "planted_popularity"} == set(concepts["family"])

    item_cluster = _labels(concepts, "item", "planted_cluster")
    user_cluster = _labels(concepts, "user", "planted_cluster")
    hit = item_cluster[inter["item"]].to_numpy() == user_cluster[inter["user"]].to_numpy()
    assert hit.mean() > 2 / SETTINGS["n_clusters"]  # chance is 1/5

    item_era = _labels(concepts, "item", "planted_era")
    user_era = _labels(concepts, "user", "planted_era")
    era_hit = item_era[inter["item"]].to_numpy() == user_era[inter["user"]].to_numpy()
    assert era_hit.mean() > 1.5 / SETTINGS["n_eras"]

    level = _labels(concepts, "item", "planted_popularity")
    items = pd.read_parquet(tmp_path / "data" / "items.parquet").set_index("item")
    mean_pop = items["popularity"].groupby(level[items.index].to_numpy()).mean()
    assert mean_pop["pop_2"] > 2 * mean_pop["pop_0"]

    truth = json.loads((tmp_path / "data" / "ground_truth.json").read_text())
    realised = truth["realised"]["planted_cluster"]
    assert realised["mean_share_on_user_concept"] > 2 * realised["chance_share"]
    assert truth["settings"]["n_clusters"] == 5 and stats["n_users"] == 300


def test_noise_one_removes_the_structure():
    cfg = SyntheticSettings.from_settings({**SETTINGS, "noise": 1.0})
    truth = generate(cfg, 0).extra_json["ground_truth.json"]["realised"]["planted_cluster"]
    assert abs(truth["mean_share_on_user_concept"] - truth["chance_share"]) < 0.05


def test_invalid_settings_are_named():
    with pytest.raises(ValueError, match="cluster_focus"):
        SyntheticSettings.from_settings({"cluster_focus": 1.5})


def test_scales_vectorised():
    cfg = SyntheticSettings(n_users=3000, n_items=2000, interactions_per_user=100)
    inter = generate(cfg, 0).interactions
    assert abs(len(inter) / 3000 - 100) < 10
    assert np.unique(inter["user"]).size == 3000


def test_users_needing_half_the_catalogue_get_distinct_items(monkeypatch):
    """Linear sampler with counts at the n_items // 2 cap and concentrated preferences: the
    rejection rounds leave users short and the Gumbel-top-k completion must still give exactly
    the count, no repeats."""
    monkeypatch.setattr(synthetic, "_DENSE_LIMIT", 0)
    cfg = SyntheticSettings.from_settings(
        {**SETTINGS, "n_users": 50, "n_items": 20, "interactions_per_user": 40,
         "cluster_focus": 1.0, "era_focus": 1.0, "noise": 0.0}
    )  # fmt: skip
    inter = generate(cfg, 3).interactions
    assert not inter.duplicated(["user", "item"]).any()
    assert (inter.groupby("user").size() == 10).all() and inter["user"].nunique() == 50


def test_linear_sampler_matches_the_dense_gumbel_top_k(monkeypatch):
    """Both samplers draw from the same p(i | u) without replacement: the realised concentration
    on every planted family and the item popularity profile agree up to sampling noise."""
    cfg = SyntheticSettings.from_settings({**SETTINGS, "n_users": 2000})
    dense = generate(cfg, 0)
    monkeypatch.setattr(synthetic, "_DENSE_LIMIT", 0)
    linear = generate(cfg, 0)
    assert len(linear.interactions) == len(dense.interactions)
    for family, want in dense.extra_json["ground_truth.json"]["realised"].items():
        got = linear.extra_json["ground_truth.json"]["realised"][family]
        assert abs(got["mean_share_on_user_concept"] - want["mean_share_on_user_concept"]) < 0.01
    share = [np.bincount(r.interactions["item"], minlength=200) / len(r.interactions)
             for r in (dense, linear)]  # fmt: skip
    assert np.abs(share[0] - share[1]).sum() < 0.1
