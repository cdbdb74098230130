#!/usr/bin/env bash
# GPU check on a machine with an NVIDIA GPU (run from the repository root, package installed):
#   bash benchmarks/gpu_check.sh
# 1. device selection through the slot pool: a job asking for 1 GPU sees exactly one device and
#    resolves `auto` to CUDA; a job asking for 0 sees none and resolves to CPU; two concurrent
#    1-GPU jobs on a 1-GPU pool run one after the other;
# 2. the demo sweep on CPU and on the GPU (`--config gpus_per_job=1 --resources gpu=1`), each in
#    its own copy of the repository;
# 3. CPU vs GPU seconds per recommender epoch (train_log.json) and per SAE point (Snakemake
#    benchmark files).
set -euo pipefail
command -v nvidia-smi >/dev/null || { echo "gpu_check: nvidia-smi not found: no NVIDIA GPU here" >&2; exit 1; }
nvidia-smi --query-gpu=index,name,memory.total --format=csv
REPO=$(pwd)
WORK=$(mktemp -d)
export RECSAE_GPU_LOCK_DIR="$WORK/locks"

echo "== 1. slot pool"
PROBE='import os, torch; from recsae.device import resolve_device; print(repr(os.environ.get("CUDA_VISIBLE_DEVICES")), torch.cuda.device_count(), resolve_device("auto"))'
python -m recsae.gpu_slots --gpus 1 -- python -c "$PROBE" | tee "$WORK/one.txt"
grep -q " 1 cuda" "$WORK/one.txt" || { echo "gpu_check: a 1-GPU job does not see exactly one CUDA device" >&2; exit 1; }
python -m recsae.gpu_slots --gpus 0 -- python -c "$PROBE" | tee "$WORK/none.txt"
grep -q " 0 cpu" "$WORK/none.txt" || { echo "gpu_check: a 0-GPU job sees a GPU" >&2; exit 1; }
HOLD='import time; time.sleep(3)'
start=$(date +%s.%N)
RECSAE_GPUS=0 python -m recsae.gpu_slots --gpus 1 -- python -c "$HOLD" &
RECSAE_GPUS=0 python -m recsae.gpu_slots --gpus 1 -- python -c "$HOLD"
wait
python -c "import sys; s = float(sys.argv[2]) - float(sys.argv[1]); print(f'two 1-GPU jobs on one GPU: {s:.1f} s (serialised: >= 6)'); sys.exit(s < 6)" "$start" "$(date +%s.%N)"

echo "== 2. demo sweep, CPU and GPU"
for mode in cpu gpu; do
  mkdir -p "$WORK/$mode"
  git -C "$REPO" ls-files -z | (cd "$REPO" && xargs -0 cp --parents -t "$WORK/$mode")
  if [ "$mode" = cpu ]; then extra=(--config device=cpu); else extra=(--config gpus_per_job=1 --resources gpu=1); fi
  (cd "$WORK/$mode" && /usr/bin/time -f "$mode demo sweep: %e s wall, %M KB peak" \
    snakemake --configfile config/demo.yaml --cores 4 "${extra[@]}" > snakemake.log 2>&1) \
    || { echo "gpu_check: $mode demo run failed; see $WORK/$mode/snakemake.log" >&2; exit 1; }
done

echo "== 3. CPU vs GPU"
python - "$WORK" <<'PY'
import json, sys
from pathlib import Path
import pandas as pd
work = Path(sys.argv[1])
rows = []
for mode in ("cpu", "gpu"):
    results = work / mode / "results"
    for log in sorted((results / "synthetic").glob("*/train_log.json")):
        seconds = [r["seconds"] for r in json.loads(log.read_text())["history"] if r.get("loss") is not None]
        rows.append({"mode": mode, "what": f"{log.parent.name} epoch", "seconds": sum(seconds) / len(seconds)})
    for stage in ("train", "evaluate"):
        files = sorted((results / "benchmarks" / "synthetic").glob(f"*/sae/*/{stage}.tsv"))
        for f in files:
            model = f.parts[-4]
            rows.append({"mode": mode, "what": f"{model} SAE point {stage}", "seconds": pd.read_csv(f, sep="\t")["s"].iloc[0]})
table = pd.DataFrame(rows).groupby(["what", "mode"])["seconds"].mean().unstack("mode")
table["cpu/gpu"] = table["cpu"] / table["gpu"]
print(table.round(2).to_markdown())
PY
echo "gpu_check: all checks passed (work folder $WORK)"
