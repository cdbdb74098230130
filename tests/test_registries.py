"""The registries: SAE variants (schema enum and settings, figure markers, activations), methods
(schema enum, signed) and dataset sources (their settings composed into the schema)."""

import pytest
import torch

from recsae.config import section_schema
from recsae.report.figures import VARIANT_MARKERS
from recsae.sae.config import SAE_DEFAULTS, SAEConfig, SAEPoint
from recsae.sae.model import build_sae
from recsae.sae.variants import VARIANTS


def test_schema_variant_enum_equals_the_registry():
    properties = section_schema("$defs.sae_settings")["properties"]
    assert properties["variant"]["enum"] == list(VARIANTS)


def test_figure_markers_come_from_the_registry():
    assert VARIANT_MARKERS == {name: v.marker for name, v in VARIANTS.items()}
    assert len(set(VARIANT_MARKERS.values())) == len(VARIANT_MARKERS)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_settings_are_sae_settings_with_their_defaults(name):
    properties = section_schema("$defs.sae_settings")["properties"]
    for key, spec in VARIANTS[name].settings.items():
        assert properties[key] == spec
        assert SAE_DEFAULTS[key] == spec["default"]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_variant_builds_an_sae_whose_activation_is_sparse_and_nonnegative(name):
    point = SAEPoint.resolve({"variant": name, "width": 12, "k": 3}, input_dim=6)
    config = SAEConfig.from_point(point, input_dim=6)
    sae = build_sae(config, seed=0).eval()
    z = sae.encode(torch.randn(20, 6, generator=torch.Generator().manual_seed(1)))
    assert z.shape == (20, 12)
    assert (z >= 0).all()
    if name == "topk":
        assert ((z > 0).sum(dim=1) <= 3).all()


def test_ranked_variants_are_the_rank_selecting_ones():
    ranked = {n for n in VARIANTS if SAEPoint.resolve({"variant": n}, 8).ranked}
    assert ranked == {"topk", "batchtopk"}
    assert SAEPoint.resolve({"variant": "matryoshka", "matryoshka_base": "batchtopk"}, 8).ranked


def test_schema_method_enum_equals_the_registry():
    from recsae.methods import METHODS

    properties = section_schema("$defs.sae_settings")["properties"]
    assert properties["method"]["enum"] == ["sae", *METHODS]
    assert [name for name, spec in METHODS.items() if spec.signed] == [
        "identity",
        "pca",
        "ica",
        "random",
    ]


def test_dataset_entry_composes_every_source_settings():
    from dataclasses import fields

    from recsae.data.registry import dataset_names, get_dataset
    from recsae.data.synthetic import SyntheticSettings

    entry = section_schema("datasets")["additionalProperties"]["properties"]
    for name in dataset_names():
        for key, spec in get_dataset(name).settings.items():
            assert entry[key] == spec, (name, key)
    assert set(get_dataset("synthetic").settings) == {f.name for f in fields(SyntheticSettings)}
    shared = {"source", "archive", "path", "min_rating", "kcore", "download", "split"}
    declared = set().union(*(get_dataset(n).settings for n in dataset_names()))
    assert set(entry) == shared | declared
