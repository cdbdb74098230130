"""Prediction-aware SAE training on a frozen recommender's user and item embeddings.

One SAE is shared by users and items. With ``batching: independent`` each step draws a batch of
SAE-training users and a batch of items (an epoch is one pass over the larger pool; the smaller one
cycles through fresh permutations); with ``batching: samples`` (the authors') a step is a batch of
the recommender's (user, item, label) training samples (``sample_steps``). Each step minimises

    alpha * L_emb + beta * L_pred + lambda_kl * L_KL + lambda_l1 * L_1 (+ aux_k_coef * AuxK)
    (+ the activation's own penalty, e.g. JumpReLU's lambda_l0 * L0)

(docs/method.md, "Loss terms"), computed in the SAE's input space (after ``input_scaling``). The
recommender is frozen (``requires_grad_(False)``, eval mode): gradients
of L_pred flow through its scorer into the SAE only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recsae.data.tables import Split
from recsae.methods import ConceptMethod, fit_method
from recsae.recommenders.base import Recommender
from recsae.recommenders.sampling import NegativeSampler, pointwise_epoch, train_pairs
from recsae.sae import losses
from recsae.sae.config import SAEConfig, SAEPoint
from recsae.sae.holdout import split_sae_users
from recsae.sae.model import SAEOutput, SparseAutoencoder
from recsae.seeding import numpy_rng, torch_generator

TERMS = ("loss", "emb", "pred", "kl", "l1", "auxk")
EVAL_CHUNK = 4096
SCORE_PAIRS_PER_CHUNK = 2**19


@dataclass
class PairBatch:
    """Scored (user, item) pairs of one step: ``user_rows`` (P,) index the step's user batch,
    ``users``/``items`` (P,) are global ids; the items' inputs are either ``item_rows`` (P,) of the
    step's item batch or ``item_emb`` (P, d) (in the SAE's input space)."""

    user_rows: torch.Tensor
    users: torch.Tensor
    items: torch.Tensor
    item_emb: torch.Tensor | None = None
    item_rows: torch.Tensor | None = None


class PairSampler:
    """One observed training item per batch user plus negatives from the recommenders'
    ``NegativeSampler`` (uniform, never a training positive of the user)."""

    def __init__(self, split: Split):
        csr = split.matrix("train")
        self.indptr = csr.indptr.astype(np.int64)
        self.indices = csr.indices.astype(np.int64)
        self.negatives = NegativeSampler(csr, "uniform")

    def sample(
        self, batch_users: np.ndarray, negatives_per_positive: int, rng: np.random.Generator
    ):
        """(rows, users, items) int64 arrays: one observed training item per batch user that has
        one, then ``negatives_per_positive`` unobserved items per positive."""
        start = self.indptr[batch_users]
        deg = self.indptr[batch_users + 1] - start
        rows = np.flatnonzero(deg > 0)
        pos = self.indices[start[rows] + (rng.random(len(rows)) * deg[rows]).astype(np.int64)]
        neg_rows = np.repeat(rows, negatives_per_positive)
        neg = self.negatives.sample(batch_users[neg_rows], rng)
        all_rows = np.concatenate([rows, neg_rows])
        return all_rows, batch_users[all_rows], np.concatenate([pos, neg])


@dataclass
class StepIds:
    """Ids of one training step: ``users`` (Bu,) and ``items`` (Bv,) are the rows the SAE encodes;
    for a pairwise recommender either ``aligned`` (pair p is user row p with item row p) or
    ``pairs`` = (user rows, users, items) arrays from ``PairSampler``."""

    users: np.ndarray
    items: np.ndarray
    aligned: bool = False
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def independent_steps(
    train_users: np.ndarray,
    n_items: int,
    point: SAEPoint,
    sampler: PairSampler | None,
    rng: np.random.Generator,
) -> list[StepIds]:
    """One epoch of ``batching: independent``: user and item batches drawn separately, the
    epoch one pass over the larger pool (the smaller cycles through fresh permutations); a
    pairwise recommender's pairs from ``sampler`` (negatives dropped with ``pred_pairs:
    positives``)."""
    bu, bv = min(point.batch_size, len(train_users)), min(point.batch_size, n_items)
    steps = math.ceil(max(len(train_users), n_items) / point.batch_size)
    user_batches = _batches(train_users, steps, bu, rng)
    item_batches = _batches(np.arange(n_items), steps, bv, rng)
    out = []
    for users, items in zip(user_batches, item_batches, strict=True):
        pairs = None
        if sampler is not None:
            negatives = point.negatives_per_positive
            rows, pu, pi = sampler.sample(users, negatives, rng)
            if point.pred_pairs == "positives":
                keep = len(rows) // (1 + negatives)
                rows, pu, pi = rows[:keep], pu[:keep], pi[:keep]
            pairs = (rows, pu, pi)
        out.append(StepIds(users, items, pairs=pairs))
    return out


def sample_steps(
    samples: dict[str, np.ndarray], heldout: np.ndarray, point: SAEPoint, pairwise: bool
) -> list[StepIds]:
    """One epoch of ``batching: samples`` (the authors'): the shuffled (user, item, label)
    training samples cut into batches of ``batch_size``. A dot-product recommender's step encodes
    the batch's users that are not held out and all its items; a pairwise one's step encodes the
    batch's pairs whose user is not held out (only the positive ones with ``pred_pairs:
    positives``), users and items row-aligned. Steps with nothing to encode are left out."""
    out = []
    size = point.batch_size
    for begin in range(0, len(samples["users"]), size):
        users = samples["users"][begin : begin + size]
        items = samples["items"][begin : begin + size]
        keep = ~heldout[users]
        if pairwise:
            if point.pred_pairs == "positives":
                keep &= samples["labels"][begin : begin + size] > 0
            step = StepIds(users[keep], items[keep], aligned=True)
        else:
            step = StepIds(users[keep], items)
        if len(step.users):
            out.append(step)
    return out


def column_minmax(x: torch.Tensor) -> torch.Tensor:
    """(N, d) scaled per column to [0, 1] by the columns' own min and max (a constant column
    becomes 0): the authors' per-batch scaling (``input_scaling: minmax_batch``)."""
    low, high = x.min(dim=0).values, x.max(dim=0).values
    span = high - low
    return torch.where(span > 0, (x - low) / torch.where(span > 0, span, 1.0), 0.0)


