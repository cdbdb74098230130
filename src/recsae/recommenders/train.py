"""Training, export and evaluation of a base recommender: one plain loop, no framework.

Per epoch: fresh negatives (``sampling``), one shuffled pass in minibatches, the mean loss, and
every ``eval_every`` epochs the full-ranking validation metrics (training items excluded). The
best state by ``early_stopping_metric`` is kept in memory and restored at the end (``restore_best``;
false keeps the last epoch); training stops after ``early_stopping_patience`` evaluations without
improvement (0 = never stop early). ``resample_negatives: false`` draws the negatives once and
only reshuffles them; ``loss_reduction: sum`` steps on the batch's summed loss (the authors' MF
update); ``negative_scheme: per_user`` draws the authors' negatives (``epoch_sampler``);
``collapse_fallback_lr`` retrains at that learning rate when the output collapses to a constant
(the authors' NCF at lr 0.05). docs/method.md, "Base recommenders", gives the reasons.
"""

from __future__ import annotations

import copy
import time

import jsonschema
import numpy as np
import torch

from recsae.config import check_layered, layered_defaults
from recsae.data.tables import Split
from recsae.device import resolve_device
from recsae.metrics.accuracy import AT_K_METRICS, RankingTask, rank_metrics
from recsae.recommenders.base import (
    Recommender,
    model_class,
    registered_models,
)
from recsae.recommenders.collapse import OutputCollapsed, is_constant_output
from recsae.recommenders.row_adam import RowAdam
from recsae.recommenders.sampling import (
    NegativeSampler,
    pairwise_epoch,
    per_user_epoch,
    pointwise_epoch,
    reshuffle,
    train_pairs,
)
from recsae.seeding import numpy_rng, seed_everything

# The global layer of training settings: config/schema.yaml, $defs.train_settings.
TRAIN_DEFAULTS = layered_defaults("train_settings")
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad}


def resolve_config(model_name: str, params: dict, train_cfg: dict) -> tuple[dict, dict]:
    """Full (params, train_cfg): global defaults < the model's defaults < its preset (named by
    train_cfg["preset"]) < the given values. Unknown keys raise a KeyError naming them, a param
    outside the model's ``param_schema`` (type or range) a ValueError naming it."""
    cls = model_class(model_name)
    preset_name = train_cfg.get("preset", TRAIN_DEFAULTS["preset"])
    if preset_name == "default":
        preset = {}
    elif preset_name in cls.presets:
        preset = cls.presets[preset_name]
    else:
        raise KeyError(f"{model_name}: unknown preset {preset_name!r}; have {sorted(cls.presets)}")
    full_params = {**cls.default_params, **preset.get("params", {}), **params}
    full_train = {**TRAIN_DEFAULTS, **cls.default_train, **preset.get("train", {}), **train_cfg}
    for given, allowed, what in (
        (params, cls.default_params, "params"),
        (train_cfg, TRAIN_DEFAULTS, "train"),
    ):
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            raise KeyError(
                f"{model_name}: unknown {what} key(s) {unknown}; known {sorted(allowed)}"
            )
    for key, schema in cls.param_schema.items():
        try:
            jsonschema.validate(full_params.get(key), schema)
        except jsonschema.ValidationError as err:
            raise ValueError(f"params.{key}: {err.message}") from None
    if full_train["sparse_updates"] and (
        not cls.row_tables or full_train["optimizer"] != "adam" or full_train["weight_decay"]
    ):
        raise KeyError(
            f"{model_name}: train sparse_updates needs a model with embedding tables read by row "
            f"({[n for n in registered_models() if model_class(n).row_tables]}), "
            "optimizer adam and weight_decay 0"
        )
    if full_train["per_sample"] and (
        not _implements(cls, "per_sample_sgd")
        or full_train["optimizer"] != "sgd"
        or full_train["weight_decay"]
        or full_train["sparse_updates"]
    ):
        raise KeyError(
            f"{model_name}: train per_sample needs a model with a per-sample kernel "
            f"({_models_with('per_sample_sgd')}), "
            "optimizer sgd, weight_decay 0 and sparse_updates false"
        )
    if full_train["analytic_gradients"] and (
        not _implements(cls, "analytic_gradients")
        or full_train["sparse_updates"]
        or full_train["per_sample"]
    ):
        raise KeyError(
            f"{model_name}: train analytic_gradients needs a model that computes them "
            f"({_models_with('analytic_gradients')}) and "
            "sparse_updates and per_sample false"
        )
    if full_train["negative_scheme"] == "per_user" and cls.objective not in (None, "pointwise"):
        raise KeyError(
            f"{model_name}: train negative_scheme per_user needs a pointwise (BCE) model; "
            f"{model_name} trains {cls.objective}"
        )
    problem = check_layered("train_settings", full_train)
    if problem:
        raise ValueError(f"{model_name}: train {problem}")
    metric = str(full_train["early_stopping_metric"])
    name, _, k = metric.partition("@")
    if name not in AT_K_METRICS or not k.isdigit() or int(k) not in full_train["eval_ks"]:
        raise KeyError(
            f"train early_stopping_metric {metric!r} must be one of {list(AT_K_METRICS)} at a K "
            f"in eval_ks {full_train['eval_ks']} (higher is better)"
        )
    return full_params, full_train


