rule train_sae:
    input:
        unpack(wf.split_inputs),
        model=f"{paths.model_dir()}/model.pt",
    output:
        sae=f"{paths.sae_dir()}/sae.pt",
        train_log=f"{paths.sae_dir()}/train_log.json",
    params:
        data_dir=lambda w: paths.data_dir(w.dataset),
        split_dir=lambda w: paths.split_dir(w.dataset),
        out_dir=lambda w: paths.sae_dir(w.dataset, w.model, w.sae),
        settings=lambda w: as_json(wf.point_settings(config, w.dataset, w.model, w.sae)),
        point_id=lambda w: f"{w.dataset}/{w.model}/{w.sae}",
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
        " --point-id {params.point_id:q} --seed {params.seed} --device {params.device}"
        " --gpus {resources.gpu} --threads {threads} --out-dir {params.out_dir:q}"
        " > {log:q} 2>&1"
