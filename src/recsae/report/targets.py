"""Paths of the report stage: the tables and figures a config asks for, the result files they are
built from, and the JSON settings the ``recsae report`` subcommand receives.

Layout (``results/`` = ``recsae.workflow.RESULTS``)::

    results/tables/{recommenders,beta,best_points,pareto,interventions,planted,methods}.{md,csv,html}
    results/tables/sweep.csv                               # tidy: one row per SAE sweep point
    results/figures/{fidelity_sparsity,ms_coverage}.{png,svg}          # one panel row per pair
    results/figures/{dataset}/{model}/{neuron_cards,interventions}.{png,svg}  # per SAE pair
    results/explorer/index.html, results/explorer/{dataset}/{model}.html      # neuron explorer
"""

from __future__ import annotations

from recsae import workflow as wf

EXPLORER_DIR = "explorer"
TABLES = ("recommenders", "beta", "best_points", "pareto", "interventions", "planted", "methods")
TABLE_FORMATS = ("md", "csv", "html")
SWEEP_TABLE = "sweep"  # csv only: too wide for markdown
SWEEP_FIGURES = ("fidelity_sparsity", "ms_coverage")
PAIR_FIGURES = ("neuron_cards", "interventions")
FIGURE_FORMATS = ("png", "svg")
REPORT_DEFAULTS = {
    "best_point_metric": "rbo30",
    "best_point_goal": "max",
    "pareto_fidelity": "rbo30",
    "pareto_sparsity": "l0_items",
    "neuron_cards": 6,
    "neuron_card_order": "auroc",
    "neuron_card_items": 8,
    "methods_filter_level": -1.0,
}


def tables_dir(results: str = wf.RESULTS) -> str:
    return f"{results}/tables"


def figures_dir(results: str = wf.RESULTS) -> str:
    return f"{results}/figures"


def table_paths(results: str = wf.RESULTS) -> dict[str, str]:
    """{output name: path} of every table file, e.g. ``beta_md`` -> ``results/tables/beta.md``;
    the tidy sweep table is ``sweep_csv``."""
    out = {f"{t}_{f}": f"{tables_dir(results)}/{t}.{f}" for t in TABLES for f in TABLE_FORMATS}
    out[f"{SWEEP_TABLE}_csv"] = f"{tables_dir(results)}/{SWEEP_TABLE}.csv"
    return out


def table_outputs(results: str = wf.RESULTS) -> list[tuple[str, str, str, str]]:
    """(output name, path, table, format) of every table file (see ``table_paths``)."""
    return [(name, path, *name.rsplit("_", 1)) for name, path in table_paths(results).items()]


def sweep_figure_paths(results: str = wf.RESULTS) -> dict[str, str]:
    """{output name: path} of the cross-pair sweep figures, e.g. ``ms_coverage_png``."""
    return {
        f"{name}_{fmt}": f"{figures_dir(results)}/{name}.{fmt}"
        for name in SWEEP_FIGURES
        for fmt in FIGURE_FORMATS
    }


def pair_figure_path(
    name: str, fmt: str, dataset: str = "{dataset}", model: str = "{model}", results=wf.RESULTS
) -> str:
    """Path of one per-pair figure (a Snakemake pattern with the default wildcards)."""
    return f"{figures_dir(results)}/{dataset}/{model}/{name}.{fmt}"


def explorer_index_path(results: str = wf.RESULTS) -> str:
    """The neuron explorer's index page."""
    return f"{results}/{EXPLORER_DIR}/index.html"


def explorer_page_path(dataset: str = "{dataset}", model: str = "{model}", results=wf.RESULTS):
    """The neuron explorer page of one (dataset, model) (a Snakemake pattern by default)."""
    return f"{results}/{EXPLORER_DIR}/{dataset}/{model}.html"


def report_settings(config: dict) -> dict:
    """What ``recsae report`` needs of a validated config: the report block (with defaults),
    the resolved metrics settings (their thresholds are named in the tables), the recommender
    pairs and every SAE sweep point, in config order."""
    from recsae.metrics.evaluate import resolve_metrics_config

    return {
        "report": {**REPORT_DEFAULTS, **config.get("report", {})},
        "metrics": resolve_metrics_config(config.get("metrics")),
        "recommenders": [list(pair) for pair in wf.recommender_pairs(config)],
        "sae_points": [
            [dataset, model, path]
            for dataset, model in wf.sae_pairs(config)
            for path in wf.sae_points(config, dataset, model)
        ],
    }


def aggregate_inputs(config: dict) -> list[str]:
    """Every result file the tables are built from."""
    files = wf.recommender_targets(config)
    for directory in wf.sae_dirs(config):
        files += [
            f"{directory}/{n}" for n in ("metrics.json", "interventions.json", "train_log.json")
        ]
    return files


def pair_sae_files(config: dict, dataset: str, model: str, names=("sae.pt", "metrics.json")):
    """The given files of every sweep point of one (dataset, model) pair."""
    base = f"{wf.RESULTS}/{dataset}/{model}/sae"
    return [
        f"{base}/{path}/{name}" for path in wf.sae_points(config, dataset, model) for name in names
    ]


def report_targets(config: dict) -> list[str]:
    """Every table and figure ``rule all`` must request for the report."""
    out = list(table_paths().values())
    pairs = wf.sae_pairs(config)
    if pairs:
        out += list(sweep_figure_paths().values())
    out += [
        pair_figure_path(name, fmt, dataset, model)
        for dataset, model in pairs
        for name in PAIR_FIGURES
        for fmt in FIGURE_FORMATS
    ]
    if pairs:
        out += [explorer_index_path()]
        out += [explorer_page_path(dataset, model) for dataset, model in pairs]
    return out
