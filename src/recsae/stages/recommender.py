"""The recommender stages: train one base recommender, evaluate it (full ranking, with MostPop)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from recsae.config import fill_defaults
from recsae.data.tables import load_split
from recsae.device import resolve_device
from recsae.io import atomic_write, result_metadata, write_json
from recsae.memory import check_fits, recommender_bytes
from recsae.recommenders.base import (
    checkpoint_extra,
    load_checkpoint,
    model_class,
    save_checkpoint,
)
from recsae.recommenders.mostpop import MostPop
from recsae.recommenders.train import (
    best_epoch,
    embedding_arrays,
    evaluate_model,
    resolve_config,
    train_with_collapse_fallback,
)


def train(
    settings: dict, *, data_dir: str, split_dir: str, out_dir: str, seed: int, device: str
) -> None:
    """Train the recommender of ``settings`` (a config ``models`` entry: model, params, train,
    and a seed variant's own ``seed``, which replaces ``seed``) and write ``out_dir/model.pt``
    (checkpoint), ``embeddings.npz`` and ``train_log.json``."""
    model_name, params, train_cfg = settings["model"], settings["params"], settings["train"]
    seed = settings.get("seed", seed)
    out_dir = Path(out_dir)
    split = load_split(data_dir, split_dir)
    full_params, _ = resolve_config(model_name, params, train_cfg)
    dim = model_class(model_name).embedding_dim(full_params)
    if dim:
        check_fits(
            recommender_bytes(split.n_users, split.n_items, dim),
            f"{model_name} on {split.n_users} users and {split.n_items} items",
            "the model's params.dim",
        )
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    started = time.perf_counter()
    model, history, full_train = train_with_collapse_fallback(
        split, model_name, params, train_cfg, seed, device=device, log=log
    )
    seconds = time.perf_counter() - started
    epoch = (
        best_epoch(history, full_train["early_stopping_metric"])
        if full_train["restore_best"]
        else history[-1]["epoch"]
    )
    config = {"model": model_name, "params": full_params, "train": full_train}
    save_checkpoint(
        model, out_dir / "model.pt", extra={"seed": seed, "config": config, "best_epoch": epoch}
    )
    arrays = embedding_arrays(model)
    atomic_write(out_dir / "embeddings.npz", lambda tmp: _save_npz(tmp, arrays), checksum=True)
    write_json(
        out_dir / "train_log.json",
        {
            "model": model_name,
            "n_users": split.n_users,
            "n_items": split.n_items,
            "best_epoch": epoch,
            "train_seconds": seconds,
            "history": history,
            "log": lines,
            **result_metadata(config, seed),
        },
    )


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def evaluate(
    settings: dict, *, data_dir: str, split_dir: str, model_path: str, out: str, device: str
) -> None:
    """Write ``out`` (metrics.json): test and validation metrics of the checkpoint AND of MostPop
    (popularity from train), ranked identically, with the config, seed and version. ``settings``:
    the config's ``evaluation`` block."""
    cfg = fill_defaults("evaluation", settings)
    device = resolve_device(device)
    split = load_split(data_dir, split_dir)
    model = load_checkpoint(model_path, device)
    extra = checkpoint_extra(model_path)
    started = time.perf_counter()
    results = evaluate_model(model.full_scores, split, cfg["ks"], cfg["batch_size"], device)
    seconds = time.perf_counter() - started
    mostpop = MostPop(split.matrix("train"), device)
    baseline = evaluate_model(mostpop.full_scores, split, cfg["ks"], cfg["batch_size"], device)
    config = {**extra.get("config", {"model": model.name, "params": model.params}), "eval": cfg}
    write_json(
        out,
        {
            "model": model.name,
            "n_users": split.n_users,
            "n_items": split.n_items,
            "test": results["test"],
            "valid": results["valid"],
            "baselines": {"mostpop": baseline},
            "eval_seconds": seconds,
            **result_metadata(config, extra.get("seed")),
        },
    )