def train_recommender(
    split: Split,
    model_name: str,
    params: dict,
    train_cfg: dict,
    seed: int,
    device="cpu",
    log=print,
) -> tuple[Recommender, list[dict]]:
    """Train ``model_name`` on ``split.train`` with early stopping on ``split.valid``.

    Returns the model (best validation state, eval mode) and the history: one dict per epoch with
    epoch, loss (mean per sample), samples, seconds (sampling + optimisation) and, on evaluated
    epochs, "valid" metrics (None when the split has no validation part).
    """
    params, cfg = resolve_config(model_name, params, train_cfg)
    device = resolve_device(device)
    seed_everything(seed)
    cls = model_class(model_name)
    train = split.matrix("train")
    valid = split.matrix("valid")
    model = cls.build(split.n_users, split.n_items, params).to(device)
    model.prepare(train)
    model.prepare_history(split.train)

    validation = (
        RankingTask(train, valid, cfg["eval_ks"], batch_size=cfg["eval_batch_size"], device=device)
        if valid.nnz
        else None
    )

    def validate() -> dict | None:
        if validation is None:
            return None
        model.eval()
        return validation.evaluate(model.full_scores)

    history: list[dict] = []
    if cls.objective is None or cfg["epochs"] == 0:
        metrics = validate()
        history.append({"epoch": 0, "loss": None, "seconds": 0.0, "valid": metrics})
        log(f"{model_name}: nothing to train; valid {_summary(metrics, cfg)}")
        return model.eval(), history

    pos_users, pos_items = train_pairs(train)
    make_epoch = epoch_sampler(split, cfg, model)
    step = make_step(model, cfg)
    metric = cfg["early_stopping_metric"]
    batch_size, patience = int(cfg["batch_size"]), int(cfg["early_stopping_patience"])
    best_value, best_state, since_best = -np.inf, None, 0
    arrays: dict[str, np.ndarray] = {}
    for epoch in range(1, int(cfg["epochs"]) + 1):
        start_time = time.perf_counter()
        model.train()
        rng = numpy_rng(seed, "epoch", epoch)
        if cfg["resample_negatives"] or not arrays:
            arrays = make_epoch(pos_users, pos_items, rng)
        else:
            arrays = reshuffle(arrays, rng)
        data = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
        n_samples = len(data["users"])
        loss_sum = torch.zeros((), device=device)
        for batch_idx, begin in enumerate(range(0, n_samples, batch_size)):
            batch = {k: v[begin : begin + batch_size] for k, v in data.items()}
            where = f"epoch {epoch}, batch {batch_idx}"
            loss_sum += step(batch, where) * len(batch["users"])
        record = {
            "epoch": epoch,
            "loss": float(loss_sum) / n_samples,
            "samples": n_samples,
            "seconds": time.perf_counter() - start_time,
        }
        if epoch % int(cfg["eval_every"]) == 0 or epoch == int(cfg["epochs"]):
            metrics = validate()
            record["valid"] = metrics
            if metrics is not None:
                if metrics[metric] > best_value:
                    best_value, since_best = metrics[metric], 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    since_best += 1
        history.append(record)
        log(
            f"{model_name} epoch {epoch:3d} loss {record['loss']:.4f} "
            f"valid {_summary(record.get('valid'), cfg)} ({record['seconds']:.1f}s)"
        )
        if cfg["collapse_fallback_lr"] is not None and is_constant_output(model, device):
            raise OutputCollapsed(model_name, epoch, cfg["lr"])
        if patience and since_best >= patience:
            log(f"{model_name}: early stop at epoch {epoch}; best {metric} {best_value:.4f}")
            break
    if best_state is not None and cfg["restore_best"]:
        model.load_state_dict(best_state)
    return model.eval(), history


