from recsae.report import targets as report_paths


report: "../report/workflow.rst"


localrules:
    aggregate_results,
    render_sweep_figures,
    render_intervention_curves,


REPORT_SETTINGS = report_paths.report_settings(config)
REPORT_PAIRS = wf.sae_pairs(config)


def table_output(name, path):
    """A table file; the html (viewed) and csv (downloaded) versions go into the report."""
    table, fmt = name.rsplit("_", 1)
    if fmt == "md":
        return path
    return report(
        path,
        caption=f"../report/table_{table}.rst",
        category="Tables",
        subcategory=table,
        labels={"table": table, "format": fmt},
    )


def figure_output(name, path, category, subcategory):
    figure, fmt = name.rsplit("_", 1)
    return report(
        path,
        caption=f"../report/{figure}.rst",
        category=category,
        subcategory=subcategory,
        labels={"figure": figure, "format": fmt},
    )


rule aggregate_results:
    input:
        report_paths.aggregate_inputs(config),
    output:
        **{name: table_output(name, path) for name, path in report_paths.table_paths().items()},
    params:
        settings=as_json(REPORT_SETTINGS),
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/report/aggregate.log",
    benchmark:
        f"{BENCH}/report/aggregate.tsv"
    shell:
        "recsae report --part tables --results-dir {RESULTS} --out-dir {RESULTS}/tables"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule render_sweep_figures:
    input:
        sweep=report_paths.table_paths()["sweep_csv"],
    output:
        **{
            name: figure_output(name, path, "Sweep", name.rsplit("_", 1)[0])
            for name, path in report_paths.sweep_figure_paths().items()
        },
    params:
        settings=as_json({"report": REPORT_SETTINGS["report"]}),
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/report/sweep_figures.log",
    benchmark:
        f"{BENCH}/report/sweep_figures.tsv"
    shell:
        "recsae report --part sweep-figures --results-dir {RESULTS} --out-dir {RESULTS}/figures"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule render_intervention_curves:
    input:
        sweep=report_paths.table_paths()["sweep_csv"],
        interventions=report_paths.table_paths()["interventions_csv"],
    output:
        **{
            f"interventions_{fmt}": figure_output(
                f"interventions_{fmt}",
                report_paths.pair_figure_path("interventions", fmt),
                "{dataset}",
                "{model}",
            )
            for fmt in report_paths.FIGURE_FORMATS
        },
    params:
        settings=as_json({"report": REPORT_SETTINGS["report"]}),
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/report/{{dataset}}/{{model}}/interventions.log",
    benchmark:
        f"{BENCH}/report/{{dataset}}/{{model}}/interventions.tsv"
    wildcard_constraints:
        dataset=wf.name_regex(sorted({d for d, _ in REPORT_PAIRS})),
        model=wf.name_regex(sorted({m for _, m in REPORT_PAIRS})),
    shell:
        "recsae report --part interventions --results-dir {RESULTS}"
        " --out-dir {RESULTS}/figures/{wildcards.dataset:q}/{wildcards.model:q}"
        " --dataset {wildcards.dataset:q} --model {wildcards.model:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule render_neuron_cards:
    input:
        lambda w: report_paths.pair_sae_files(config, w.dataset, w.model),
        sweep=report_paths.table_paths()["sweep_csv"],
        model=f"{RESULTS}/{{dataset}}/{{model}}/model.pt",
        items_table=f"{RESULTS}/{{dataset}}/data/items.parquet",
        concepts_table=f"{RESULTS}/{{dataset}}/data/concepts.parquet",
    output:
        **{
            f"neuron_cards_{fmt}": figure_output(
                f"neuron_cards_{fmt}",
                report_paths.pair_figure_path("neuron_cards", fmt),
                "{dataset}",
                "{model}",
            )
            for fmt in report_paths.FIGURE_FORMATS
        },
    params:
        settings=as_json({"report": REPORT_SETTINGS["report"]}),
        device=config["resources"]["device"],
    threads: config["resources"]["threads_per_job"]
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/report/{{dataset}}/{{model}}/neuron_cards.log",
    benchmark:
        f"{BENCH}/report/{{dataset}}/{{model}}/neuron_cards.tsv"
    wildcard_constraints:
        dataset=wf.name_regex(sorted({d for d, _ in REPORT_PAIRS})),
        model=wf.name_regex(sorted({m for _, m in REPORT_PAIRS})),
    shell:
        "recsae report --part neuron-cards --results-dir {RESULTS}"
        " --out-dir {RESULTS}/figures/{wildcards.dataset:q}/{wildcards.model:q}"
        " --dataset {wildcards.dataset:q} --model {wildcards.model:q}"
        " --settings {params.settings:q} --device {params.device} > {log:q} 2>&1"
