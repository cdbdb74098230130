rule train_recommender:
    input:
        unpack(wf.split_inputs),
    output:
        model=f"{RESULTS}/{{dataset}}/{{model}}/model.pt",
        embeddings=f"{RESULTS}/{{dataset}}/{{model}}/embeddings.npz",
        train_log=f"{RESULTS}/{{dataset}}/{{model}}/train_log.json",
    params:
        data_dir=dataset_dir("data"),
        split_dir=dataset_dir("split"),
        out_dir=lambda w: f"{RESULTS}/{w.dataset}/{w.model}",
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
        metrics=f"{RESULTS}/{{dataset}}/{{model}}/metrics.json",
    params:
        data_dir=dataset_dir("data"),
        split_dir=dataset_dir("split"),
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