def training_scaler(sae: SparseAutoencoder, input_scaling: str) -> Callable:
    """The map from embeddings (N, d) to the SAE's training inputs (N, d): the module's fitted
    ``scale`` (none, minmax) or each batch's own column min-max (minmax_batch)."""
    return column_minmax if input_scaling == "minmax_batch" else sae.scale


def freeze(recommender: Recommender) -> Recommender:
    """Eval mode and no gradients for every recommender parameter (in place)."""
    recommender.requires_grad_(False)
    return recommender.eval()


def sae_loss_terms(
    sae: SparseAutoencoder,
    recommender: Recommender,
    u: torch.Tensor,
    v: torch.Tensor,
    point: SAEPoint,
    pairs: PairBatch | None = None,
    dead: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], SAEOutput, SAEOutput]:
    """Every loss term of one step and the forward outputs.

    u (Bu, d) user and v (Bv, d) item embeddings (originals); ``point`` the resolved sweep point;
    ``pairs`` the scored pairs for a pairwise recommender; ``dead`` (h,) bool for AuxK.
    Every input is in the SAE's input space (``training_scaler``), and so are the losses.
    Returns ({"loss", "emb", "pred", "kl", "l1", "auxk"} scalars, plus "penalty" when the
    activation has one (``has_penalty``), users' output, items' output).
    """
    out_u, out_v = sae.forward_scaled(u), sae.forward_scaled(v)
    zero = u.new_zeros(())
    if sae.config.prefix_sizes is not None:
        emb = losses.matryoshka_embedding_loss(
            sae.decode_prefixes(out_u.z, out_u.stats),
            u,
            sae.decode_prefixes(out_v.z, out_v.stats),
            v,
        )
    else:
        emb = losses.embedding_loss(out_u.x_hat, u, out_v.x_hat, v)
    with torch.set_grad_enabled(torch.is_grad_enabled() and point.beta > 0):
        if recommender.scorer_kind == "pairwise":
            pred = zero
            if pairs is not None and len(pairs.users):
                if pairs.item_rows is not None:
                    v_pairs, v_hat = v[pairs.item_rows], out_v.x_hat[pairs.item_rows]
                else:
                    v_pairs = pairs.item_emb
                    v_hat = sae.forward_scaled(v_pairs).x_hat
                ids = {"users": pairs.users, "items": pairs.items}
                recon = recommender.score_pairs(out_u.x_hat[pairs.user_rows], v_hat, **ids)
                with torch.no_grad():
                    orig = recommender.score_pairs(u[pairs.user_rows], v_pairs, **ids)
                pred = losses.pairwise_prediction_loss(recon, orig, point.pred_loss)
        else:
            recon = recommender.score_matrix(out_u.x_hat, out_v.x_hat)
            with torch.no_grad():
                orig = recommender.score_matrix(u, v)
            pred = losses.score_mse(recon, orig)
    kl = losses.kl_sparsity_loss(out_u.z, point.rho) + losses.kl_sparsity_loss(out_v.z, point.rho)
    weights = sae.l1_weights()
    l1 = losses.l1_loss(out_u.z, weights) + losses.l1_loss(out_v.z, weights)
    auxk = zero
    if dead is not None and point.ranked:
        auxk = sum(
            losses.auxk_loss(
                sae.decode_direction(losses.auxk_latents(o.pre_acts, dead, point.aux_k), o.stats),
                x - o.x_hat,
                dead,
            )
            for o, x in ((out_u, u), (out_v, v))
        )
    total = (
        point.alpha * emb
        + point.beta * pred
        + point.lambda_kl * kl
        + point.lambda_l1 * l1
        + point.aux_k_coef * auxk
    )
    terms = {"loss": total, "emb": emb, "pred": pred, "kl": kl, "l1": l1, "auxk": auxk}
    if has_penalty(sae):
        terms["penalty"] = sae.activation.penalty(out_u.pre_acts) + sae.activation.penalty(
            out_v.pre_acts
        )
        terms["loss"] = total + terms["penalty"]
    return terms, out_u, out_v


