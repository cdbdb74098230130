"""Result files -> tidy pandas frames, and the selection rules of the report.

Every frame is rebuilt from the JSON files each time (nothing is appended), in config order.

* ``recommender_frame``: one row per trained recommender with its test metrics: dataset, model
  (the config entry's name), seed (a seed variant's ``seed~N``, else the config's) and the
  metrics, plus one ``MostPop`` row per dataset (MostPop depends on the split only; its metrics
  are taken from the first model of the dataset).
* ``sweep_frame``: one row per SAE sweep point: dataset, model, point (the sweep path), the swept
  keys parsed from the path, the resolved variant/width/expansion/k/beta (from train_log.json),
  ``seed`` (the SAE's training seed: its ``seed~N`` path segment, else the config's), every scalar
  of metrics.json ``summary`` and the train_log summary prefixed ``train_``.
* ``over_seeds``: rows that differ only by ``seed``, the path (``point``/``path``, compared without
  its ``seed~N`` segment) and metric values are repeats of one setting; one row per setting with the
  metric means, ``<metric>_std`` (ddof=1, NaN for one seed) and ``n_seeds``. ``setting_frame``
  applies it to the sweep frame (every metric column) and keeps the rule flags.
* ``interventions_frame``: one row per (point, concept, experiment, level).
* ``planted_frame``: one row per (point, planted family) plus an ``all`` row per point, for the
  points whose items carry planted concepts (synthetic data): the method, its best-neuron AUROC
  and precision@R (the ``random`` method is the chance level).
* ``methods_frame``: one row per setting of a concept extractor (SAE or baseline ``method``) per
  (dataset, model), seeds aggregated by ``over_seeds``: sparsity, fidelity, concept quality,
  probes and the filtering effect and cost at one level (``report.methods_filter_level``).

Rules (``report`` block of the config), on settings (a point over its seeds; one seed: the point):
* best point of a group: the setting with the best MEAN ``best_point_metric`` over its seeds
  (``best_point_goal`` max or min; null: the direction the metric declares); ties go to the lower
  mean ``l0_items``, then the alphabetically first point path. Settings whose metric is missing
  never win. Only SAE settings (``method`` sae) compete when the (dataset, model) has any: the
  exact baselines (identity, pca, ...) would always win on fidelity. ``best`` marks the best per
  (dataset, model, variant), ``chosen`` the best per (dataset, model), the SAE shown in neuron
  cards and intervention curves. The flags sit on the setting's first row in config order (its
  first seed), so exactly one SAE carries each.
* Pareto: per (dataset, model), over every method, a setting is Pareto-optimal when no other has
  a lower or equal mean sparsity (``pareto_sparsity``, default l0_items, lower is better) AND a
  higher or equal mean fidelity (``pareto_fidelity``, default rbo30, higher is better), with at
  least one strict.
* beta points: points whose path sets only ``beta`` (``beta~X``, plus ``seed~N`` with seeds):
  the paper's beta sweep.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import numpy as np
import pandas as pd

from recsae import paths
from recsae.config import ConfigError
from recsae.io import read_json
from recsae.metrics.alignment import COVERAGE_ITEMS
from recsae.metrics.fidelity import SCORE_RECOVERED
from recsae.metrics.health import L0_ITEMS
from recsae.metrics.monosemanticity import MS_MEAN
from recsae.metrics.probes import CEILING_SHARE, CONCEPT_AUROC, PROBE_CEILING, SPARSE_PROBE
from recsae.metrics.registry import goal_of
from recsae.sae.config import SAEPoint
from recsae.sweep import format_value, parse_point_path, strip_seed
from recsae.workflow import split_model_seed

PAIR_KEYS = ["dataset", "model"]
PATH_COLUMNS = ("point", "path")
RULE_FLAGS = ("best", "chosen", "pareto")
RESOLVED_KEYS = ("method", "variant", "width", "expansion", "k", "beta")
SAE_METHOD = "sae"
EXPERIMENTS = ("filtering", "nudging", "promotion")
RECOMMENDER_METRICS = ("hr", "ndcg", "mrr")
MOSTPOP = "MostPop"
PLANTED_MEASURES = ("auroc", "precision_at_r")
ALL_FAMILIES = "all"


def _scalar(value) -> bool:
    return value is None or isinstance(value, (numbers.Number, str, bool))


def _ks(block: dict) -> list[int]:
    ks = {int(key.split("@")[1]) for key in block if "@" in key and key.split("@")[1].isdigit()}
    return sorted(ks)


def _recommender_row(block: dict) -> dict:
    return {f"{m}@{k}": block.get(f"{m}@{k}") for k in _ks(block) for m in RECOMMENDER_METRICS} | {
        "n_users": block.get("n_users")
    }


def recommender_frame(results_dir: str | Path, pairs) -> pd.DataFrame:
    """Test HR/NDCG/MRR@K of every recommender pair plus one MostPop row per dataset."""
    results_dir = Path(results_dir)
    rows, mostpop = [], {}
    for dataset, model in pairs:
        metrics = read_json(Path(paths.model_dir(dataset, model, results_dir)) / "metrics.json")
        name, seed = split_model_seed(model)
        rows.append(
            {"dataset": dataset, "model": name, "architecture": metrics.get("model", name)}
            | {"seed": metrics.get("seed") if seed is None else seed}
            | _recommender_row(metrics["test"])
        )
        baseline = (metrics.get("baselines") or {}).get("mostpop")
        if baseline and dataset not in mostpop:
            mostpop[dataset] = {"dataset": dataset, "model": MOSTPOP, "architecture": "mostpop"}
            mostpop[dataset] |= _recommender_row(baseline["test"])
    frame = pd.DataFrame(rows + list(mostpop.values()))
    if frame.empty:
        return pd.DataFrame(columns=["dataset", "model", "architecture"])
    order = {d: i for i, d in enumerate(dict.fromkeys(d for d, _ in pairs))}
    frame["_d"] = frame["dataset"].map(order)
    frame["_m"] = frame["model"].eq(MOSTPOP)
    frame = frame.sort_values(["_d", "_m"], kind="stable").drop(columns=["_d", "_m"])
    return frame.reset_index(drop=True)


def _cell(value):
    """A sweep value as a CSV cell (lists keep their path text)."""
    return format_value(value) if isinstance(value, (list, tuple)) else value


def trained_point(path: Path, train_log: dict) -> SAEPoint | None:
    """The sweep point a train_log.json (at ``path``) records as its ``config``
    (``SAEPoint.from_dict``), or None where it records none."""
    if not train_log.get("config"):
        return None
    try:
        return SAEPoint.from_dict(train_log["config"])
    except ValueError as err:
        raise ValueError(f"{path}: config: {err}") from err


def sweep_row(results_dir: Path, dataset: str, model: str, path: str) -> dict:
    base = Path(paths.sae_dir(dataset, model, path, results_dir))
    metrics = read_json(base / "metrics.json")
    train_log = read_json(base / "train_log.json")
    point = trained_point(base / "train_log.json", train_log)
    swept = parse_point_path(path)
    seed = swept.pop("seed", None)
    row: dict = {"dataset": dataset, "model": model, "point": path, "swept": ",".join(swept)}
    for key in RESOLVED_KEYS:
        row[key] = swept.get(key) if point is None else getattr(point, key)
    if seed is None:
        seed = train_log.get("seed") if point is None else point.seed
    row["seed"] = seed
    row["method"] = row["method"] or SAE_METHOD
    if row["method"] != SAE_METHOD:
        row["beta"] = row["expansion"] = None  # a baseline has no loss weights; width is resolved
    if point is not None and not point.ranked:
        row["k"] = None  # k means nothing to a ReLU SAE
    for key, value in swept.items():
        row[key] = _cell(value)
    row |= {k: v for k, v in metrics["summary"].items() if _scalar(v)}
    for key, value in (train_log.get("summary") or {}).items():
        if isinstance(value, numbers.Number) and not isinstance(value, bool):
            row[key if key.startswith("train_") else f"train_{key}"] = value
    return row


def sweep_frame(results_dir: str | Path, points, report_cfg: dict) -> pd.DataFrame:
    """One row per sweep point (``points``: (dataset, model, path) in config order), with the
    ``best``, ``chosen`` and ``pareto`` columns of the report rules."""
    rows = [sweep_row(Path(results_dir), *point) for point in points]
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=[*PAIR_KEYS, "point", "swept", *RESOLVED_KEYS, "seed"])
    return mark_rules(frame, report_cfg)


def _setting_keys(frame: pd.DataFrame) -> pd.Series:
    """(dataset, model, point without its seed segment) of every row: the setting it repeats."""
    paths = frame["point"].astype(str).map(strip_seed)
    return pd.Series(
        list(zip(frame["dataset"], frame["model"], paths, strict=True)), index=frame.index
    )


def mark_rules(frame: pd.DataFrame, report_cfg: dict) -> pd.DataFrame:
    """``frame`` with boolean columns best (per dataset, model, variant), chosen (per dataset,
    model) and pareto (per dataset, model), decided on the means over each setting's seeds and
    set on the setting's first row; see the module docstring."""
    frame = frame.copy()
    metric = report_cfg["best_point_metric"]
    fidelity, sparsity = report_cfg["pareto_fidelity"], report_cfg["pareto_sparsity"]
    for flag in RULE_FLAGS:
        frame[flag] = False
    if frame.empty:
        return frame
    for key, column in (
        ("best_point_metric", metric),
        ("pareto_fidelity", fidelity),
        ("pareto_sparsity", sparsity),
    ):
        if column not in frame.columns:
            known = sorted(c for c in frame.columns if c not in PAIR_KEYS)
            raise ValueError(f"report.{key} {column!r} is not a sweep column; known: {known}")
    goal = best_point_goal(report_cfg)
    setting = _setting_keys(frame)
    ranked = list(
        dict.fromkeys(c for c in (metric, fidelity, sparsity, L0_ITEMS.key) if c in frame)
    )
    means = frame[ranked].apply(pd.to_numeric, errors="coerce").groupby(setting).transform("mean")
    first = frame[~setting.duplicated()].assign(**{c: means[c] for c in ranked})
    candidates = first[sae_or_all(first)]
    by_variant = ["dataset", "model", "variant"]
    frame.loc[candidates.index, "best"] = best_mask(candidates, by_variant, metric, goal)
    frame.loc[candidates.index, "chosen"] = best_mask(candidates, PAIR_KEYS, metric, goal)
    frame.loc[first.index, "pareto"] = pareto_mask(first, fidelity, sparsity, PAIR_KEYS)
    return frame


