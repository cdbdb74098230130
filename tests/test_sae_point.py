"""SAEPoint: one sweep point resolved once, frozen and typed; its JSON form round-trips, bad keys
fail naming the key, its defaults are the schema's, and older stored points still load. (The
CLI's one-line error for a bad ``--settings`` key: tests/test_reliability.py.)"""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from recsae.sae.config import VARIANT_OPTIONS, SAEPoint
from recsae.sae.variants import VARIANTS

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


def schema_defaults() -> dict:
    """{key: default} of $defs.sae_settings as config/schema.yaml writes it, plus each
    variant's declared settings (read here from the YAML file and the variant modules)."""
    properties = yaml.safe_load(SCHEMA.read_text())["$defs"]["sae_settings"]["properties"]
    out = {key: spec["default"] for key, spec in properties.items()}
    for variant in VARIANTS.values():
        out |= {key: spec["default"] for key, spec in variant.settings.items()}
    return out


def test_defaults_come_from_the_schema():
    point = SAEPoint.resolve({}, 10)
    expected = schema_defaults() | {"width": 11, "aux_k": 5}  # 1.1 * 10 latents, 10 // 2
    assert point.to_dict() == expected
    assert set(point.options) == set(VARIANT_OPTIONS)


def test_fields_and_options_cover_every_setting_once():
    names = [f.name for f in dataclasses.fields(SAEPoint) if f.name != "options"]
    assert sorted(names + list(VARIANT_OPTIONS)) == sorted(schema_defaults())
    assert not set(names) & set(VARIANT_OPTIONS)


@pytest.mark.parametrize(
    "settings",
    [
        {"beta": 5, "expansion": 4},
        {"variant": "matryoshka", "matryoshka_prefixes": [0.5, 1.0], "width": 8},
        {"variant": "jumprelu", "lambda_l0": 0.1, "seed": 3},
        {"method": "pca", "variant": "topk", "k": 2},
    ],
)
def test_to_dict_from_dict_round_trip_through_json(settings):
    point = SAEPoint.resolve(settings, 6)
    stored = json.loads(json.dumps(point.to_dict()))
    assert SAEPoint.from_dict(stored) == point
    if point.method == "sae":  # a signed baseline's width (2 * d) is not its expansion's
        assert SAEPoint.resolve(stored, 6) == point


def test_resolve_is_what_the_settings_say():
    point = SAEPoint.resolve({"variant": "topk", "k": 3, "expansion": 2.0, "beta": 0}, 5)
    assert (point.variant, point.k, point.width, point.beta, point.aux_k) == ("topk", 3, 10, 0, 2)
    assert point.ranked
    assert SAEPoint.resolve({"method": "identity"}, 5).width == 10  # signed: 2 * d
    assert SAEPoint.resolve({"preset": "paper"}, 4, "dot").input_scaling == "minmax_batch"


def test_a_point_is_frozen():
    point = SAEPoint.resolve({"variant": "matryoshka"}, 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.beta = 2.0
    with pytest.raises(TypeError):
        point.options["matryoshka_base"] = "batchtopk"
    assert isinstance(point.options["matryoshka_prefixes"], tuple)
    assert point.to_dict()["matryoshka_prefixes"] == [0.25, 0.5, 1.0]


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"bta": 1.0}, "bta"),
        ({"k": 0, "variant": "topk"}, "'k'"),
        ({"lr": "fast"}, "'lr'"),
        ({"variant": "gated"}, "'variant'"),
        ({"method": "pca", "variant": "batchtopk"}, "'variant'"),
    ],
)
def test_bad_settings_name_the_key(settings, key):
    with pytest.raises(ValueError, match=key):
        SAEPoint.resolve(settings, 8)
    stored = {**SAEPoint.resolve({}, 8).to_dict(), **settings}
    with pytest.raises(ValueError, match=key):
        SAEPoint.from_dict(stored)


def test_from_dict_needs_a_resolved_width():
    with pytest.raises(ValueError, match="'width'"):
        SAEPoint.from_dict({"width": None})


def test_an_older_stored_point_loads_with_the_new_keys_at_their_defaults():
    """A checkpoint written before the variant registry: no JumpReLU settings, keys in the order
    of that time."""
    older = {
        "method": "sae", "variant": "topk", "width": 22, "expansion": 1.1, "k": 4, "tied": True,
        "standardize": True, "normalize_decoder": "unit_norm", "matryoshka_prefixes": [0.5, 1.0],
        "matryoshka_base": "relu", "threshold_momentum": 0.01, "alpha": 0.1, "beta": 5.0,
        "lambda_kl": 0.01, "rho": 0.05, "lambda_l1": 0.0, "aux_k": 10, "aux_k_coef": 0.03125,
        "dead_steps_threshold": 50, "pred_loss": "bce", "negatives_per_positive": 1,
        "lr": 0.003, "batch_size": 256, "epochs": 300, "holdout_fraction": 0.2, "preset": None,
        "pre_bias": True, "input_scaling": "none", "batching": "independent",
        "pred_pairs": "with_negatives", "seed": 0,
    }  # fmt: skip
    point = SAEPoint.from_dict(older)
    assert (point.variant, point.width, point.beta, point.aux_k) == ("topk", 22, 5.0, 10)
    assert point.options["lambda_l0"] == schema_defaults()["lambda_l0"]
    assert point.options["matryoshka_prefixes"] == (0.5, 1.0)
