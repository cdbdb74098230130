rule fetch_dataset:
    output:
        manifest="resources/raw/{dataset}/MANIFEST.json",
    params:
        raw_dir=lambda w: f"{wf.RAW_DIR}/{w.dataset}",
        settings=lambda w: as_json(wf.dataset_settings(config, w.dataset)),
    conda:
        "../../envs/recsae.yaml"
    resources:
        # Where raw files come from and the network settings do not change them (checksums
        # verify them), so they are resources, not params: changing them re-runs nothing.
        mirror=config["mirror"] or "",
        download=lambda w: as_json(wf.download_settings(config, w.dataset)),
    log:
        f"{LOGS}/{{dataset}}/fetch.log",
    wildcard_constraints:
        dataset=wf.name_regex(wf.fetchable_datasets(config)),
    shell:
        "recsae fetch --dataset {wildcards.dataset:q} --settings {params.settings:q}"
        " --raw-dir {params.raw_dir:q} --mirror={resources.mirror:q}"
        " --download {resources.download:q} > {log:q} 2>&1"

rule prepare_dataset:
    input:
        manifest=rules.fetch_dataset.output.manifest,
    output:
        **{f"{name}_table": f"{RESULTS}/{{dataset}}/data/{name}.parquet" for name in wf.CANONICAL_TABLES},
        stats=f"{RESULTS}/{{dataset}}/data/stats.json",
    params:
        data_dir=dataset_dir("data"),
        raw_dir=lambda w: f"{wf.RAW_DIR}/{w.dataset}",
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
        " --raw-dir {params.raw_dir:q} --out-dir {params.data_dir:q}"
        " --seed {params.seed} > {log:q} 2>&1"

rule split_dataset:
    input:
        stats=f"{RESULTS}/{{dataset}}/data/stats.json",
        interactions=f"{RESULTS}/{{dataset}}/data/interactions.parquet",
    output:
        **{f"{part}_split": f"{RESULTS}/{{dataset}}/split/{part}.parquet" for part in wf.SPLIT_PARTS},
        stats=f"{RESULTS}/{{dataset}}/split/stats.json",
    params:
        data_dir=dataset_dir("data"),
        split_dir=dataset_dir("split"),
        settings=lambda w: as_json(wf.split_settings(config, w.dataset)),
        seed=config["seed"],
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/{{dataset}}/split.log",
    shell:
        "recsae split --data-dir {params.data_dir:q} --settings {params.settings:q}"
        " --seed {params.seed} --out-dir {params.split_dir:q} > {log:q} 2>&1"