def over_seeds(frame: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per setting of ``frame``: mean over its seeds of every column of ``metrics`` (in
    the metric's own column), ``<metric>_std`` (ddof=1; NaN when n = 1) and ``n_seeds``.

    A setting is a group of rows equal in every column that is not a metric and not ``seed``; a
    path column (``point`` or ``path``) is compared, and returned, without its ``seed~N`` segment.
    Groups keep their first row's order; missing metric values are skipped by mean and std.
    """
    metrics = list(metrics)
    missing = [m for m in metrics if m not in frame.columns]
    if missing:
        raise ValueError(f"over_seeds: metric column(s) {missing} not in the frame")
    frame = frame.drop(columns=[c for c in ("seed",) if c in frame.columns])
    for column in PATH_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].astype(str).map(strip_seed)
    keys = [c for c in frame.columns if c not in metrics]
    names = [*keys, *(x for m in metrics for x in (m, f"{m}_std")), "n_seeds"]
    if frame.empty:
        return pd.DataFrame(columns=names)
    if keys:
        group = frame.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    else:
        group = np.zeros(len(frame), dtype=np.int64)
    grouped = frame[metrics].apply(pd.to_numeric, errors="coerce").groupby(group)
    mean, std = grouped.mean(), grouped.std(ddof=1)
    out = {
        k: v.to_numpy()
        for k, v in frame.loc[~pd.Series(group).duplicated().to_numpy(), keys].items()
    }
    for m in metrics:
        out[m], out[f"{m}_std"] = mean[m].to_numpy(), std[m].to_numpy()
    out["n_seeds"] = grouped.size().to_numpy().astype(int)
    return pd.DataFrame(out, columns=names)


def identity_columns(frame: pd.DataFrame) -> list[str]:
    """Columns of a sweep frame that name a point rather than measure it: pair, path, swept
    keys (every key any path sets, seed aside), resolved sizes, seed and the rule flags."""
    swept = {k for p in frame.get("point", []) for k in parse_point_path(str(p))}
    names = [*PAIR_KEYS, "point", "swept", *RESOLVED_KEYS, *sorted(swept), "seed", *RULE_FLAGS]
    return [c for c in dict.fromkeys(names) if c in frame.columns]


def setting_frame(sweep: pd.DataFrame) -> pd.DataFrame:
    """``over_seeds`` of a marked sweep frame over all its metric columns, with the rule flags of
    each setting (those of its first row)."""
    identity = identity_columns(sweep)
    metrics = [c for c in sweep.columns if c not in identity]
    flags = [f for f in RULE_FLAGS if f in sweep.columns]
    out = over_seeds(sweep.drop(columns=flags), metrics)
    setting = _setting_keys(sweep) if len(sweep) else pd.Series(dtype=object)
    first = ~setting.duplicated()
    keys = list(zip(out["dataset"], out["model"], out["point"], strict=True))
    values = {}
    for flag in flags:
        value = dict(zip(setting[first], sweep.loc[first, flag].astype(bool), strict=True))
        values[flag] = pd.Series([value[key] for key in keys], index=out.index, dtype=bool)
    return out.assign(**values)


def sae_or_all(frame: pd.DataFrame) -> pd.Series:
    """True on SAE rows of (dataset, model) groups that have any, and on every row of the others."""
    if frame.empty or "method" not in frame:
        return pd.Series(True, index=frame.index, dtype=bool)
    is_sae = frame["method"].fillna(SAE_METHOD).eq(SAE_METHOD)
    group_has = is_sae.groupby([frame[k] for k in PAIR_KEYS], sort=False).transform("any")
    return is_sae | ~group_has


def best_point_goal(report_cfg: dict) -> str:
    """max or min: ``best_point_goal`` when set, else the direction ``best_point_metric``'s
    declaration gives (``recsae.metrics.registry``)."""
    metric, goal = report_cfg["best_point_metric"], report_cfg.get("best_point_goal")
    goal = goal or goal_of(metric)
    if goal is None:
        raise ConfigError(
            f"report.best_point_metric {metric!r} declares no direction (recsae metrics-reference);"
            " set report.best_point_goal to max or min"
        )
    return goal


def best_mask(frame: pd.DataFrame, by: list[str], metric: str, goal: str = "max") -> pd.Series:
    """True on the best row of each group of ``by`` (see the module docstring for ties)."""
    mask = pd.Series(False, index=frame.index, dtype=bool)
    if frame.empty:
        return mask
    if goal not in ("max", "min"):
        raise ValueError(f"best_point_goal must be max or min, got {goal!r}")
    value = pd.to_numeric(frame[metric], errors="coerce")
    key = -value if goal == "max" else value
    l0 = pd.to_numeric(frame[L0_ITEMS.key], errors="coerce") if L0_ITEMS.key in frame else 0.0
    ranked = frame.assign(_key=key, _l0=l0)
    ranked = ranked[ranked["_key"].notna()]
    ranked = ranked.sort_values(["_key", "_l0", "point"], kind="stable", na_position="last")
    winners = ranked.groupby(by, sort=False, dropna=False).head(1).index
    mask.loc[winners] = True
    return mask


def pareto_mask(
    frame: pd.DataFrame, fidelity: str, sparsity: str, by: list[str] | None = None
) -> pd.Series:
    """True on the rows no other row of their group dominates (higher-or-equal ``fidelity`` and
    lower-or-equal ``sparsity``, one of them strictly); rows missing either value are False."""
    mask = pd.Series(False, index=frame.index, dtype=bool)
    if frame.empty:
        return mask
    groups = frame.groupby(by, sort=False, dropna=False) if by else [(None, frame)]
    for _, group in groups:
        fid = pd.to_numeric(group[fidelity], errors="coerce").to_numpy(float)
        spa = pd.to_numeric(group[sparsity], errors="coerce").to_numpy(float)
        ok = np.isfinite(fid) & np.isfinite(spa)
        for i, index in enumerate(group.index):
            if not ok[i]:
                continue
            better_eq = ok & (fid >= fid[i]) & (spa <= spa[i])
            strict = (fid > fid[i]) | (spa < spa[i])
            mask.loc[index] = not (better_eq & strict).any()
    return mask


def beta_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose sweep path sets only beta (``beta~X``, with or without ``seed~N``), sorted by
    pair then beta (stable: seeds keep their order)."""
    if frame.empty:
        return frame
    only_beta = frame["point"].map(lambda p: set(parse_point_path(strip_seed(p))) == {"beta"})
    out = frame[only_beta].copy()
    out["beta"] = pd.to_numeric(out["beta"])
    pair_order = {
        pair: i
        for i, pair in enumerate(dict.fromkeys(zip(frame.dataset, frame.model, strict=True)))
    }
    out["_pair"] = [pair_order[p] for p in zip(out.dataset, out.model, strict=True)]
    return out.sort_values(["_pair", "beta"], kind="stable").drop(columns="_pair")


def _level_rows(block: dict) -> list[dict]:
    return block.get("levels") or []


def interventions_rows(results_dir: Path, dataset: str, model: str, path: str) -> list[dict]:
    data = read_json(Path(paths.sae_dir(dataset, model, path, results_dir)) / "interventions.json")
    rows = []
    for entry in data.get("concepts", []):
        head = {
            "dataset": dataset,
            "model": model,
            "point": path,
            "family": entry.get("family"),
            "concept": entry.get("concept"),
            "neuron": entry.get("neuron"),
            "auroc": entry.get("auroc"),
        }
        for experiment in EXPERIMENTS:
            block = entry.get(experiment) or {}
            base = head | {
                "experiment": experiment,
                "share_original": block.get("share_original"),
                "share_reconstructed": block.get("share_reconstructed"),
            }
            levels = _level_rows(block)
            if not levels:
                rows.append(base | {"note": block.get("reason", "no levels")})
                continue
            for level in levels:
                effect = level.get("success") if experiment == "promotion" else level.get("share")
                rows.append(base | {"effect": effect} | level)
    return rows


def interventions_frame(results_dir: str | Path, points) -> pd.DataFrame:
    """One row per (point, concept, experiment, level); ``effect`` is the concept share in the
    users' top-k (filtering, nudging) or the promotion success; the cost columns are
    ``ndcg@K``, ``delta_ndcg@K``, ``overlap@k`` and ``off_target_change``. An experiment that
    could not run is one row with a ``note``."""
    rows = [r for point in points for r in interventions_rows(Path(results_dir), *point)]
    columns = [
        *PAIR_KEYS,
        "point",
        "family",
        "concept",
        "neuron",
        "auroc",
        "experiment",
        "level",
        "raw_level",
        "effect",
        "share_original",
        "share_reconstructed",
    ]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    rest = [c for c in frame.columns if c not in columns and c != "note"]
    ordered = [c for c in columns if c in frame.columns] + rest
    return frame[ordered + (["note"] if "note" in frame.columns else [])]


def planted_rows(results_dir: Path, dataset: str, model: str, path: str) -> list[dict]:
    metrics = read_json(Path(paths.sae_dir(dataset, model, path, results_dir)) / "metrics.json")
    planted = (metrics.get("planted") or {}).get("items")
    if not planted:
        return []
    method = _point_method(results_dir, dataset, model, path)
    head = {"dataset": dataset, "model": model, "method": method, "point": path}
    families = list(planted["per_concept"]["family"])
    rows = [
        head
        | {"family": family, "n_concepts": families.count(family)}
        | {m: means[f"{m}_mean"] for m in PLANTED_MEASURES}
        for family, means in planted["by_family"].items()
    ]
    overall = {m: planted[f"{m}_mean"] for m in PLANTED_MEASURES}
    return rows + [head | {"family": ALL_FAMILIES, "n_concepts": planted["n_concepts"]} | overall]


def planted_frame(results_dir: str | Path, points) -> pd.DataFrame:
    """Planted-concept recovery per (point, family) and over all planted concepts (``all``)."""
    rows = [r for point in points for r in planted_rows(Path(results_dir), *point)]
    columns = [*PAIR_KEYS, "method", "point", "family", "n_concepts", *PLANTED_MEASURES]
    return pd.DataFrame(rows, columns=columns)


def point_setting(path: str) -> tuple[str, int | None]:
    """(setting, seed) of a sweep path: the path without its ``seed~N`` segment, and N (None
    when the path has no seed)."""
    return strip_seed(path), parse_point_path(path).get("seed")


def _point_method(results_dir: Path, dataset: str, model: str, path: str) -> str:
    log_path = Path(paths.sae_dir(dataset, model, path, results_dir)) / "train_log.json"
    point = trained_point(log_path, read_json(log_path))
    return SAE_METHOD if point is None else point.method


def metric_column(frame: pd.DataFrame, prefix: str) -> str | None:
    """The first column named ``prefix`` + digits (e.g. rbo30, delta_ndcg@10), if any."""
    for column in frame.columns:
        tail = str(column)[len(prefix) :].lstrip("@")
        if str(column).startswith(prefix) and tail.isdigit():
            return column
    return None


def finite(value) -> bool:
    return isinstance(value, numbers.Number) and math.isfinite(value)


def methods_frame(
    sweep: pd.DataFrame, interventions: pd.DataFrame, filter_level: float
) -> pd.DataFrame:
    """One row per (dataset, model, setting) of every method, seeds aggregated (``over_seeds``).

    Metrics: l0_items, rbo@K, score_recovered, ms_mean, coverage_items, concept_auroc_items (mean
    best-latent AUROC per concept), probe_ceiling_items, ceiling_share_items, sparse probes, and
    filtering at ``filter_level``: filter_effect (concept share in the top-k before minus after the
    edit, mean over the intervened concepts) and its cost filter_delta_ndcg@K."""
    rbo = metric_column(sweep, "rbo")
    sparse = sorted(c for c in sweep.columns if SPARSE_PROBE["items"].matches(str(c)))
    metrics = [
        c
        for c in (
            L0_ITEMS.key,
            rbo,
            SCORE_RECOVERED.key,
            MS_MEAN.key,
            COVERAGE_ITEMS.key,
            CONCEPT_AUROC["items"].key,
            PROBE_CEILING["items"].key,
            CEILING_SHARE["items"].key,
            *sparse,
        )
        if c and c in sweep.columns
    ]
    keys = [*PAIR_KEYS, "method", "variant", "k", "width"]
    frame = sweep[[c for c in keys if c in sweep.columns] + ["point", *metrics]].copy()
    if "method" not in frame:
        frame["method"] = SAE_METHOD
    cost = metric_column(interventions, "delta_ndcg")
    effect_cols = ["filter_effect", f"filter_{cost}"] if cost else ["filter_effect"]
    if len(interventions) and "level" in interventions:
        rows = interventions[
            interventions["experiment"].eq("filtering")
            & pd.to_numeric(interventions["level"], errors="coerce").eq(filter_level)
        ]
        rows = rows.assign(
            filter_effect=pd.to_numeric(rows["share_original"], errors="coerce")
            - pd.to_numeric(rows["effect"], errors="coerce")
        )
        if cost:
            rows = rows.assign(**{f"filter_{cost}": pd.to_numeric(rows[cost], errors="coerce")})
        effect = rows.groupby([*PAIR_KEYS, "point"], sort=False)[effect_cols].mean().reset_index()
        frame = frame.merge(effect, on=[*PAIR_KEYS, "point"], how="left")
    else:
        frame = frame.assign(**{c: np.nan for c in effect_cols})
    return over_seeds(frame, [*metrics, *effect_cols]).rename(columns={"point": "setting"})