def has_penalty(sae: SparseAutoencoder) -> bool:
    """Whether the SAE's activation adds its own (weighted) term to the loss (JumpReLU's L0),
    reported as the loss term ``penalty``."""
    return callable(getattr(sae.activation, "penalty", None))


def _batches(pool: np.ndarray, steps: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(steps, size) ids: consecutive fresh permutations of ``pool``, cut into batches."""
    reps = math.ceil(steps * size / len(pool))
    seq = np.concatenate([pool[rng.permutation(len(pool))] for _ in range(reps)])
    return seq[: steps * size].reshape(steps, size)


@dataclass(frozen=True)
class SAEUsers:
    """The SAE user holdout of one point (``split_sae_users``): train (U_t,) and heldout (U_h,)
    user ids."""

    train: np.ndarray
    heldout: np.ndarray


def sae_users(point: SAEPoint, n_users: int, seed: int) -> SAEUsers:
    """Hold out ``point.holdout_fraction`` of ``n_users`` users with the point's
    ``training_seed`` (a job does this once): each SAE seed of a point draws its own held-out
    users, so the spread over seeds includes the holdout draw."""
    return SAEUsers(*split_sae_users(n_users, point.holdout_fraction, training_seed(point, seed)))


def point_for(recommender: Recommender, settings: Mapping[str, Any]) -> SAEPoint:
    """A sweep point's ``settings`` resolved for ``recommender``: its embedding size and scorer
    family (``SAEPoint.resolve``)."""
    input_dim = recommender.user_embeddings().shape[1]
    return SAEPoint.resolve(settings, input_dim, recommender.scorer_kind)


def training_seed(point: SAEPoint, seed: int) -> int:
    """The seed of a point's initialisation and batches (an SAE) or of its fit (a baseline): the
    point's own ``seed`` (the sweep's SAE seed) when set, else the config's ``seed``."""
    return seed if point.seed is None else point.seed


