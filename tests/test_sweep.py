"""Sweep expansion and canonical sweep-point paths."""

import re

import pytest

from recsae.sae.config import SAE_DEFAULTS
from recsae.sweep import (
    SAE_WILDCARD_REGEX,
    expand_sweep,
    format_value,
    parse_point_path,
    point_from_path,
    point_path,
    seeded_points,
    strip_seed,
    sweep_points,
)

PAPER_LIKE = {
    "grids": {
        "paper_beta": {"beta": [0, 1, 2, 5, 10]},
        "wide": {"expansion": [4, 8], "beta": [0, 1]},
        "topk": {"variant": ["topk", "batchtopk"], "k": [4, 8], "expansion": 4},
    },
    "points": [
        {"variant": "matryoshka", "matryoshka_base": "batchtopk", "k": 8, "expansion": 4},
        {"beta": 1.0},
    ],
}


@pytest.mark.parametrize(
    "value, text",
    [
        (1.0, "1"),
        (1, "1"),
        (0.01, "0.01"),
        (1e-5, "1e-05"),
        (1.27e-05, "1.27e-05"),
        (2.5, "2.5"),
        (-3.0, "-3"),
        (1e16, "1e+16"),
        (True, "true"),
        (False, "false"),
        (None, "none"),
        ("topk", "topk"),
        ([0.25, 0.5, 1.0], "0.25,0.5,1"),
        ([0.5], "0.5,"),
    ],
)
def test_format_value_is_canonical(value, text):
    assert format_value(value) == text
    parsed = parse_point_path(f"x~{text}")["x"]
    assert parsed == value and format_value(parsed) == text


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), "a/b", "x~y", "1.5", "true", "", {"a": 1}]
)
def test_unformattable_values_raise(bad):
    with pytest.raises(ValueError):
        format_value(bad)


def test_point_path_order_and_round_trip():
    point = {**SAE_DEFAULTS, "beta": 1.0, "width": 64, "variant": "topk", "lambda_kl": 1e-5}
    path = point_path(point, ["beta", "lambda_kl", "variant", "width"])
    assert path == "variant~topk/width~64/beta~1/lambda_kl~1e-05"
    assert point_path(point, ["width", "beta", "variant", "lambda_kl"]) == path
    assert parse_point_path(path) == {"variant": "topk", "width": 64, "beta": 1, "lambda_kl": 1e-5}
    assert point_path(point, []) == "default" and parse_point_path("default") == {}
    assert re.fullmatch(SAE_WILDCARD_REGEX, path) and re.fullmatch(SAE_WILDCARD_REGEX, "default")
    assert not re.fullmatch(SAE_WILDCARD_REGEX, "beta~1/sae.pt")


def test_grid_is_cartesian_and_points_merge_over_defaults():
    points = expand_sweep({"grid": {"beta": [0, 1], "k": [4, 8, 16]}}, SAE_DEFAULTS)
    assert len(points) == 6
    assert {(p["beta"], p["k"]) for p in points} == {(b, k) for b in (0.0, 1.0) for k in (4, 8, 16)}
    assert all(p["variant"] == "relu" and isinstance(p["beta"], float) for p in points)
    assert expand_sweep({}, SAE_DEFAULTS) == [SAE_DEFAULTS]


def test_named_grids_points_and_dedup():
    paths = sweep_points(PAPER_LIKE, SAE_DEFAULTS)
    assert len(paths) == 5 + 4 + 4 + 1  # {"beta": 1.0} duplicates paper_beta's beta~1
    assert list(paths)[:5] == [f"beta~{b}" for b in (0, 1, 2, 5, 10)]
    assert "expansion~8/beta~0" in paths
    assert "variant~batchtopk/expansion~4/k~8" in paths
    matryoshka = paths["variant~matryoshka/expansion~4/k~8/matryoshka_base~batchtopk"]
    assert matryoshka["width"] is None and matryoshka["expansion"] == 4.0
    assert len(expand_sweep({"grids": [{"beta": [0, 1]}, {"beta": [1, 2]}]}, SAE_DEFAULTS)) == 3


def test_paths_are_stable_and_rebuild_points():
    first = sweep_points(PAPER_LIKE, SAE_DEFAULTS)
    reordered = {
        "points": PAPER_LIKE["points"],
        "grids": {name: dict(reversed(list(g.items()))) for name, g in PAPER_LIKE["grids"].items()},
    }
    assert sweep_points(reordered, SAE_DEFAULTS) == first
    for path, point in first.items():
        assert point_from_path(path, SAE_DEFAULTS) == point
    smaller = sweep_points(
        {"grids": {"paper_beta": PAPER_LIKE["grids"]["paper_beta"]}}, SAE_DEFAULTS
    )
    assert set(smaller) <= set(first)


def test_width_and_expansion_exclude_each_other():
    defaults = {**SAE_DEFAULTS, "expansion": 1.1}
    point = point_from_path("width~64", defaults)
    assert point["width"] == 64 and point["expansion"] is None
    with pytest.raises(ValueError, match="not both"):
        expand_sweep({"points": [{"width": 64, "expansion": 2}]}, defaults)


def test_errors_name_the_key():
    with pytest.raises(ValueError, match="bta"):
        expand_sweep({"grid": {"bta": [1]}}, SAE_DEFAULTS)
    with pytest.raises(ValueError, match="gird"):
        expand_sweep({"gird": {"beta": [1]}}, SAE_DEFAULTS)
    with pytest.raises(ValueError, match="empty"):
        expand_sweep({"grid": {"beta": []}}, SAE_DEFAULTS)
    with pytest.raises(ValueError, match="key~value"):
        parse_point_path("beta=1")


def test_seeded_points_repeat_every_point_per_seed():
    points = sweep_points({"grid": {"beta": [0, 5]}, "points": [{}]}, SAE_DEFAULTS)
    seeded = seeded_points(points, [0, 2])
    assert list(seeded) == [
        "beta~0/seed~0",
        "beta~0/seed~2",
        "beta~5/seed~0",
        "beta~5/seed~2",
        "seed~0",
        "seed~2",
    ]
    for path, point in seeded.items():
        assert point == {**points[strip_seed(path)], "seed": int(path[-1])}
        assert point_from_path(path, SAE_DEFAULTS) == point
        assert re.fullmatch(SAE_WILDCARD_REGEX, path)
    assert seeded_points(points, []) is points and seeded_points(points, None) is points
    assert strip_seed("variant~topk/k~4/seed~1") == "variant~topk/k~4"
    assert strip_seed("seed~3") == "default" and strip_seed("beta~1") == "beta~1"
    with pytest.raises(ValueError, match="repeats"):
        seeded_points(points, [1, 1])
    with pytest.raises(ValueError, match="sets seed itself"):
        seeded_points(sweep_points({"grid": {"seed": [1]}}, SAE_DEFAULTS), [0])
