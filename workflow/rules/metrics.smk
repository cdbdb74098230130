rule probe_ceiling:
    input:
        unpack(wf.split_inputs),
        model=f"{paths.model_dir()}/model.pt",
    output:
        f"{paths.model_dir()}/probe_ceiling.json",
    params:
        data_dir=lambda w: paths.data_dir(w.dataset),
        split_dir=lambda w: paths.split_dir(w.dataset),
        settings=as_json(config["metrics"]),
        seed=config["seed"],
    threads: config["threads_per_job"]
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/{{dataset}}/{{model}}/probe_ceiling.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{model}}/probe_ceiling.tsv"
    shell:
        "recsae probe-ceiling --model-path {input.model:q} --data-dir {params.data_dir:q}"
        " --split-dir {params.split_dir:q} --settings {params.settings:q}"
        " --seed {params.seed} --device cpu --threads {threads} --out {output:q} > {log:q} 2>&1"


rule evaluate_sae:
    input:
        unpack(wf.split_inputs),
        model=f"{paths.model_dir()}/model.pt",
        sae=f"{paths.sae_dir()}/sae.pt",
        ceiling=f"{paths.model_dir()}/probe_ceiling.json",
    output:
        metrics=f"{paths.sae_dir()}/metrics.json",
        interventions=f"{paths.sae_dir()}/interventions.json",
    params:
        data_dir=lambda w: paths.data_dir(w.dataset),
        split_dir=lambda w: paths.split_dir(w.dataset),
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
        " --ceiling-path {input.ceiling:q} --metrics-out {output.metrics:q}"
        " --interventions-out {output.interventions:q} > {log:q} 2>&1"