def train_sae(
    recommender: Recommender,
    split: Split,
    point: SAEPoint,
    point_id: str,
    seed: int,
    device: str | torch.device = "cpu",
    log: Callable[[str], None] | None = print,
    users: SAEUsers | None = None,
) -> tuple[SparseAutoencoder, list[dict]]:
    """Train one SAE (sweep point ``point``, resolved for the recommender's embedding size) on
    the frozen ``recommender``'s embeddings.

    Returns the SAE (eval mode) and the per-epoch history: mean loss terms, L0 of users and items,
    dead fraction (latents never active in the epoch), the BatchTopK threshold where there is one,
    seconds and embeddings per second. A non-finite loss raises a RuntimeError naming ``point_id``.
    ``seed`` is the config's; ``point.seed``, when set, replaces it for the user holdout,
    the initialisation and the batches (``training_seed``).
    ``users``: the point's user holdout as the caller drew it (``sae_users``); None draws it here.
    """
    device = torch.device(device)
    recommender = freeze(recommender.to(device))
    with torch.no_grad():
        user_emb = recommender.user_embeddings().detach().float()
        item_emb = recommender.item_embeddings().detach().float()
    input_dim = user_emb.shape[1]
    pairwise = recommender.scorer_kind == "pairwise"
    if users is None:
        users = sae_users(point, split.n_users, seed)
    train_users, heldout_users = users.train, users.heldout
    train_seed = training_seed(point, seed)
    config = SAEConfig.from_point(point, input_dim)
    sae = SparseAutoencoder(config, generator=torch_generator(train_seed, "sae_init")).to(device)
    train_inputs = torch.cat([user_emb[torch.as_tensor(train_users, device=device)], item_emb])
    sae.fit_input_scaling_(train_inputs)
    to_input = training_scaler(sae, point.input_scaling)
    sae.init_pre_bias_(to_input(train_inputs))
    sae.train()
    optimizer = torch.optim.Adam(sae.parameters(), lr=point.lr)
    track_dead = point.ranked and point.aux_k_coef > 0
    n_items = item_emb.shape[0]
    if point.batching == "samples":
        heldout = np.zeros(split.n_users, dtype=bool)
        heldout[heldout_users] = True
        sample_users, sample_items = train_pairs(split.matrix("train"))
        negatives = NegativeSampler(split.matrix("train"), "uniform")
    else:
        sampler = PairSampler(split) if pairwise else None
    history: list[dict] = []
    for epoch in range(point.epochs):
        start = time.perf_counter()
        rng = numpy_rng(train_seed, "sae_batches", epoch)
        if point.batching == "samples":
            samples = pointwise_epoch(
                sample_users, sample_items, negatives, point.negatives_per_positive, rng
            )
            steps = sample_steps(samples, heldout, point, pairwise)
        else:
            steps = independent_steps(train_users, n_items, point, sampler, rng)
        names = (*TERMS, "penalty") if has_penalty(sae) else TERMS
        sums = {name: torch.zeros((), device=device) for name in (*names, "l0_users", "l0_items")}
        epoch_active = torch.zeros(config.width, dtype=torch.bool, device=device)
        n_rows = 0
        for step_index, ids in enumerate(steps):
            batch_users = torch.as_tensor(ids.users, device=device)
            items = torch.as_tensor(ids.items, device=device)
            u, v = to_input(user_emb[batch_users]), to_input(item_emb[items])
            n_rows += len(batch_users) + len(items)
            pairs = None
            if ids.aligned:
                rows = torch.arange(len(batch_users), device=device)
                pairs = PairBatch(rows, batch_users, items, item_rows=rows)
            elif ids.pairs is not None:
                rows, pu, pi = (torch.as_tensor(a, device=device) for a in ids.pairs)
                pairs = PairBatch(rows, pu, pi, item_emb=to_input(item_emb[pi]))
            dead = sae.dead_mask(point.dead_steps_threshold) if track_dead else None
            terms, out_u, out_v = sae_loss_terms(sae, recommender, u, v, point, pairs, dead)
            if not torch.isfinite(terms["loss"]):
                values = {k: float(t.detach()) for k, t in terms.items()}
                raise RuntimeError(
                    f"SAE training of sweep point {point_id!r} diverged at epoch {epoch + 1}, "
                    f"step {step_index + 1}: non-finite loss; terms {values}"
                )
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            sae.normalize_decoder_()
            with torch.no_grad():
                active_u, active_v = out_u.z > 0, out_v.z > 0
                active = active_u.any(dim=0) | active_v.any(dim=0)
                sae.update_activity(active)
                epoch_active |= active
                for name in names:
                    sums[name] += terms[name].detach()
                sums["l0_users"] += active_u.sum(dim=1).float().mean()
                sums["l0_items"] += active_v.sum(dim=1).float().mean()
        seconds = time.perf_counter() - start
        record = {
            "epoch": epoch + 1,
            **{k: float(t) / max(len(steps), 1) for k, t in sums.items()},
        }
        record["dead_fraction"] = float((~epoch_active).float().mean())
        threshold = getattr(sae.activation, "threshold", None)
        if threshold is not None:
            record["threshold"] = float(threshold)
        record["seconds"] = seconds
        record["embeddings_per_second"] = n_rows / max(seconds, 1e-9)
        history.append(record)
        if log is not None:
            log(
                f"[{point_id}] epoch {epoch + 1}/{point.epochs} loss {record['loss']:.5g} "
                f"emb {record['emb']:.4g} pred {record['pred']:.4g} kl {record['kl']:.4g} "
                f"l1 {record['l1']:.4g} auxk {record['auxk']:.4g} L0 u/i {record['l0_users']:.2f}/"
                f"{record['l0_items']:.2f} dead {record['dead_fraction']:.3f}"
            )
    return sae.eval(), history


