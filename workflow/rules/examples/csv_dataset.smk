# Example: a dataset added as a plain Snakemake rule instead of a module. Include it with
# `extra_rules: [workflow/rules/examples/csv_dataset.smk]` and give the dataset `source: custom`
# and a `path` to a CSV with columns user_id,item_id[,rating][,timestamp][,genre]. The rule writes
# the canonical tables; everything downstream (split, models, SAEs, metrics) works unchanged.


rule csv_dataset:
    input:
        csv=lambda w: config["datasets"][w.dataset]["path"],
    output:
        multiext(
            f"{paths.data_dir()}/",
            "interactions.parquet",
            "items.parquet",
            "users.parquet",
            "concepts.parquet",
            "stats.json",
        ),
    params:
        settings=lambda w: wf.dataset_settings(config, w.dataset),
        seed=config["seed"],
    wildcard_constraints:
        dataset=wf.name_regex(wf.custom_datasets(config)),
    run:
        import pandas as pd

        from recsae.data.prepare import prepare_raw
        from recsae.data.registry import RawData

        events = pd.read_csv(input.csv)
        interactions = events.rename(columns={"user_id": "user", "item_id": "item"})
        if "rating" not in interactions:
            interactions["rating"] = 1.0
        if "timestamp" not in interactions:
            interactions["timestamp"] = 0
        concepts = None
        if "genre" in events:
            concepts = (
                events[["item_id", "genre"]]
                .drop_duplicates()
                .rename(columns={"item_id": "raw_id", "genre": "concept"})
                .assign(entity="item", family="genre")
            )
        raw = RawData(interactions=interactions, concepts=concepts)
        prepare_raw(
            raw,
            params.settings,
            paths.data_dir(wildcards.dataset),
            dataset=wildcards.dataset,
            seed=params.seed,
        )
