rule train_sae:
    input:
        unpack(wf.split_inputs),
        model=f"{RESULTS}/{{dataset}}/{{model}}/model.pt",
    output:
        sae=f"{RESULTS}/{{dataset}}/{{model}}/sae/{{sae}}/sae.pt",
        train_log=f"{RESULTS}/{{dataset}}/{{model}}/sae/{{sae}}/train_log.json",
    params:
        data_dir=dataset_dir("data"),
        split_dir=dataset_dir("split"),
        out_dir=lambda w: f"{RESULTS}/{w.dataset}/{w.model}/sae/{w.sae}",
        settings=lambda w: as_json(wf.sae_point(config, w.dataset, w.model, w.sae)),
        point=lambda w: f"{w.dataset}/{w.model}/{w.sae}",
        seed=config["seed"],
        device=config["device"],
    threads: config["threads_per_job"]
    resources:
        gpu=job_gpus,
    conda:
        "../../envs/recsae.yaml"
    log:
        f"{LOGS}/{{dataset}}/{{model}}/sae/{{sae}}/train.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{model}}/sae/{{sae}}/train.tsv"
    shell:
        "recsae train-sae --model-path {input.model:q} --data-dir {params.data_dir:q}"
        " --split-dir {params.split_dir:q} --settings {params.settings:q}"
        " --point {params.point:q} --seed {params.seed} --device {params.device}"
        " --gpus {resources.gpu} --threads {threads} --out-dir {params.out_dir:q}"
        " > {log:q} 2>&1"