@torch.no_grad()
def fit_baseline(
    recommender: Recommender,
    split: Split,
    point: SAEPoint,
    seed: int,
    device: str | torch.device = "cpu",
    users: SAEUsers | None = None,
) -> tuple[ConceptMethod, list[dict]]:
    """Fit the non-SAE method ``point.method`` on the embeddings an SAE of the same point
    trains on (its training users, then all items), seeded like an SAE (``training_seed``: the
    point's SAE seed, the holdout from the config's ``seed``). Returns the method (eval mode, on
    ``device``) and a one-record history: inputs fitted on, L0 of users and items, seconds.
    ``users``: the point's user holdout as the caller drew it (``sae_users``); None draws it
    here."""
    device = torch.device(device)
    user_emb = recommender.to(device).user_embeddings().detach().float().cpu()
    item_emb = recommender.item_embeddings().detach().float().cpu()
    if users is None:
        users = sae_users(point, split.n_users, seed)
    train_users = users.train
    start = time.perf_counter()
    x = torch.cat([user_emb[torch.as_tensor(train_users)], item_emb])
    model = fit_method(point, x, training_seed(point, seed))
    seconds = time.perf_counter() - start
    z_users, z_items = model.encode(user_emb[torch.as_tensor(train_users)]), model.encode(item_emb)
    record = {
        "epoch": 1,
        "n_inputs": len(x),
        "l0_users": float((z_users > 0).sum(1).float().mean()),
        "l0_items": float((z_items > 0).sum(1).float().mean()),
        "seconds": seconds,
    }
    return model.to(device), [record]


@torch.no_grad()
def _encode_all(sae: SparseAutoencoder, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, d) -> latents (N, h) and reconstructions (N, d), in chunks."""
    outs = [sae(chunk) for chunk in x.split(EVAL_CHUNK)]
    return torch.cat([o.z for o in outs]), torch.cat([o.x_hat for o in outs])


@torch.no_grad()
def evaluate_sae(sae: SparseAutoencoder, recommender: Recommender, users: np.ndarray) -> dict:
    """Summary of a trained SAE (eval mode) on ``users``' embeddings and all items.

    L0 (mean active latents) of users and items, dead fraction (never active on either),
    embedding MSE and FVU, and prediction MSE between the recommender's logits (no per-id biases)
    on reconstructed vs original embeddings over users x all items.
    """
    sae.eval()
    u = recommender.user_embeddings().detach().float()
    device = u.device
    u = u[torch.as_tensor(users, device=device)]
    v = recommender.item_embeddings().detach().float()
    zu, u_hat = _encode_all(sae, u)
    zv, v_hat = _encode_all(sae, v)
    sq_err, count = 0.0, 0
    chunk = max(1, SCORE_PAIRS_PER_CHUNK // max(len(v), 1))
    for rows in torch.arange(len(u), device=device).split(chunk):
        diff = recommender.score_matrix(u_hat[rows], v_hat) - recommender.score_matrix(u[rows], v)
        sq_err += float(diff.pow(2).sum())
        count += diff.numel()
    active = (zu > 0).any(dim=0) | (zv > 0).any(dim=0)
    return {
        "n_eval_users": len(users),
        "n_items": len(v),
        "l0_users": float((zu > 0).sum(dim=1).float().mean()),
        "l0_items": float((zv > 0).sum(dim=1).float().mean()),
        "dead_fraction": float((~active).float().mean()),
        "emb_mse_users": float(losses.mse(u_hat, u)),
        "emb_mse_items": float(losses.mse(v_hat, v)),
        "fvu_users": float(losses.fraction_variance_unexplained(u_hat, u)),
        "fvu_items": float(losses.fraction_variance_unexplained(v_hat, v)),
        "prediction_mse": sq_err / max(count, 1),
    }
