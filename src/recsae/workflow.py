"""What a validated config asks the workflow to build: the (dataset, model) pairs, the SAE sweep
points of each pair, and the target paths. The Snakefile and the rules only call these."""

from __future__ import annotations

import re

from recsae.data.tables import CANONICAL_TABLES, SPLIT_PARTS
from recsae.sae.config import SAE_DEFAULTS
from recsae.sae.presets import apply_presets
from recsae.sweep import SAE_WILDCARD_REGEX, point_from_path, sweep_points

RESULTS = "results"


def _pairs(groups: list[dict]) -> list[tuple[str, str]]:
    """Distinct (dataset, model) pairs of a list of {datasets: [...], models: [...]}, in order."""
    out: list[tuple[str, str]] = []
    for group in groups:
        for dataset in group["datasets"]:
            for model in group["models"]:
                if (dataset, model) not in out:
                    out.append((dataset, model))
    return out


def recommender_pairs(config: dict) -> list[tuple[str, str]]:
    """(dataset, model) pairs whose recommender is trained and evaluated."""
    return _pairs(config["experiments"] + config["sae"]["targets"])


def sae_pairs(config: dict) -> list[tuple[str, str]]:
    """(dataset, model) pairs that get an SAE sweep."""
    return _pairs(config["sae"]["targets"])


def sae_defaults(config: dict, dataset: str, model: str) -> dict:
    """Full SAE config before the sweep: package defaults < sae.defaults < per-dataset < per-model
    < per-pair ("dataset/model"); a layer that names a ``preset`` lays down the preset's settings
    for the model's family just below its own keys (``recsae.sae.presets``)."""
    overrides = config["sae"]["overrides"]
    layers = [
        SAE_DEFAULTS,
        config["sae"]["defaults"],
        overrides["datasets"].get(dataset, {}),
        overrides["models"].get(model, {}),
        overrides["pairs"].get(f"{dataset}/{model}", {}),
    ]
    family = None
    if any(layer.get("preset") is not None for layer in layers):
        family = model_family(config, model)
    return apply_presets(layers, family)


def model_family(config: dict, model: str) -> str:
    """The ``scorer_kind`` ("dot" or "pairwise") of the recommender that config model ``model``
    names: the family that selects an SAE preset."""
    import recsae.recommenders  # noqa: F401  (registers the models)
    from recsae.recommenders.base import model_class

    return model_class(config["models"][model]["model"]).scorer_kind


def sae_points(config: dict, dataset: str, model: str) -> dict[str, dict]:
    """{sweep path: full SAE config} of one (dataset, model) pair."""
    return sweep_points(config["sae"]["sweep"], sae_defaults(config, dataset, model))


def sae_point(config: dict, dataset: str, model: str, path: str) -> dict:
    """The full SAE config that one sweep path names."""
    return point_from_path(path, sae_defaults(config, dataset, model))


def dataset_settings(config: dict, dataset: str) -> dict:
    """A dataset's entry without its ``split`` block (so a split change re-runs only the split)."""
    return {k: v for k, v in config["datasets"][dataset].items() if k != "split"}


def split_settings(config: dict, dataset: str) -> dict:
    return config["datasets"][dataset]["split"]


def model_settings(config: dict, model: str) -> dict:
    return config["models"][model]


def fetchable_datasets(config: dict) -> list[str]:
    """Datasets the suite fetches and prepares itself (``source: custom`` ones come from a rule of
    the user's that writes the canonical tables)."""
    return [name for name, s in config["datasets"].items() if s["source"] != "custom"]


def custom_datasets(config: dict) -> list[str]:
    """Datasets whose canonical tables a user rule writes (``source: custom``)."""
    return [name for name, s in config["datasets"].items() if s["source"] == "custom"]


def name_regex(names: list[str]) -> str:
    """A wildcard constraint matching exactly these names."""

    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def sae_dirs(config: dict) -> list[str]:
    return [
        f"{RESULTS}/{dataset}/{model}/sae/{path}"
        for dataset, model in sae_pairs(config)
        for path in sae_points(config, dataset, model)
    ]


def recommender_targets(config: dict) -> list[str]:
    return [f"{RESULTS}/{d}/{m}/metrics.json" for d, m in recommender_pairs(config)]


def sae_targets(config: dict) -> list[str]:
    return [
        f"{d}/{name}" for d in sae_dirs(config) for name in ("metrics.json", "interventions.json")
    ]


def split_inputs(wildcards) -> dict[str, str]:
    """Input files of a job that reads the prepared dataset and its split (Snakemake unpack)."""
    base = f"{RESULTS}/{wildcards.dataset}"
    return {
        "data_stats": f"{base}/data/stats.json",
        "concepts": f"{base}/data/concepts.parquet",
        **{f"{part}_split": f"{base}/split/{part}.parquet" for part in SPLIT_PARTS},
    }


def all_targets(config: dict) -> list[str]:
    """Everything ``rule all`` asks for: recommenders, SAE metrics, tables and figures."""
    from recsae.report.targets import report_targets

    return recommender_targets(config) + sae_targets(config) + report_targets(config)


__all__ = [
    "CANONICAL_TABLES",
    "SPLIT_PARTS",
    "all_targets",
    "split_inputs",
    "SAE_WILDCARD_REGEX",
    "custom_datasets",
    "dataset_settings",
    "fetchable_datasets",
    "model_settings",
    "name_regex",
    "recommender_pairs",
    "recommender_targets",
    "sae_dirs",
    "sae_pairs",
    "sae_point",
    "sae_points",
    "sae_targets",
    "split_settings",
]
