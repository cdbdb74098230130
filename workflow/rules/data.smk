rule fetch_dataset:
    output:
        manifest=f"{paths.raw_dir()}/MANIFEST.json",
    params:
        raw_dir=lambda w: paths.raw_dir(w.dataset),
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
    benchmark:
        f"{BENCH}/{{dataset}}/fetch.tsv"
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
        **{f"{name}_table": f"{paths.data_dir()}/{name}.parquet" for name in paths.CANONICAL_TABLES},
        stats=f"{paths.data_dir()}/stats.json",
    params:
        data_dir=lambda w: paths.data_dir(w.dataset),
        raw_dir=lambda w: paths.raw_dir(w.dataset),
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
        stats=f"{paths.data_dir()}/stats.json",
        interactions=f"{paths.data_dir()}/interactions.parquet",
        test_file=lambda w: wf.split_test_files(config, w.dataset),
    output:
        **{f"{part}_split": f"{paths.split_dir()}/{part}.parquet" for part in paths.SPLIT_PARTS},
        stats=f"{paths.split_dir()}/stats.json",
    params:
        data_dir=lambda w: paths.data_dir(w.dataset),
        split_dir=lambda w: paths.split_dir(w.dataset),
        settings=lambda w: as_json(wf.split_settings(config, w.dataset)),
        seed=config["seed"],
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/{{dataset}}/split.log",
    benchmark:
        f"{BENCH}/{{dataset}}/split.tsv"
    shell:
        "recsae split --data-dir {params.data_dir:q} --settings {params.settings:q}"
        " --seed {params.seed} --out-dir {params.split_dir:q} > {log:q} 2>&1"
