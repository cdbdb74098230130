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
from recsae.sae.config import SAEPoint
from recsae.sae.model import SparseAutoencoder, save_sae
from recsae.sae.train import evaluate_sae, fit_baseline, sae_users, train_sae, training_seed


def train(
    settings: dict,
    *,
    model_path: str,
    data_dir: str,
    split_dir: str,
    point_id: str,
    out_dir: str,
    seed: int,
    device: str,
) -> None:
    """Train one sweep point (``settings``: its SAE settings, resolved here once into the
    ``SAEPoint`` that training receives; an SAE, or the non-SAE ``method`` it names, fitted) on
    the recommender at ``model_path`` and write ``out_dir/sae.pt`` (the point in its ``extra``,
    key ``sae_cfg``) and ``out_dir/train_log.json`` (config: the point, seed, version, commit,
    history, summary on held-out users and all items). ``point_id``: dataset/model/path."""
    device = resolve_device(device)
    out_dir = Path(out_dir)
    recommender = load_checkpoint(model_path, device)
    split = load_split(data_dir, split_dir)
    input_dim = model_class(recommender.name).embedding_dim(recommender.params)
    if input_dim is None:
        input_dim = recommender.user_embeddings().shape[1]
    try:
        point = SAEPoint.resolve(settings, input_dim, recommender.scorer_kind)
    except UserError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(f"--settings: {err}") from err
    users = sae_users(point, split.n_users, seed)
    check_fits(
        sae_bytes(input_dim, point.width, point.batch_size, point.tied),
        f"SAE {point_id} (width {point.width})",
        "the point's expansion (or width) or batch_size",
    )
    start = time.perf_counter()
    if point.method == "sae":
        sae, history = train_sae(recommender, split, point, point_id, seed, device, users=users)
    else:
        sae, history = fit_baseline(recommender, split, point, seed, device, users=users)
    seconds = time.perf_counter() - start
    heldout = users.heldout
    eval_users = heldout if len(heldout) else users.train
    summary = {
        "eval_users": "heldout" if len(heldout) else "train",
        **evaluate_sae(sae, recommender, eval_users),
        "train_seconds": seconds,
    }
    extra = {
        "point_id": point_id,
        "seed": seed,
        "holdout_seed": training_seed(point, seed),
        "sae_cfg": point.to_dict(),
        "model_path": str(model_path),
    }
    save = save_sae if isinstance(sae, SparseAutoencoder) else save_method
    save(sae, out_dir / "sae.pt", extra)
    write_json(
        out_dir / "train_log.json",
        {
            **result_metadata(point.to_dict(), seed),
            "point_id": point_id,
            "model_path": str(model_path),
            "device": str(device),
            "history": history,
            "summary": summary,
        },
    )
