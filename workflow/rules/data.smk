rule fetch_dataset:
    output:
        manifest="resources/raw/{dataset}/MANIFEST.json",
    params:
        settings=lambda w: as_json(wf.dataset_settings(config, w.dataset)),
        mirror=config["mirror"] or "",
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/{{dataset}}/fetch.log",
    wildcard_constraints:
        dataset=wf.name_regex(wf.fetchable_datasets(config)),
    shell:
        "recsae fetch --dataset {wildcards.dataset:q} --settings {params.settings:q}"
        " --raw-dir resources/raw/{wildcards.dataset:q} --mirror {params.mirror:q} > {log:q} 2>&1"


rule prepare_dataset:
    input:
        manifest=rules.fetch_dataset.output.manifest,
    output:
        **{f"{name}_table": f"{RESULTS}/{{dataset}}/data/{name}.parquet" for name in wf.CANONICAL_TABLES},
        stats=f"{RESULTS}/{{dataset}}/data/stats.json",
    params:
        settings=lambda w: as_json(wf.dataset_settings(config, w.dataset)),
        seed=config["seed"],
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/{{dataset}}/prepare.log",
    benchmark:
        f"{BENCH}/{{dataset}}/prepare.tsv"
    wildcard_constraints:
        dataset=wf.name_regex(wf.fetchable_datasets(config)),
    shell:
        "recsae prepare --dataset {wildcards.dataset:q} --settings {params.settings:q}"
        " --raw-dir resources/raw/{wildcards.dataset:q} --out-dir {RESULTS}/{wildcards.dataset:q}/data"
        " --seed {params.seed} > {log:q} 2>&1"


rule split_dataset:
    input:
        stats=f"{RESULTS}/{{dataset}}/data/stats.json",
        interactions=f"{RESULTS}/{{dataset}}/data/interactions.parquet",
    output:
        **{f"{part}_split": f"{RESULTS}/{{dataset}}/split/{part}.parquet" for part in wf.SPLIT_PARTS},
        stats=f"{RESULTS}/{{dataset}}/split/stats.json",
    params:
        settings=lambda w: as_json(wf.dataset_settings(config, w.dataset)["split"]),
        seed=config["seed"],
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/{{dataset}}/split.log",
    shell:
        "recsae split --data-dir {RESULTS}/{wildcards.dataset:q}/data --settings {params.settings:q}"
        " --seed {params.seed} --out-dir {RESULTS}/{wildcards.dataset:q}/split > {log:q} 2>&1"
