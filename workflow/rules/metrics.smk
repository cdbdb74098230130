rule evaluate_sae:
    input:
        unpack(wf.split_inputs),
        model=f"{RESULTS}/{{dataset}}/{{model}}/model.pt",
        sae=f"{RESULTS}/{{dataset}}/{{model}}/sae/{{sae}}/sae.pt",
    output:
        metrics=f"{RESULTS}/{{dataset}}/{{model}}/sae/{{sae}}/metrics.json",
        interventions=f"{RESULTS}/{{dataset}}/{{model}}/sae/{{sae}}/interventions.json",
    params:
        data_dir=dataset_dir("data"),
        split_dir=dataset_dir("split"),
        settings=as_json(config["metrics"]),
        seed=config["seed"],
        device=config["device"],
    threads: config["threads_per_job"]
    resources:
        gpu=job_gpus,
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/{{dataset}}/{{model}}/sae/{{sae}}/evaluate.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{model}}/sae/{{sae}}/evaluate.tsv"
    shell:
        "recsae evaluate-sae --model-path {input.model:q} --sae-path {input.sae:q}"
        " --data-dir {params.data_dir:q}"
        " --split-dir {params.split_dir:q} --settings {params.settings:q}"
        " --seed {params.seed} --device {params.device} --gpus {resources.gpu} --threads {threads}"
        " --metrics-out {output.metrics:q} --interventions-out {output.interventions:q} > {log:q} 2>&1"