def epoch_sampler(split: Split, cfg: dict, model: Recommender):
    """make_epoch(pos_users, pos_items, rng) -> one epoch's sample arrays for ``model``'s
    objective under the config's ``negative_scheme``: ``per_positive`` draws ``negatives`` per
    training positive, avoiding the user's training items (a "sequence" model builds its own
    samples, ``epoch_samples``); ``per_user`` (the authors' code) draws, per user, as many
    distinct negatives as the user has interactions in train, valid and test together, avoiding
    all of them, so it reads the held-out parts of the split as the authors' code did."""
    if cfg["negative_scheme"] == "per_user":
        everything = split.matrix("train") + split.matrix("valid") + split.matrix("test")
        sampler = NegativeSampler(everything, cfg["sampler"], cfg["sampler_exponent"])
        counts = sampler.positives_per_user
        return lambda users, items, rng: per_user_epoch(users, items, counts, sampler, rng)
    sampler = NegativeSampler(split.matrix("train"), cfg["sampler"], cfg["sampler_exponent"])
    epoch = {"pointwise": pointwise_epoch, "pairwise": pairwise_epoch}.get(
        model.objective, model.epoch_samples
    )
    ratio = int(cfg["negatives"])
    return lambda users, items, rng: epoch(users, items, sampler, ratio, rng)


def make_step(model: Recommender, cfg: dict):
    """The optimisation step of one training run: step(batch, where) computes the batch's loss,
    raises RuntimeError naming the model and ``where`` if it is not finite (before any update),
    updates the parameters and returns the detached loss. With ``sparse_updates`` and a model
    that gives ``row_gradients``, the step is analytic and row-wise (``RowAdam``); otherwise
    autograd and ``make_optimizer``'s optimizers. ``loss_reduction: sum`` steps on the summed
    rather than the mean loss. With ``per_sample`` the batch is a chunk of samples that the
    model's compiled kernel steps through one at a time (``per_sample_sgd``; CPU only); with
    ``analytic_gradients`` the model computes the batch's gradient itself and the fused
    optimizers of ``make_optimizer`` step on it (CPU only)."""
    if cfg["per_sample"]:
        _require_cpu(model, "per_sample")

        def sample_step(batch: dict[str, torch.Tensor], where: str) -> torch.Tensor:
            total, bad = model.per_sample_sgd(batch, float(cfg["lr"]))
            if bad >= 0:
                raise RuntimeError(
                    f"{model.name}: non-finite loss at {where}, sample {bad} (the parameters "
                    "keep the state before it)"
                )
            return torch.tensor(total / len(batch["users"]))

        return sample_step
    if cfg["analytic_gradients"]:
        _require_cpu(model, "analytic_gradients")
        optimizers = make_optimizer(model, cfg, fused=True)
        params = dict(model.named_parameters())

        def analytic_step(batch: dict[str, torch.Tensor], where: str) -> torch.Tensor:
            n = len(batch["users"])
            total, grads, bad = model.analytic_gradients(batch)
            if bad >= 0:
                raise RuntimeError(f"{model.name}: non-finite loss at {where}, sample {bad}")
            scale = 1.0 if cfg["loss_reduction"] == "sum" else 1.0 / n
            for name, grad in grads.items():
                params[name].grad = grad.mul_(scale)
            for opt in optimizers:
                opt.step()
            return torch.tensor(total / n)

        return analytic_step
    if cfg["sparse_updates"] and _implements(type(model), "row_gradients"):
        optimizer = RowAdam(model, lr=cfg["lr"])

        def row_step(batch: dict[str, torch.Tensor], where: str) -> torch.Tensor:
            n = len(batch["users"])
            loss, grads = model.row_gradients(batch)
            loss = loss / n
            _require_finite(model, loss, where)
            optimizer.step(grads, 1.0 if cfg["loss_reduction"] == "sum" else 1.0 / n)
            return loss

        return row_step
    optimizers = make_optimizer(model, cfg)

    def autograd_step(batch: dict[str, torch.Tensor], where: str) -> torch.Tensor:
        loss = model.training_loss(batch)
        _require_finite(model, loss, where)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        summed = cfg["loss_reduction"] == "sum"
        (loss * len(batch["users"]) if summed else loss).backward()
        for opt in optimizers:
            opt.step()
        return loss.detach()

    return autograd_step


