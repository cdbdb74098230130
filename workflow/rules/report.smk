report: "../report/workflow.rst"


localrules:
    aggregate_results,
    render_sweep_figures,
    render_intervention_curves,
    explorer_index,


# Folders are params functions of recsae.paths, the module that names the outputs as well.
REPORT_SETTINGS = wf.report_settings(config)
REPORT_PAIRS = wf.sae_pairs(config)
REPORT_SLICE = as_json({"report": REPORT_SETTINGS["report"]})


rule aggregate_results:
    input:
        wf.aggregate_inputs(config),
    output:
        # markdown stays out of the HTML report; html (viewed) and csv (downloaded) go in
        **{name: path for name, path, _, fmt in paths.table_outputs() if fmt == "md"},
        **{
            name: report(
                path,
                caption=f"../report/table_{table}.rst",
                category="Tables",
                subcategory=table,
                labels={"table": table, "format": fmt},
            )
            for name, path, table, fmt in paths.table_outputs()
            if fmt != "md"
        },
    params:
        settings=as_json(REPORT_SETTINGS),
        results=lambda w: paths.RESULTS,
        out_dir=lambda w: paths.tables_dir(),
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/report/aggregate.log",
    benchmark:
        f"{BENCH}/report/aggregate.tsv"
    shell:
        "recsae report --part tables --results-dir {params.results:q} --out-dir {params.out_dir:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule render_sweep_figures:
    input:
        sweep=paths.table_paths()["sweep_csv"],
    output:
        **{
            name: report(
                path,
                caption=f"../report/{name.rsplit('_', 1)[0]}.rst",
                category="Sweep",
                subcategory=name.rsplit("_", 1)[0],
                labels={"figure": name.rsplit("_", 1)[0], "format": name.rsplit("_", 1)[1]},
            )
            for name, path in paths.sweep_figure_paths().items()
        },
    params:
        settings=REPORT_SLICE,
        results=lambda w: paths.RESULTS,
        out_dir=lambda w: paths.figures_dir(),
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/report/sweep_figures.log",
    benchmark:
        f"{BENCH}/report/sweep_figures.tsv"
    shell:
        "recsae report --part sweep-figures --results-dir {params.results:q}"
        " --out-dir {params.out_dir:q} --settings {params.settings:q} > {log:q} 2>&1"


rule render_intervention_curves:
    input:
        sweep=paths.table_paths()["sweep_csv"],
        interventions=paths.table_paths()["interventions_csv"],
    output:
        **{
            f"interventions_{fmt}": report(
                paths.pair_figure_path("interventions", fmt),
                caption="../report/interventions.rst",
                category="{dataset}",
                subcategory="{model}",
                labels={"figure": "interventions", "format": fmt},
            )
            for fmt in paths.FIGURE_FORMATS
        },
    params:
        settings=REPORT_SLICE,
        results=lambda w: paths.RESULTS,
        out_dir=lambda w: paths.pair_figure_dir(w.dataset, w.model),
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
        "recsae report --part interventions --results-dir {params.results:q}"
        " --out-dir {params.out_dir:q} --dataset {wildcards.dataset:q} --model {wildcards.model:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule render_neuron_cards:
    input:
        lambda w: wf.pair_sae_files(config, w.dataset, w.model),
        sweep=paths.table_paths()["sweep_csv"],
        model=f"{paths.model_dir()}/model.pt",
        items_table=f"{paths.data_dir()}/items.parquet",
        concepts_table=f"{paths.data_dir()}/concepts.parquet",
    output:
        **{
            f"neuron_cards_{fmt}": report(
                paths.pair_figure_path("neuron_cards", fmt),
                caption="../report/neuron_cards.rst",
                category="{dataset}",
                subcategory="{model}",
                labels={"figure": "neuron cards", "format": fmt},
            )
            for fmt in paths.FIGURE_FORMATS
        },
    params:
        settings=REPORT_SLICE,
        results=lambda w: paths.RESULTS,
        out_dir=lambda w: paths.pair_figure_dir(w.dataset, w.model),
        device=config["device"],
    threads: config["threads_per_job"]
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
        "recsae report --part neuron-cards --results-dir {params.results:q}"
        " --out-dir {params.out_dir:q} --dataset {wildcards.dataset:q} --model {wildcards.model:q}"
        " --settings {params.settings:q} --device {params.device} > {log:q} 2>&1"


rule render_explorer:
    input:
        lambda w: wf.pair_sae_files(
            config, w.dataset, w.model, ("sae.pt", "metrics.json", "interventions.json")
        ),
        unpack(wf.split_inputs),
        model=f"{paths.model_dir()}/model.pt",
        items_table=f"{paths.data_dir()}/items.parquet",
        users_table=f"{paths.data_dir()}/users.parquet",
    output:
        report(
            paths.explorer_page_path(),
            caption="../report/explorer.rst",
            category="{dataset}",
            subcategory="{model}",
            labels={"figure": "neuron explorer", "format": "html"},
        ),
    params:
        settings=as_json({"sae_points": REPORT_SETTINGS["sae_points"]}),
        results=lambda w: paths.RESULTS,
        out_dir=lambda w: paths.explorer_page_dir(w.dataset),
        device=config["device"],
    threads: config["threads_per_job"]
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/report/{{dataset}}/{{model}}/explorer.log",
    benchmark:
        f"{BENCH}/report/{{dataset}}/{{model}}/explorer.tsv"
    wildcard_constraints:
        dataset=wf.name_regex(sorted({d for d, _ in REPORT_PAIRS})),
        model=wf.name_regex(sorted({m for _, m in REPORT_PAIRS})),
    shell:
        "recsae report --part explorer --results-dir {params.results:q}"
        " --out-dir {params.out_dir:q} --dataset {wildcards.dataset:q} --model {wildcards.model:q}"
        " --settings {params.settings:q} --device {params.device} > {log:q} 2>&1"


rule explorer_index:
    input:
        [paths.explorer_page_path(d, m) for d, m in REPORT_PAIRS],
    output:
        paths.explorer_index_path(),
    params:
        settings=as_json({"sae_points": REPORT_SETTINGS["sae_points"]}),
        results=lambda w: paths.RESULTS,
        out_dir=lambda w: paths.explorer_dir(),
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/report/explorer_index.log",
    benchmark:
        f"{BENCH}/report/explorer_index.tsv"
    shell:
        "recsae report --part explorer-index --results-dir {params.results:q}"
        " --out-dir {params.out_dir:q} --settings {params.settings:q} > {log:q} 2>&1"
