"""Planted-concept recovery of ReLU SAEs against the `random` method, over beta x lambda_kl x seed.

    python benchmarks/planted_recovery.py                  # config/demo.yaml's data and MF model
    python benchmarks/planted_recovery.py --seeds 0 1 2 --beta 0 5 --lambda-kl 0.01 0.1

For each seed (the config's ``seed`` replaced: new data, recommender, SAE and held-out users) the
synthetic dataset and the recommender of ``--config`` are built as the workflow builds them, then
one SAE per (lambda_kl, beta) on top of the config's ``sae.defaults`` (and its model override) is
trained and evaluated with ``recsae.stages.sae_evaluation.evaluate_loaded``. Prints one markdown row
per SAE: L0, item FVU, RBO@30, score recovered, and the mean best-neuron AUROC and precision@R of
the SAE vs the ``random`` method (a seeded random orthonormal basis, split into positive and
negative halves; fitted once per seed), over all planted concepts and over the clusters.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import pandas as pd
import torch
import yaml
from tabulate import tabulate

from recsae import workflow
from recsae.config import resolve_metrics_config
from recsae.data.fetch import fetch_raw
from recsae.data.prepare import prepare_dataset
from recsae.data.split import make_split
from recsae.data.tables import load_concepts, load_split
from recsae.recommenders.train import train_recommender
from recsae.sae.holdout import split_sae_users
from recsae.sae.train import fit_baseline, point_for, train_sae
from recsae.stages.sae_evaluation import evaluate_loaded

REPO = Path(__file__).resolve().parents[1]


def quiet(line: str) -> None:
    """Training logs are not printed."""


def recovery_rows(config: dict, dataset: str, model_name: str, seed: int, grid, workdir: Path):
    """One dict per (lambda_kl, beta) of ``grid`` for one seed."""
    entry = config["datasets"][dataset]
    settings = {k: v for k, v in entry.items() if k != "split"}
    raw, data, split_dir = workdir / "raw", workdir / "data", workdir / "split"
    fetch_raw(dataset, settings, raw)
    prepare_dataset(dataset, settings, raw, data, seed)
    make_split(data, entry["split"], seed, split_dir)
    split = load_split(data, split_dir)
    model_cfg = workflow.model_settings(config, model_name)
    model, _ = train_recommender(
        split, model_cfg["model"], model_cfg["params"], model_cfg["train"], seed, "cpu", quiet
    )
    concepts = pd.concat(
        [load_concepts(data, kind).assign(entity=kind) for kind in ("item", "user")],
        ignore_index=True,
    )
    metrics_cfg = resolve_metrics_config({"interventions": {"n_concepts": 0}})
    base = workflow.sae_defaults(config, dataset, model_name)
    _, heldout = split_sae_users(split.n_users, base["holdout_fraction"], seed)
    chance, _ = fit_baseline(model, split, point_for(model, {**base, "method": "random"}), seed)
    chance_metrics, _ = evaluate_loaded(model, chance, split, concepts, heldout, metrics_cfg, seed)
    r = chance_metrics["summary"]
    r_cluster = chance_metrics["planted"]["items"]["by_family"]["planted_cluster"]
    rows = []
    for lambda_kl, beta in grid:
        point = point_for(model, {**base, "lambda_kl": lambda_kl, "beta": beta})
        sae, _ = train_sae(model, split, point, f"{dataset}/{model_name}", seed, "cpu", quiet)
        metrics, _ = evaluate_loaded(model, sae, split, concepts, heldout, metrics_cfg, seed)
        s = metrics["summary"]
        cluster = metrics["planted"]["items"]["by_family"]["planted_cluster"]
        rows.append(
            {
                "seed": seed,
                "lambda_kl": lambda_kl,
                "beta": beta,
                "L0 items": s["l0_items"],
                "FVU items": s["fvu_items"],
                "RBO@30": s["rbo30"],
                "score recovered": s["score_recovered"],
                "AUROC SAE / random": f"{s['planted_auroc']:.3f} / {r['planted_auroc']:.3f}",
                "P@R SAE / random": (
                    f"{s['planted_precision_r']:.3f} / {r['planted_precision_r']:.3f}"
                ),
                "cluster P@R SAE / random": (
                    f"{cluster['precision_at_r_mean']:.3f} / {r_cluster['precision_at_r_mean']:.3f}"
                ),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "demo.yaml")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--model", default="mf")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--beta", type=float, nargs="+", default=[0.0, 5.0])
    parser.add_argument("--lambda-kl", type=float, nargs="+", default=[0.01, 0.1])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    raw_config = yaml.safe_load(args.config.read_text())
    grid = [(lam, beta) for lam in args.lambda_kl for beta in args.beta]
    rows = []
    for seed in args.seeds:
        config = workflow.validate_config(
            {**copy.deepcopy(raw_config), "seed": seed}, source=str(args.config)
        )
        with tempfile.TemporaryDirectory() as tmp:
            rows += recovery_rows(config, args.dataset, args.model, seed, grid, Path(tmp))
    table = pd.DataFrame(rows)
    print(tabulate(table, headers="keys", tablefmt="github", floatfmt=".3f", showindex=False))


if __name__ == "__main__":
    main()
