rule train_recommender:
    input:
        unpack(wf.split_inputs),
    output:
        model=f"{paths.model_dir()}/model.pt",
        embeddings=f"{paths.model_dir()}/embeddings.npz",
        train_log=f"{paths.model_dir()}/train_log.json",
    params:
        data_dir=lambda w: paths.data_dir(w.dataset),
        split_dir=lambda w: paths.split_dir(w.dataset),
        out_dir=lambda w: paths.model_dir(w.dataset, w.model),
        settings=lambda w: as_json(wf.model_settings(config, w.model)),
        seed=config["seed"],
        device=config["device"],
    threads: config["threads_per_job"]
    resources:
        gpu=job_gpus,
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/{{dataset}}/{{model}}/train.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{model}}/train.tsv"
    shell:
        "recsae train-recommender --data-dir {params.data_dir:q}"
        " --split-dir {params.split_dir:q} --settings {params.settings:q}"
        " --seed {params.seed} --device {params.device} --gpus {resources.gpu} --threads {threads}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"

rule evaluate_recommender:
    input:
        unpack(wf.split_inputs),
        model=rules.train_recommender.output.model,
    output:
        metrics=f"{paths.model_dir()}/metrics.json",
    params:
        data_dir=lambda w: paths.data_dir(w.dataset),
        split_dir=lambda w: paths.split_dir(w.dataset),
        settings=as_json(config["evaluation"]),
        device=config["device"],
    threads: config["threads_per_job"]
    resources:
        gpu=job_gpus,
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/{{dataset}}/{{model}}/evaluate.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{model}}/evaluate.tsv"
    shell:
        "recsae evaluate-recommender --data-dir {params.data_dir:q}"
        " --split-dir {params.split_dir:q} --model-path {input.model:q}"
        " --settings {params.settings:q} --device {params.device} --gpus {resources.gpu} --threads {threads}"
        " --out {output.metrics:q} > {log:q} 2>&1"
