"""RecBole's SASRec on a prepared atomic data set; run by anchor_recbole.py inside RecBole's own
virtualenv (RecBole 1.2.1 with numpy < 2), never in the project's.

    python recbole_sasrec_worker.py WORK_DIR DATASET --epochs N --threads T --seed S
        [--minutes M] [--checkpoint FILE]

Reads WORK_DIR/DATASET/DATASET.inter (user_id, item_id, timestamp; the timestamps order each
user's items so that RecBole's leave-one-out split "LS: valid_and_test", order "TO", reproduces
the suite's split). Trains SASRec with RecBole's ML-100K settings (2 blocks, 64 dimensions,
window 50, full cross-entropy, early stopping on validation NDCG@10 after 10 epochs without
gain), evaluates its best validation checkpoint on the test item with full ranking (with
``--checkpoint``: a checkpoint an earlier run saved, training skipped), prints RecBole's own test
result as one JSON line, and writes WORK_DIR/test_scores.npz: the test users' scores over the
catalogue (input: train + valid items, RecBole's protocol), with the raw user and item tokens of
rows and columns.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import Trainer
from recbole.utils import init_logger, init_seed


def recbole_config(work_dir: Path, dataset: str, epochs: int, seed: int) -> Config:
    settings = {
        "data_path": str(work_dir),
        "checkpoint_dir": str(work_dir / "saved"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 50,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "metrics": ["Hit", "NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "epochs": epochs,
        "stopping_step": 10,
        "train_batch_size": 2048,
        "eval_batch_size": 4096,
        "learning_rate": 0.001,
        "seed": seed,
        "reproducibility": True,
        "use_gpu": False,
        "device": "cpu",
        "worker": 0,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
    }
    return Config(model="SASRec", dataset=dataset, config_dict=settings)


class TimeCap(Exception):
    """Raised before an epoch that would start after the time cap."""


class EpochClock:
    """Wraps a Trainer's ``_train_epoch``: records seconds per epoch and raises TimeCap before an
    epoch that would end, at the mean epoch time so far, after ``deadline`` (time.perf_counter
    seconds); the first epoch always runs."""

    def __init__(self, trainer: Trainer, deadline: float):
        self.seconds: list[float] = []
        self.capped = False
        self.deadline = deadline
        self.train_epoch = trainer._train_epoch
        trainer._train_epoch = self

    def __call__(self, *args, **kwargs):
        if self.seconds and time.perf_counter() + np.mean(self.seconds) > self.deadline:
            self.capped = True
            raise TimeCap
        start = time.perf_counter()
        out = self.train_epoch(*args, **kwargs)
        self.seconds.append(time.perf_counter() - start)
        return out


def load_checkpoint(trainer: Trainer, checkpoint: Path) -> dict:
    """Load a RecBole checkpoint into ``trainer.model``; its training record (epoch, best
    validation score). RecBole 1.2.1 pickles its Config into the file, which torch >= 2.6's
    default ``weights_only=True`` refuses, so it is read with ``weights_only=False``: only load
    files a run of this script wrote."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    trainer.model.load_state_dict(saved["state_dict"])
    trainer.model.load_other_parameter(saved.get("other_parameter"))
    return {"best_epoch": int(saved["epoch"]), "best_valid": float(saved["best_valid_score"])}


def test_scores(model, test_data, dataset) -> dict[str, np.ndarray]:
    """Scores (n_test_users, n_items) of the trained model on the test batches' inputs, rows and
    columns named by raw tokens (RecBole's padding item 0 dropped)."""
    users, rows = [], []
    model.eval()
    with torch.no_grad():
        for batch in test_data:
            interaction = batch[0]
            rows.append(model.full_sort_predict(interaction).reshape(len(interaction), -1)[:, 1:])
            users.append(interaction[dataset.uid_field].numpy())
    user_ids = np.concatenate(users)
    return {
        "scores": torch.cat(rows).numpy().astype(np.float32),
        "users": dataset.id2token(dataset.uid_field, user_ids).astype(np.int64),
        "items": dataset.id2token(dataset.iid_field, np.arange(1, dataset.item_num)).astype(
            np.int64
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("dataset")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--minutes", type=float, default=25, help="training time cap; the best model is kept"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="test this checkpoint of an earlier run of this script instead of training",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = recbole_config(args.work_dir, args.dataset, args.epochs, args.seed)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    start = time.perf_counter()
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    prepared = time.perf_counter() - start
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    clock = EpochClock(trainer, start + args.minutes * 60)
    checkpoint = args.checkpoint
    if checkpoint is None:
        try:
            trainer.fit(train_data, valid_data, saved=True, show_progress=False)
        except TimeCap:
            pass
        checkpoint = Path(trainer.saved_model_file)
    trained = time.perf_counter() - start - prepared
    record = load_checkpoint(trainer, checkpoint)
    test_result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    np.savez(args.work_dir / "test_scores.npz", **test_scores(trainer.model, test_data, dataset))
    print(
        json.dumps(
            {
                "recbole_test": {k: float(v) for k, v in test_result.items()},
                "recbole_best_valid": record["best_valid"],
                "best_epoch": record["best_epoch"],
                "checkpoint": str(checkpoint),
                "epochs_run": len(clock.seconds),
                "seconds_per_epoch": round(float(np.mean(clock.seconds)), 1)
                if clock.seconds
                else None,
                "stopped_by_time_cap": clock.capped,
                "prepare_seconds": round(prepared, 1),
                "train_seconds": round(trained, 1),
                "train_sequences": len(train_data.dataset),
            }
        )
    )


if __name__ == "__main__":
    main()
