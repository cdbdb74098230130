"""Every path of ``resources/`` and ``results/``: the Snakemake rules, the stages and the report
build their paths here and nowhere else.

Each function returns a path as a string under ``results`` (default ``RESULTS``, relative to the
working directory; the report passes the results folder it was given). Called without a dataset,
model or sweep point, a function returns the Snakemake pattern (``{dataset}``, ``{model}``,
``{sae}``)::

    resources/raw/{dataset}/                       # fetched raw files + MANIFEST.json
    results/{dataset}/data/{interactions,items,users,concepts}.parquet, stats.json
    results/{dataset}/split/{train,valid,test}.parquet, stats.json
    results/{dataset}/{model}/{model.pt,embeddings.npz,train_log.json,metrics.json,
                              probe_ceiling.json}
    results/{dataset}/{model}/sae/{sae}/{sae.pt,train_log.json,metrics.json,interventions.json}
    results/tables/{recommenders,beta,best_points,pareto,interventions,planted,methods}.{md,csv,html}
    results/tables/sweep.csv                               # tidy: one row per SAE sweep point
    results/figures/{fidelity_sparsity,ms_coverage}.{png,svg}           # one panel row per pair
    results/figures/{dataset}/{model}/{neuron_cards,interventions}.{png,svg}   # per SAE pair
    results/explorer/index.html, results/explorer/{dataset}/{model}.html       # neuron explorer
    results/logs/..., results/benchmarks/...                   # per job, mirroring the above
"""

from __future__ import annotations

from pathlib import Path

from recsae.data.tables import CANONICAL_TABLES as CANONICAL_TABLES  # the rules' table names
from recsae.data.tables import SPLIT_PARTS

RESULTS = "results"
RAW_DIR = "resources/raw"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"

TABLES = ("recommenders", "beta", "best_points", "pareto", "interventions", "planted", "methods")
TABLE_FORMATS = ("md", "csv", "html")
SWEEP_TABLE = "sweep"  # csv only: too wide for markdown
SWEEP_FIGURES = ("fidelity_sparsity", "ms_coverage")
PAIR_FIGURES = ("neuron_cards", "interventions")
FIGURE_FORMATS = ("png", "svg")

DATASET, MODEL, SAE = "{dataset}", "{model}", "{sae}"
Root = str | Path


def raw_dir(dataset: str = DATASET) -> str:
    """A dataset's fetched raw files."""
    return f"{RAW_DIR}/{dataset}"


def data_dir(dataset: str = DATASET, results: Root = RESULTS) -> str:
    """A dataset's canonical tables and stats.json."""
    return f"{results}/{dataset}/data"


def split_dir(dataset: str = DATASET, results: Root = RESULTS) -> str:
    """A dataset's train/valid/test parts and stats.json."""
    return f"{results}/{dataset}/split"


def model_dir(dataset: str = DATASET, model: str = MODEL, results: Root = RESULTS) -> str:
    """One recommender's files (model.pt, embeddings.npz, train_log.json, metrics.json,
    probe_ceiling.json)."""
    return f"{results}/{dataset}/{model}"


def sae_dir(
    dataset: str = DATASET, model: str = MODEL, point: str = SAE, results: Root = RESULTS
) -> str:
    """One SAE sweep point's files (sae.pt, train_log.json, metrics.json, interventions.json)."""
    return f"{model_dir(dataset, model, results)}/sae/{point}"


def split_inputs(dataset: str = DATASET, results: Root = RESULTS) -> dict[str, str]:
    """The prepared dataset and split files a training or evaluation job reads."""
    return {
        "data_stats": f"{data_dir(dataset, results)}/stats.json",
        "concepts": f"{data_dir(dataset, results)}/concepts.parquet",
        **{f"{p}_split": f"{split_dir(dataset, results)}/{p}.parquet" for p in SPLIT_PARTS},
    }


def tables_dir(results: Root = RESULTS) -> str:
    return f"{results}/tables"


def figures_dir(results: Root = RESULTS) -> str:
    return f"{results}/figures"


def table_paths(results: Root = RESULTS) -> dict[str, str]:
    """{output name: path} of every table file, e.g. ``beta_md`` -> ``results/tables/beta.md``;
    the tidy sweep table is ``sweep_csv``."""
    out = {f"{t}_{f}": f"{tables_dir(results)}/{t}.{f}" for t in TABLES for f in TABLE_FORMATS}
    out[f"{SWEEP_TABLE}_csv"] = f"{tables_dir(results)}/{SWEEP_TABLE}.csv"
    return out


def table_outputs(results: Root = RESULTS) -> list[tuple[str, str, str, str]]:
    """(output name, path, table, format) of every table file (see ``table_paths``)."""
    return [(name, path, *name.rsplit("_", 1)) for name, path in table_paths(results).items()]


def sweep_figure_paths(results: Root = RESULTS) -> dict[str, str]:
    """{output name: path} of the cross-pair sweep figures, e.g. ``ms_coverage_png``."""
    return {
        f"{name}_{fmt}": f"{figures_dir(results)}/{name}.{fmt}"
        for name in SWEEP_FIGURES
        for fmt in FIGURE_FORMATS
    }


def pair_figure_dir(dataset: str = DATASET, model: str = MODEL, results: Root = RESULTS) -> str:
    return f"{figures_dir(results)}/{dataset}/{model}"


def pair_figure_path(
    name: str, fmt: str, dataset: str = DATASET, model: str = MODEL, results: Root = RESULTS
) -> str:
    """Path of one per-pair figure."""
    return f"{pair_figure_dir(dataset, model, results)}/{name}.{fmt}"


def explorer_dir(results: Root = RESULTS) -> str:
    return f"{results}/explorer"


def explorer_index_path(results: Root = RESULTS) -> str:
    """The neuron explorer's index page."""
    return f"{explorer_dir(results)}/index.html"


def explorer_page_dir(dataset: str = DATASET, results: Root = RESULTS) -> str:
    return f"{explorer_dir(results)}/{dataset}"


def explorer_page_path(dataset: str = DATASET, model: str = MODEL, results: Root = RESULTS) -> str:
    """The neuron explorer page of one (dataset, model)."""
    return f"{explorer_page_dir(dataset, results)}/{model}.html"
