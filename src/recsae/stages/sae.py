"""The SAE training stage: one sweep point of one (dataset, model) pair."""

from __future__ import annotations

import time
from pathlib import Path

from recsae.config import ConfigError
from recsae.data.tables import load_split
from recsae.device import resolve_device
from recsae.errors import UserError
from recsae.io import result_metadata, write_json
from recsae.memory import check_fits, sae_bytes
from recsae.methods import save_method
from recsae.recommenders.base import load_checkpoint, model_class
from recsae.sae.model import SparseAutoencoder, save_sae
from recsae.sae.train import (
    evaluate_sae,
    fit_baseline,
    setup_point,
    train_sae,
    training_seed,
)


def train(
    settings: dict,
    *,
    model_path: str,
    data_dir: str,
    split_dir: str,
    point: str,
    out_dir: str,
    seed: int,
    device: str,
) -> None:
    """Train one sweep point (``settings``: its full SAE config; an SAE, or the non-SAE
    ``method`` it names, fitted) on the recommender at ``model_path`` and write
    ``out_dir/sae.pt`` and ``out_dir/train_log.json`` (config, seed, version, commit, history,
    summary on held-out users and all items). ``point``: the point's id, dataset/model/path."""
    sae_cfg, point_id = settings, point
    device = resolve_device(device)
    out_dir = Path(out_dir)
    recommender = load_checkpoint(model_path, device)
    split = load_split(data_dir, split_dir)
    input_dim = model_class(recommender.name).embedding_dim(recommender.params)
    if input_dim is None:
        input_dim = recommender.user_embeddings().shape[1]
    try:
        setup = setup_point(sae_cfg, input_dim, recommender.scorer_kind, split.n_users, seed)
    except UserError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(f"--settings: {err}") from err
    cfg, train_users, heldout = setup.cfg, setup.train_users, setup.heldout_users
    check_fits(
        sae_bytes(input_dim, cfg["width"], cfg["batch_size"], cfg["tied"]),
        f"SAE {point_id} (width {cfg['width']})",
        "the point's expansion (or width) or batch_size",
    )
    start = time.perf_counter()
    if cfg["method"] == "sae":
        sae, history = train_sae(recommender, split, cfg, point_id, seed, device, setup=setup)
    else:
        sae, history = fit_baseline(recommender, split, cfg, seed, device, setup=setup)
    seconds = time.perf_counter() - start
    eval_users = heldout if len(heldout) else train_users
    summary = {
        "eval_users": "heldout" if len(heldout) else "train",
        **evaluate_sae(sae, recommender, eval_users),
        "train_seconds": seconds,
    }
    extra = {
        "point_id": point_id,
        "seed": seed,
        "holdout_seed": training_seed(cfg, seed),
        "sae_cfg": cfg,
        "model_path": str(model_path),
    }
    save = save_sae if isinstance(sae, SparseAutoencoder) else save_method
    save(sae, out_dir / "sae.pt", extra)
    write_json(
        out_dir / "train_log.json",
        {
            **result_metadata(cfg, seed),
            "point_id": point_id,
            "model_path": str(model_path),
            "device": str(device),
            "history": history,
            "summary": summary,
        },
    )
