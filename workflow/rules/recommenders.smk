rule train_recommender:
    input:
        unpack(wf.split_inputs),
    output:
        model=f"{RESULTS}/{{dataset}}/{{model}}/model.pt",
        embeddings=f"{RESULTS}/{{dataset}}/{{model}}/embeddings.npz",
        train_log=f"{RESULTS}/{{dataset}}/{{model}}/train_log.json",
    params:
        settings=lambda w: as_json(wf.model_settings(config, w.model)),
        seed=config["seed"],
        device=config["resources"]["device"],
    threads: config["resources"]["threads_per_job"]
    resources:
        gpu=job_gpus,
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/{{dataset}}/{{model}}/train.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{model}}/train.tsv"
    shell:
        "recsae train-recommender --data-dir {RESULTS}/{wildcards.dataset:q}/data"
        " --split-dir {RESULTS}/{wildcards.dataset:q}/split --settings {params.settings:q}"
        " --seed {params.seed} --device {params.device} --gpus {resources.gpu}"
        " --out-dir {RESULTS}/{wildcards.dataset:q}/{wildcards.model:q} > {log:q} 2>&1"


rule evaluate_recommender:
    input:
        unpack(wf.split_inputs),
        model=rules.train_recommender.output.model,
    output:
        metrics=f"{RESULTS}/{{dataset}}/{{model}}/metrics.json",
    params:
        settings=as_json(config["evaluation"]),
        device=config["resources"]["device"],
    threads: config["resources"]["threads_per_job"]
    resources:
        gpu=job_gpus,
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/{{dataset}}/{{model}}/evaluate.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{model}}/evaluate.tsv"
    shell:
        "recsae evaluate-recommender --data-dir {RESULTS}/{wildcards.dataset:q}/data"
        " --split-dir {RESULTS}/{wildcards.dataset:q}/split --model-path {input.model:q}"
        " --settings {params.settings:q} --device {params.device} --gpus {resources.gpu}"
        " --out {output.metrics:q} > {log:q} 2>&1"
