"""How far one sweep point moves under another thread count and CPU kernel setting, beside how far
it moves between seeds.

    python benchmarks/kernel_spread.py [--config config/real.yaml] [--dataset ml-100k]
        [--models mf-d20 ncf-d20] [--point beta~1] [--seeds 0 1 2] [--jobs 2]

For each model, the whole chain of one sweep point (train the recommender, evaluate it, train the
SAE, evaluate the SAE; the `recsae` CLI commands the workflow runs) runs once per seed under the
reference setting (cpu_kernels portable, 1 thread) and once more, at the first seed, under the
other setting (cpu_kernels native, 2 threads). The split stays the one in
results/<dataset>/split (make it with `snakemake --configfile config/real.yaml
--config mirror=... results/<dataset>/split/train.parquet`). Prints, per model and metric, the
reference value, the seeds' range and standard deviation, the other setting's value and its
difference from the reference. Chains run ``--jobs`` at a time in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from recsae import workflow as wf
from recsae.kernels import kernel_environment
from recsae.workflow import load_config

REFERENCE = ("portable", 1)
OTHER = ("native", 2)
RECOMMENDER_METRICS = ("hr@10", "ndcg@10")
SAE_METRICS = ("rbo30", "kendall_tau", "ms_mean", "score_recovered", "l0_items", "delta_ndcg@10")


def run_chain(config: dict, args, model: str, seed: int, setting: tuple[str, int], out: Path):
    """Run the four CLI stages of one (model, seed, setting) into ``out``; return its metrics."""
    kernels, threads = setting
    data = args.results / args.dataset
    env = {**os.environ, **kernel_environment(kernels)}
    if kernels == "native":
        for key in ("ATEN_CPU_CAPABILITY", "MKL_CBWR"):
            env.pop(key, None)
    common = ["--seed", str(seed), "--device", "cpu", "--threads", str(threads)]
    dirs = ["--data-dir", str(data / "data"), "--split-dir", str(data / "split")]
    model_cfg = config["models"][model]
    recommender = {"model": model_cfg["model"], "params": model_cfg.get("params", {})}
    recommender["train"] = model_cfg.get("train", {})
    settings = wf.point_settings(config, args.dataset, model, args.point)
    steps = [
        ["train-recommender", *dirs, "--settings", json.dumps(recommender), "--out-dir", out],
        ["evaluate-recommender", *dirs, "--model-path", out / "model.pt"]
        + ["--settings", json.dumps(config["evaluation"]), "--out", out / "metrics.json"],
        ["train-sae", *dirs, "--model-path", out / "model.pt", "--settings", json.dumps(settings)]
        + ["--point-id", f"{args.dataset}/{model}/{args.point}", "--out-dir", out / "sae"],
        ["evaluate-sae", *dirs, "--model-path", out / "model.pt", "--sae-path", out / "sae/sae.pt"]
        + ["--settings", json.dumps(config["metrics"]), "--metrics-out", out / "sae/metrics.json"]
        + ["--interventions-out", out / "sae/interventions.json"],
    ]
    out.mkdir(parents=True, exist_ok=True)
    for step in steps:
        cmd = [sys.executable, "-m", "recsae.cli", *map(str, step), *common]
        with open(out / f"{step[0]}.log", "w") as log:
            if subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode:
                raise SystemExit(f"{' '.join(cmd)} failed; see {out / (step[0] + '.log')}")
    test = json.loads((out / "metrics.json").read_text())["test"]
    summary = json.loads((out / "sae/metrics.json").read_text())["summary"]
    return {
        **{f"recommender {k}": test[k] for k in RECOMMENDER_METRICS},
        **{f"SAE {k}": summary[k] for k in SAE_METRICS},
    }


def spread_table(runs: dict[tuple, dict], seeds: list[int]) -> pd.DataFrame:
    """Per metric: the reference run at the first seed, the seeds' min, max and std, the other
    setting's value and its absolute difference from the reference."""
    ref = pd.DataFrame({seed: runs[(REFERENCE, seed)] for seed in seeds})
    other = pd.Series(runs[(OTHER, seeds[0])])
    return pd.DataFrame(
        {
            f"seed {seeds[0]}": ref[seeds[0]],
            "seeds min": ref.min(axis=1),
            "seeds max": ref.max(axis=1),
            "seeds std": ref.std(axis=1, ddof=1),
            f"{OTHER[0]}, {OTHER[1]} threads": other,
            "|kernel diff|": (other - ref[seeds[0]]).abs(),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("config/real.yaml"))
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", nargs="+", default=["mf-d20", "ncf-d20"])
    parser.add_argument("--point", default="beta~1")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="chains run at once")
    args = parser.parse_args()
    if not (args.results / args.dataset / "split" / "train.parquet").exists():
        raise SystemExit(f"no split under {args.results / args.dataset} (see --help)")
    config = load_config(args.config)
    jobs = [(m, s, REFERENCE) for m in args.models for s in args.seeds]
    jobs += [(m, args.seeds[0], OTHER) for m in args.models]
    with tempfile.TemporaryDirectory(prefix="kernel_spread_") as tmp:
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = {
                (m, setting, s): pool.submit(
                    run_chain, config, args, m, s, setting, Path(tmp, f"{m}_{setting[0]}_{s}")
                )
                for m, s, setting in jobs
            }
            results = {key: future.result() for key, future in futures.items()}
    print(
        f"{args.dataset}, point {args.point}; reference: cpu_kernels {REFERENCE[0]}, "
        f"{REFERENCE[1]} thread, seeds {args.seeds}; other: cpu_kernels {OTHER[0]}, "
        f"{OTHER[1]} threads, seed {args.seeds[0]}"
    )
    for model in args.models:
        runs = {(setting, s): r for (m, setting, s), r in results.items() if m == model}
        print(f"\n{model}\n" + spread_table(runs, args.seeds).round(4).to_string())


if __name__ == "__main__":
    main()
