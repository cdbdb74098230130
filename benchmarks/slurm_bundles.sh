#!/usr/bin/env bash
# SLURM submissions and wall time of one pair's SAE sweep, with and without profiles/slurm's
# bundling of SAE points (docs/gpus-slurm.md). The sweep is config/real.yaml's (28 points) on the
# demo's synthetic data and MF, SAE seeds as given (default 1: the count for 3 seeds follows from
# group-components), 20 epochs per SAE point; it runs twice on the one-node SLURM cluster of
# profiles/slurm/local_cluster.sh: once with a copy of the profile without the `groups` and
# `group-components` entries (every job its own submission), once with the profile itself.
# Prints, per run, the submissions and the wall time.
#
#   benchmarks/slurm_bundles.sh [workdir] [seeds, e.g. "0,1,2"]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
workdir="$(realpath -m "${1:-slurm-bundles}")"
seeds="${2:-0}"

bash "$repo/profiles/slurm/local_cluster.sh" up
mkdir -p "$workdir/alone" "$workdir/bundled"
python3 - "$repo" "$workdir" "$seeds" <<'PY'
import sys
from pathlib import Path

import yaml

repo, workdir, seeds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
config = yaml.safe_load((repo / "config/demo.yaml").read_text())
real = yaml.safe_load((repo / "config/real.yaml").read_text())
config["experiments"] = [{"datasets": ["synthetic"], "models": ["mf"]}]
config["sae"]["targets"] = [{"datasets": ["synthetic"], "models": ["mf"]}]
config["sae"]["sweep"] = real["sae"]["sweep"]
config["sae"]["seeds"] = [int(s) for s in seeds.split(",")]
config["sae"]["defaults"]["epochs"] = 20
for run in ("alone", "bundled"):
    (workdir / run / "sweep.yaml").write_text(yaml.safe_dump(config))
profile = yaml.safe_load((repo / "profiles/slurm/config.yaml").read_text())
for key in ("groups", "group-components"):
    profile.pop(key)
(workdir / "alone-profile").mkdir(exist_ok=True)
(workdir / "alone-profile" / "config.yaml").write_text(yaml.safe_dump(profile))
PY

for run in alone bundled; do
    profile="$repo/profiles/slurm"
    [ "$run" = alone ] && profile="$workdir/alone-profile"
    cd "$workdir/$run"
    start=$(date +%s)
    snakemake --snakefile "$repo/Snakefile" --workflow-profile "$profile" --configfile sweep.yaml \
        --slurm-init-seconds-before-status-checks 2 > run.log 2>&1 ||
        { tail -40 run.log; exit 1; }
    end=$(date +%s)
    submitted=$(grep -c "has been submitted with SLURM jobid" run.log || true)
    points=$(find results/synthetic/mf/sae -name metrics.json | wc -l)
    echo "$run: $points SAE points evaluated; $submitted SLURM submissions; $((end - start)) s wall"
done
