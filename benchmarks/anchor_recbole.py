"""Quality anchor: RecBole's SASRec beside the suite's on the same leave-last-out split.

    python benchmarks/anchor_recbole.py --data-dir results/ml-100k-seq/data \\
        --split-dir results/ml-100k-seq/split \\
        --model results/ml-100k-seq/sasrec-recbole.seed~0/model.pt \\
        [--venv .venv-recbole] [--work-dir build/recbole-anchor] [--minutes 25] [--threads 1]
        [--recbole-checkpoint build/recbole-anchor/saved/SASRec-....pth]

RecBole 1.2.1 imports only with numpy < 2 (it uses ``np.float``), pandas < 2.3 and scipy < 1.14,
so it runs in its own virtualenv, which this script creates at ``--venv`` when RecBole does not
import there (torch pinned to this environment's version; RecBole without its ``ray`` dependency,
which only its hyper-parameter search uses); it is no dependency of the project.

The split is the workflow's own (``--split-dir``). The script writes it as a RecBole atomic file
whose timestamps order each user's items train < valid < test (train items by time, ties by item
id, as the suite's SASRec reads them), so that RecBole's leave-one-out split (order "TO", "LS:
valid_and_test") holds the same valid and test item per user. ``recbole_sasrec_worker.py`` then
trains RecBole's SASRec (its ML-100K settings: 2 blocks, 64 dimensions, window 50, full
cross-entropy, batch 2048 training sequences, lr 0.001, early stopping after 10 epochs without
validation gain; training stops before ``--minutes``) and writes the test scores of its best
validation checkpoint. ``--recbole-checkpoint`` tests a checkpoint an earlier run saved in
``--work-dir``'s ``saved/`` folder instead of training again.

Both models are scored here by the suite's metric code: full ranking over the catalogue, input
the train + valid items (RecBole's protocol; the suite's own metrics.json gives its SASRec the
train items only), the user's train and valid items excluded and, as RecBole's sequential
full-sort evaluation does, kept.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsae.data.tables import Split, load_split
from recsae.metrics.accuracy import rank_metrics
from recsae.recommenders.base import load_checkpoint

HERE = Path(__file__).resolve().parent
WORKER = HERE / "recbole_sasrec_worker.py"
DATASET = "ml-100k-seq"
KS = [10]
# RecBole 1.2.1's requirements less ray (hyper-parameter search only), with the pins it needs
# (torch 2.13 needs setuptools >= 77, which has no pkg_resources: no current module asks for it)
RECBOLE_PACKAGES = [
    "numpy<2",
    "pandas<2.3",
    "scipy<1.14",
    "psutil",
    "tqdm",
    "colorlog==4.7.2",
    "colorama==0.4.4",
    "scikit-learn",
    "pyyaml",
    "tensorboard",
    "thop",
    "tabulate",
    "plotly",
    "texttable",
]


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def recbole_imports(venv: Path) -> bool:
    python = venv_python(venv)
    check = [str(python), "-c", "import recbole.trainer, recbole.data"]
    return python.is_file() and subprocess.run(check, capture_output=True).returncode == 0


def ensure_venv(venv: Path) -> None:
    """Create RecBole's virtualenv at ``venv`` unless RecBole already imports there."""
    if recbole_imports(venv):
        return
    print(f"creating RecBole's virtualenv at {venv}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    constraints = venv / "constraints.txt"
    constraints.write_text(f"torch=={torch.__version__.split('+')[0]}\n")
    pip = [str(venv_python(venv)), "-m", "pip", "install", "-q", "-c", str(constraints)]
    subprocess.run([*pip, f"torch=={torch.__version__.split('+')[0]}"], check=True)
    subprocess.run([*pip, "--no-deps", "recbole==1.2.1"], check=True)
    subprocess.run([*pip, *RECBOLE_PACKAGES], check=True)
    if not recbole_imports(venv):
        raise SystemExit(f"RecBole does not import in {venv} after installing it")


def write_atomic(split: Split, path: Path) -> None:
    """The split as a RecBole .inter file: per user, timestamps 0.. order the train items (by
    time, ties by item id), then the valid item, then the test item."""
    parts = [
        frame.assign(part=code) for code, frame in enumerate((split.train, split.valid, split.test))
    ]
    frame = pd.concat(parts, ignore_index=True).sort_values(
        ["user", "part", "timestamp", "item"], kind="stable"
    )
    frame["order"] = frame.groupby("user").cumcount()
    path.parent.mkdir(parents=True, exist_ok=True)
    out = frame[["user", "item", "order"]].rename(
        columns={"user": "user_id:token", "item": "item_id:token", "order": "timestamp:float"}
    )
    out.to_csv(path, sep="\t", index=False)


def run_worker(
    venv: Path, work_dir: Path, minutes: float, threads: int, checkpoint: Path | None
) -> dict:
    """Train (or, given ``checkpoint``, only load) and test RecBole's SASRec in its virtualenv, in
    ``work_dir`` (RecBole writes its log/ and log_tensorboard/ folders into the current
    directory); its JSON summary line."""
    work_dir = work_dir.resolve()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [
        str(venv_python(venv)),
        str(WORKER),
        str(work_dir),
        DATASET,
        "--threads",
        str(threads),
        "--minutes",
        str(minutes),
    ]
    if checkpoint is not None:
        command += ["--checkpoint", str(checkpoint.resolve())]
    # the worker stops training before ``minutes``; the margin covers its evaluations
    log = work_dir / "worker.log"
    with log.open("w") as out:
        try:
            done = subprocess.run(
                command,
                env=env,
                cwd=work_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=minutes * 60 + 900,
            )
        except subprocess.TimeoutExpired:
            raise SystemExit(f"RecBole's run passed its time cap; see {log}") from None
    if done.returncode:
        raise SystemExit(f"RecBole's run failed; see {log}")
    summary = [line for line in log.read_text().splitlines() if line.startswith('{"recbole_test"')]
    return json.loads(summary[-1])


def recbole_score_fn(work_dir: Path, split: Split):
    """score_fn over the suite's ids from the worker's test scores (items RecBole never saw,
    and users without a test row, score -inf)."""
    saved = np.load(work_dir / "test_scores.npz")
    scores = torch.full((split.n_users, split.n_items), -torch.inf)
    rows = torch.from_numpy(saved["users"])
    cols = torch.from_numpy(saved["items"])
    scores[rows[:, None], cols[None, :]] = torch.from_numpy(saved["scores"])
    return lambda users: scores[users]


def ours_score_fn(model_path: Path, split: Split):
    """The suite's trained SASRec reading train + valid items (RecBole's input protocol)."""
    model = load_checkpoint(model_path).eval()
    model.prepare_history(pd.concat([split.train, split.valid], ignore_index=True))
    return lambda users: model.full_scores(users).detach()


def metrics_rows(score_fns: dict, split: Split) -> list[str]:
    seen = split.matrix("train") + split.matrix("valid")
    nothing = sp.csr_matrix((split.n_users, split.n_items), dtype=np.float32)
    test = split.matrix("test")
    lines = [
        "| model | HR@10 | NDCG@10 | HR@10, history kept | NDCG@10, history kept |",
        "|---|---|---|---|---|",
    ]
    for name, score_fn in score_fns.items():
        with torch.no_grad():
            masked = rank_metrics(score_fn, seen, test, KS)
            unmasked = rank_metrics(score_fn, nothing, test, KS)
        cells = [f"{m[k]:.4f}" for m in (masked, unmasked) for k in ("hr@10", "ndcg@10")]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the dataset's data/ folder")
    parser.add_argument("--split-dir", type=Path, required=True, help="its split/ folder")
    parser.add_argument("--model", type=Path, required=True, help="the suite's SASRec model.pt")
    parser.add_argument("--venv", type=Path, default=Path(".venv-recbole"))
    parser.add_argument("--work-dir", type=Path, default=Path("build/recbole-anchor"))
    parser.add_argument("--minutes", type=float, default=25, help="RecBole's training time cap")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both")
    parser.add_argument(
        "--recbole-checkpoint",
        type=Path,
        help="test this RecBole checkpoint of an earlier run instead of training",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    split = load_split(args.data_dir, args.split_dir)
    venv = args.venv.absolute()
    ensure_venv(venv)
    write_atomic(split, args.work_dir / DATASET / f"{DATASET}.inter")
    summary = run_worker(venv, args.work_dir, args.minutes, args.threads, args.recbole_checkpoint)
    print(json.dumps(summary))
    score_fns = {
        "RecBole SASRec": recbole_score_fn(args.work_dir, split),
        "recsae SASRec": ours_score_fn(args.model, split),
    }
    print("\n".join(metrics_rows(score_fns, split)))


if __name__ == "__main__":
    main()
