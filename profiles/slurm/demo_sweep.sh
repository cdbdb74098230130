#!/usr/bin/env bash
# Bring up the one-node SLURM cluster (see local_cluster.sh) and run a small demo sweep of the
# real workflow through it: MF on the synthetic dataset, SAEs at beta 0 and 5, every job an
# sbatch job. Results go to the folder given as the first argument (default: slurm-demo/); any
# further arguments go to snakemake. Install the cluster first: local_cluster.sh up --install.
#
#   profiles/slurm/demo_sweep.sh [workdir] [snakemake args...]
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
workdir="$(realpath -m "${1:-slurm-demo}")"
shift || true

bash "$repo/profiles/slurm/local_cluster.sh" up
mkdir -p "$workdir"
python3 - "$repo/config/demo.yaml" "$workdir/demo-slurm.yaml" <<'PY'
import sys

import yaml

config = yaml.safe_load(open(sys.argv[1]))
config["experiments"] = [{"datasets": ["synthetic"], "models": ["mf"]}]
config["sae"]["targets"] = [{"datasets": ["synthetic"], "models": ["mf"]}]
config["sae"]["sweep"] = {"grid": {"beta": [0, 5]}}
yaml.safe_dump(config, open(sys.argv[2], "w"))
PY
cd "$workdir"
snakemake --snakefile "$repo/Snakefile" --workflow-profile "$repo/profiles/slurm" \
    results/synthetic/mf/sae/beta~0/metrics.json results/synthetic/mf/sae/beta~5/metrics.json \
    "$@" --configfile demo-slurm.yaml
echo "demo sweep done; SLURM job logs in $workdir/.snakemake/slurm_logs/"
