"""The SAE evaluation stage: one SAE of one recommender -> ``metrics.json`` and
``interventions.json``; the metric functions are those of ``recsae.metrics``. The probe ceiling
(a linear probe on the recommender's embeddings) does not depend on the SAE, so the
``probe-ceiling`` stage computes it once per recommender (``probe_ceiling.json``) and every
evaluation of that recommender's SAEs reads it (``--ceiling-path``; without it the evaluation
computes the ceiling itself, with equal numbers).

Populations. Held-out users = ``split_sae_users(n_users, holdout_fraction, seed)`` with the
fraction and seed the SAE was trained with (read from the checkpoint's ``extra``: the
``holdout_fraction`` of its sweep point, ``sae_cfg`` (``SAEPoint.from_dict``), and
``holdout_seed``, the point's SAE seed; a metrics-config
``holdout_fraction`` that disagrees is an error).
With no held-out users (fraction 0) all users stand in, and ``heldout.users`` says "all".
* monosemanticity, item alignment, planted recovery, item probes: all items; user alignment and
  user probes: all users; ``monosemanticity_active``: items with >= ``active_min_interactions``
  training interactions, which are also the entities concept sizes are counted on
  (``min_concept_count``).
* health: held-out users + all items (as the SAE training log).
* fidelity and accuracy: held-out users (x all items); item embedding fidelity: all items.
* interventions: held-out users (see ``recsae.interventions``).

metrics.json (NaN written as null)::

    config, seed, recsae_version, git_commit      # recsae.io.result_metadata; config = resolved cfg
    heldout: {users: "heldout"|"all", n_users, holdout_fraction, holdout_seed}
    summary: flat scalars for tables -- every family's declared scalars (recsae.metrics.registry;
        their reference: `recsae metrics-reference`)
    monosemanticity: recsae.metrics.monosemanticity.monosemanticity (per_neuron: H floats)
    monosemanticity_active: recsae.metrics.monosemanticity.active_monosemanticity
    alignment: {items: ..., users: ...}  recsae.metrics.alignment.alignment_summary
    planted: {items: ... | null, users: ... | null}  recsae.metrics.alignment.planted_recovery
    probes: {items: ..., users: ...}  recsae.metrics.probes.probe_summary
    health: recsae.metrics.health.health
    fidelity: {users: {mse, fvu, cosine}, items: {...}, scores: score_fidelity}
    accuracy: {original: {...}, reconstructed: {...}, delta: {...}}  (rank_metrics keys)

interventions.json::

    config, seed, recsae_version, git_commit
    summary: {filtering|nudging|promotion: {n_concepts, share_original, share_reconstructed,
              levels: [per-level means over concepts]}}
    concepts: [{family, concept, neuron, auroc, precision, filtering, promotion, nudging}]
      (the concepts of ``recsae.interventions.choose_concepts``)
      (per-level rows: level, raw_level, share, ndcg@K, delta_ndcg@K, overlap@k,
       off_target_change; promotion rows add success and mean_rank)

probe_ceiling.json (NaN written as null)::

    config, seed, recsae_version, git_commit      # the metrics config and seed it was made with
    items: [C_items floats], users: [C_users floats]   # recsae.metrics.probes.probe_ceiling

Metrics config keys, their defaults and meaning: ``config/schema.yaml``, key ``metrics``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsae.config import resolve_metrics_config
from recsae.data.tables import Split, load_concepts, load_split
from recsae.device import resolve_device
from recsae.interventions import ConceptEditor, run_interventions, sae_decode
from recsae.io import result_metadata, write_json
from recsae.metrics import registry
from recsae.metrics.alignment import (
    alignment_summary,
    auroc_matrix,
    entity_concepts,
    planted_recovery,
    top_precision,
)
from recsae.metrics.fidelity import accuracy_fidelity, embedding_fidelity, score_fidelity
from recsae.metrics.health import health
from recsae.metrics.monosemanticity import active_monosemanticity, monosemanticity
from recsae.metrics.probes import probe_ceiling, probe_summary
from recsae.recommenders.base import load_checkpoint
from recsae.sae.config import SAEPoint
from recsae.sae.holdout import split_sae_users
from recsae.sae.model import load_sae, load_sae_extra


def evaluate(
    settings: dict,
    *,
    model_path: str,
    sae_path: str,
    data_dir: str,
    split_dir: str,
    metrics_out: str,
    interventions_out: str,
    seed: int,
    device: str,
    ceiling_path: str | None = None,
) -> None:
    """Evaluate the SAE at ``sae_path`` of the recommender at ``model_path`` and write
    ``metrics_out`` and ``interventions_out`` (``settings``: the config's ``metrics`` block;
    ``ceiling_path``: that recommender's ``probe_ceiling.json``, made with the same settings and
    seed)."""
    cfg = resolve_metrics_config(settings)
    device = resolve_device(device)
    model = load_checkpoint(model_path, device)
    sae = load_sae(sae_path, device)
    split = load_split(data_dir, split_dir)
    fraction, holdout_seed = sae_holdout(sae_path, cfg["holdout_fraction"], seed)
    _, heldout = split_sae_users(split.n_users, fraction, holdout_seed)
    concepts = _load_concepts(data_dir)
    ceilings = read_ceilings(ceiling_path, cfg, seed) if ceiling_path else None
    metrics, interventions = evaluate_loaded(
        model, sae, split, concepts, heldout, cfg, seed, ceilings
    )
    metrics["heldout"].update(holdout_fraction=fraction, holdout_seed=holdout_seed)
    write_json(metrics_out, _finite({**result_metadata(cfg, seed), **metrics}))
    write_json(interventions_out, _finite({**result_metadata(cfg, seed), **interventions}))


def probe_ceilings(
    settings: dict,
    *,
    model_path: str,
    data_dir: str,
    split_dir: str,
    out: str,
    seed: int,
    device: str,
) -> None:
    """Write ``out`` (probe_ceiling.json): the cross-validated probe ceiling per item and user
    concept of the recommender at ``model_path`` (``settings``: the config's ``metrics`` block)."""
    cfg = resolve_metrics_config(settings)
    model = load_checkpoint(model_path, resolve_device(device))
    split = load_split(data_dir, split_dir)
    labels = entity_labels(split.matrix("train"), _load_concepts(data_dir), cfg)
    with torch.no_grad():
        embeddings = {"items": model.item_embeddings(), "users": model.user_embeddings()}
    ceilings = embedding_ceilings(embeddings, labels, cfg, seed)
    payload = {part: values.tolist() for part, values in ceilings.items()}
    write_json(out, _finite({**result_metadata(cfg, seed), **payload}))


def read_ceilings(path: str, cfg: dict, seed: int) -> dict[str, np.ndarray]:
    """{"items": (C_items,), "users": (C_users,)} ceilings of a ``probe_ceiling.json``, which must
    have been made with the resolved metrics config ``cfg`` and ``seed``."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    theirs, ours = payload.get("config", {}), json.loads(json.dumps(cfg))
    differing = sorted(
        key for key in ours.keys() | theirs.keys() if ours.get(key) != theirs.get(key)
    )
    if differing:
        key = differing[0]
        problem = f"metrics {key!r} = {theirs.get(key)!r}, this evaluation has {ours.get(key)!r}"
    elif payload.get("seed") != seed:
        problem = f"seed {payload.get('seed')}, this evaluation uses seed {seed}"
    else:
        return {
            part: np.array([np.nan if v is None else v for v in payload[part]], dtype=np.float64)
            for part in ("items", "users")
        }
    raise ValueError(
        f"{path} was made with {problem}; recompute it with `recsae probe-ceiling` and the "
        "evaluation's settings"
    )


def entity_labels(train, concepts: pd.DataFrame, cfg: dict) -> dict:
    """{"items": ..., "users": ...} scored concepts (``entity_concepts``) of the long label table
    ``concepts``, with popularity buckets of items and activity buckets of users counted on the
    training matrix ``train`` (n_users, n_items)."""
    return {
        "items": entity_concepts(
            concepts, "item", np.asarray(train.sum(0)).ravel(), "popularity", cfg
        ),
        "users": entity_concepts(
            concepts, "user", np.asarray(train.sum(1)).ravel(), "activity", cfg
        ),
    }


def embedding_ceilings(
    embeddings: dict[str, torch.Tensor], labels: dict, cfg: dict, seed: int
) -> dict[str, np.ndarray]:
    """{"items": (C_items,), "users": (C_users,)} probe ceilings of the embeddings
    (N_items, d) and (N_users, d) for the concepts of ``entity_labels``."""
    return {
        part: probe_ceiling(
            embeddings[part].detach().cpu().double().numpy(),
            labels[part].dense(),
            cfg["probe_folds"],
            seed,
        )
        for part in ("items", "users")
    }


def _load_concepts(data_dir: str) -> pd.DataFrame:
    """The long label table (entity, id, family, concept) of items and users."""
    return pd.concat(
        [
            load_concepts(data_dir, "item").assign(entity="item"),
            load_concepts(data_dir, "user").assign(entity="user"),
        ],
        ignore_index=True,
    )


def sae_holdout(sae_path, fraction: float | None, seed: int) -> tuple[float, int]:
    """(holdout_fraction, holdout seed) the SAE at ``sae_path`` was trained with (falling back to
    ``fraction`` and ``seed`` when the checkpoint does not record them)."""
    extra = load_sae_extra(sae_path)
    try:
        point = SAEPoint.from_dict(extra["sae_cfg"]) if extra.get("sae_cfg") else None
    except ValueError as err:
        raise ValueError(f"{sae_path}: its sweep point: {err}") from err
    stored = point.holdout_fraction if point is not None else None
    if stored is not None and fraction is not None and not math.isclose(stored, fraction):
        raise ValueError(
            f"metrics holdout_fraction {fraction} differs from the SAE's {stored} ({sae_path}); "
            "fidelity must be measured on the users the SAE did not see"
        )
    if stored is None and fraction is None:
        raise ValueError(
            f"{sae_path} does not record holdout_fraction; set metrics holdout_fraction"
        )
    holdout_seed = extra.get("holdout_seed", extra.get("seed", seed))
    return float(stored if stored is not None else fraction), int(holdout_seed)


@torch.no_grad()
def evaluate_loaded(
    model,
    sae,
    split: Split,
    concepts: pd.DataFrame,
    heldout: np.ndarray,
    cfg: dict,
    seed: int,
    ceilings: dict[str, np.ndarray] | None = None,
):
    """(metrics, interventions) dicts for a loaded recommender and SAE.

    concepts: long-format labels (entity, id, family, concept); heldout: sorted user ids (empty:
    all users); cfg: a resolved metrics config (``resolve_metrics_config``); ceilings: the
    recommender's probe ceilings (``read_ceilings``), computed here when None.
    """
    users = heldout if len(heldout) else np.arange(split.n_users, dtype=np.int64)
    icfg = cfg["interventions"]
    editor = ConceptEditor(model, sae, icfg["level_scale"], icfg["keep_error"])
    user_emb, item_emb = editor.embeddings["user"], editor.embeddings["item"]
    z_users, z_items = editor.latents("user"), editor.latents("item")
    user_hat = sae_decode(sae, z_users, user_emb)
    item_hat = sae_decode(sae, z_items, item_emb)
    matrices = {part: split.matrix(part) for part in ("train", "valid", "test")}
    train = matrices["train"]

    item_counts = np.asarray(train.sum(0)).ravel()
    labels = entity_labels(train, concepts, cfg)
    item_concepts, user_concepts = labels["items"], labels["users"]
    if ceilings is None:
        ceilings = embedding_ceilings({"items": item_emb, "users": user_emb}, labels, cfg, seed)
    item_align, item_auroc, item_precision = _alignment(z_items, item_concepts, cfg)
    align = {"items": item_align, "users": _alignment(z_users, user_concepts, cfg)[0]}
    planted = {
        "items": planted_recovery(z_items, item_concepts),
        "users": planted_recovery(z_users, user_concepts),
    }
    probes = {
        part: probe_summary(
            ceilings[part],
            z.detach().cpu().double().numpy(),
            concepts.dense(),
            np.asarray(align[part]["per_concept"]["auroc"], dtype=np.float64),
            cfg["probe_ks"],
            cfg["probe_folds"],
            seed,
        )
        for part, z, concepts in (
            ("items", z_items, item_concepts),
            ("users", z_users, user_concepts),
        )
    }
    idx = torch.as_tensor(users, device=user_emb.device)
    emb, recon = (user_emb, item_emb), (user_hat, item_hat)
    seen = matrices["train"] + matrices["valid"]
    metrics = {
        "heldout": {"users": "heldout" if len(heldout) else "all", "n_users": len(users)},
        "monosemanticity": monosemanticity(z_items, item_emb, cfg["ms_top_k"]),
        "monosemanticity_active": active_monosemanticity(
            z_items, item_emb, item_counts, cfg["active_min_interactions"], cfg["ms_top_k"]
        ),
        "alignment": align,
        "planted": planted,
        "probes": probes,
        "health": health(z_users[idx], z_items, cfg["dense_threshold"]),
        "fidelity": {
            "users": embedding_fidelity(user_emb[idx], user_hat[idx]),
            "items": embedding_fidelity(item_emb, item_hat),
            "scores": score_fidelity(
                model,
                emb,
                recon,
                users,
                train,
                cfg["agreement_k"],
                cfg["rbo_p"],
                cfg["overlap_ks"],
                cfg["batch_size"],
            ),
        },
        "accuracy": accuracy_fidelity(
            model, emb, recon, users, seen, matrices["test"], cfg["ks"], cfg["batch_size"]
        ),
    }
    interventions = run_interventions(
        editor, matrices, item_concepts, item_auroc, users, icfg, seed, item_precision
    )
    summary = registry.summary({**metrics, "interventions": interventions}, cfg)
    return {"summary": summary, **metrics}, interventions


def _alignment(acts, concepts, cfg) -> tuple[dict, np.ndarray, np.ndarray]:
    """Alignment summary and the (H, C) AUROC and top-k precision tables of acts (N, H)."""
    k, threshold = cfg["align_top_k"], cfg["auroc_threshold"]
    margin = cfg["label_precision_margin"]
    if len(concepts) == 0:
        empty = np.zeros((acts.shape[1], 0))
        return alignment_summary(acts, concepts, None, None, k, threshold, margin), empty, empty
    auroc = auroc_matrix(acts, concepts.labels)
    precision = top_precision(acts, concepts.labels, k)
    summary = alignment_summary(acts, concepts, auroc, precision, k, threshold, margin)
    return summary, auroc, precision


def _finite(obj):
    """Copy of a JSON-like object with NaN/inf floats replaced by None."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