def _require_cpu(model: Recommender, setting: str) -> None:
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"{model.name}: train {setting} runs on the CPU, not on {device}")


def _implements(cls: type[Recommender], method: str) -> bool:
    """Whether model class ``cls`` overrides the optional Recommender method ``method``."""
    return getattr(cls, method) is not getattr(Recommender, method)


def _models_with(method: str) -> list[str]:
    """The registered models that override the optional Recommender method ``method``."""
    return [n for n in registered_models() if _implements(model_class(n), method)]


def _require_finite(model: Recommender, loss: torch.Tensor, where: str) -> None:
    if not torch.isfinite(loss):
        raise RuntimeError(f"{model.name}: non-finite loss {loss.item()} at {where}")


def make_optimizer(
    model: Recommender, cfg: dict, fused: bool | None = None
) -> list[torch.optim.Optimizer]:
    """The optimizers of one training run: one over all parameters (``fused``: torch's
    single-kernel implementation, the same update), or with ``sparse_updates`` SparseAdam over
    the model's ``row_tables`` (each step touches only the batch's rows, so a step costs O(batch)
    instead of O(n_users + n_items)) and Adam over the rest."""
    if not cfg["sparse_updates"]:
        return [
            OPTIMIZERS[cfg["optimizer"]](
                model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"], fused=fused
            )
        ]
    model.sparse_rows = True
    tables = [getattr(model, name) for name in model.row_tables]
    table_ids = {id(t) for t in tables}
    rest = [p for p in model.parameters() if id(p) not in table_ids]
    optimizers = [torch.optim.SparseAdam(tables, lr=cfg["lr"])]
    if rest:
        optimizers.append(torch.optim.Adam(rest, lr=cfg["lr"]))
    return optimizers


def train_with_collapse_fallback(
    split: Split, model_name: str, params: dict, train_cfg: dict, seed: int, **options
) -> tuple[Recommender, list[dict], dict]:
    """``train_recommender`` (``options``: device, log); when the config's
    ``collapse_fallback_lr`` is set and the output collapses to a constant, log it and train again
    from scratch (same seed) at that learning rate. Returns (model, history, the train config
    actually used)."""
    _, cfg = resolve_config(model_name, params, train_cfg)
    try:
        model, history = train_recommender(split, model_name, params, train_cfg, seed, **options)
        return model, history, cfg
    except OutputCollapsed as err:
        fallback = {**train_cfg, "lr": cfg["collapse_fallback_lr"], "collapse_fallback_lr": None}
        options.get("log", print)(
            f"{err}; retraining from scratch at the fallback lr {fallback['lr']}"
        )
        model, history = train_recommender(split, model_name, params, fallback, seed, **options)
        return model, history, {**cfg, **fallback, "collapsed_at_lr": err.lr}


def _summary(metrics: dict | None, cfg: dict) -> str:
    if metrics is None:
        return "-"
    name = cfg["early_stopping_metric"]
    return f"{name} {metrics[name]:.4f}"


def best_epoch(history: list[dict], metric: str) -> int | None:
    """The epoch whose validation ``metric`` is highest (the restored state), or None."""
    scored = [(r["valid"][metric], -r["epoch"]) for r in history if r.get("valid")]
    return -max(scored)[1] if scored else None


def embedding_arrays(model: Recommender) -> dict[str, np.ndarray]:
    """user (n_users, d), item (n_items, d) and user_bias/item_bias/global_bias where they exist."""
    model.eval()
    with torch.no_grad():
        arrays = {
            "user": model.user_embeddings().detach().cpu().numpy(),
            "item": model.item_embeddings().detach().cpu().numpy(),
        }
        for key, value in model.bias_terms().items():
            arrays[key] = value.detach().cpu().numpy()
    return arrays


def evaluate_model(
    score_fn, split: Split, ks, batch_size: int = 1024, device="cpu"
) -> dict[str, dict]:
    """{"valid": metrics (train excluded), "test": metrics (train and valid excluded)}."""
    train, valid, test = split.matrix("train"), split.matrix("valid"), split.matrix("test")
    seen = train + valid
    return {
        "valid": rank_metrics(score_fn, train, valid, ks, batch_size=batch_size, device=device),
        "test": rank_metrics(score_fn, seen, test, ks, batch_size=batch_size, device=device),
    }
