"""The comparison tables: markdown (tabulate), CSV and a standalone HTML page per table.

Every call rewrites every table from the result files (``recsae.report.collect``); nothing is
appended, so re-running gives byte-identical files.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from recsae.io import atomic_write
from recsae.methods import METHODS
from recsae.metrics.alignment import COVERAGE_ITEMS
from recsae.metrics.fidelity import KENDALL_TAU, KENDALL_TAU_B_SCORES, SCORE_RECOVERED
from recsae.metrics.health import DEAD_FRACTION, L0_ITEMS
from recsae.metrics.monosemanticity import MS_ACTIVE, MS_ALIVE, MS_MEAN
from recsae.paths import SWEEP_TABLE, TABLES
from recsae.report import collect

FLOAT_FORMAT = ".4g"
STD_FORMAT = ".2g"
BETA_METRICS = tuple(
    metric.key
    for metric in (
        KENDALL_TAU,
        KENDALL_TAU_B_SCORES,
        MS_MEAN,
        MS_ALIVE,
        MS_ACTIVE,
        COVERAGE_ITEMS,
        L0_ITEMS,
    )
)
BEST_COLUMNS = tuple(
    metric.key
    for metric in (
        MS_MEAN,
        MS_ACTIVE,
        COVERAGE_ITEMS,
        SCORE_RECOVERED,
        KENDALL_TAU,
        KENDALL_TAU_B_SCORES,
        L0_ITEMS,
        DEAD_FRACTION,
    )
)
TAU_NOTE = (
    "kendall_tau: the authors' tau-b of the two top-k lists' RANKS over their union (an item "
    "missing from a list ranked k+1); kendall_tau_b_scores: tau-b of the two SCORE vectors over "
    "that union."
)
SEED_NOTE = (
    "Cells: mean ± std (ddof 1) over the n_seeds SAE seeds of each setting; each seed draws its "
    "own held-out users as well as the initialisation and batches."
)
INTERVENTION_MD = (
    "dataset",
    "model",
    "point",
    "experiment",
    "concept",
    "neuron",
    "level",
    "effect",
    "share_original",
)


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    """NaN -> None, so tabulate writes missing values as empty cells."""
    return frame.astype(object).where(frame.notna(), None)


def _markdown(frame: pd.DataFrame) -> str:
    frame = _display(frame)
    if frame.empty:
        return "_(no rows)_\n"
    return (
        tabulate(
            frame,
            headers="keys",
            tablefmt="github",
            floatfmt=FLOAT_FORMAT,
            showindex=False,
            missingval="",
        )
        + "\n"
    )


def _html(title: str, note: str, frame: pd.DataFrame) -> str:
    body = (
        tabulate(
            _display(frame),
            headers="keys",
            tablefmt="html",
            floatfmt=FLOAT_FORMAT,
            showindex=False,
            missingval="",
        )
        if len(frame)
        else "<p>(no rows)</p>"
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-size:13px}"
        "th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "th{background:#eee}tr:nth-child(even){background:#f8f8f8}"
        f"</style></head><body><h2>{html.escape(title)}</h2><p>{html.escape(note)}</p>"
        f"{body}</body></html>\n"
    )


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_table(
    out_dir: Path,
    name: str,
    title: str,
    note: str,
    full: pd.DataFrame,
    shown: pd.DataFrame | None = None,
) -> None:
    """``name``.csv (``full``), ``name``.md and ``name``.html (``shown``, default ``full``)."""
    shown = full if shown is None else shown
    atomic_write(out_dir / f"{name}.csv", lambda tmp: full.to_csv(tmp, index=False))
    _write_text(out_dir / f"{name}.md", f"# {title}\n\n{note}\n\n{_markdown(shown)}")
    _write_text(out_dir / f"{name}.html", _html(title, note, shown))


def with_std(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each metric that has a ``<metric>_std`` column written as "mean ± std" text
    (the mean alone where the std is missing) and the std columns dropped."""
    out = frame.copy()
    for std in [c for c in frame.columns if str(c).endswith("_std")]:
        metric = std[: -len("_std")]
        if metric not in out:
            continue
        out[metric] = [
            None if pd.isna(m) else (f"{m:{FLOAT_FORMAT}}" if pd.isna(d) else f"{m:.3g} ± {d:.2g}")
            for m, d in zip(frame[metric], frame[std], strict=True)
        ]
        out = out.drop(columns=std)
    return out


def _columns(frame: pd.DataFrame, wanted) -> list[str]:
    return [c for c in wanted if c in frame.columns]


def threshold_note(settings: dict) -> str:
    """The concept and MS thresholds the metrics used (``settings["metrics"]``, else defaults)."""
    from recsae.config import resolve_metrics_config

    m = resolve_metrics_config(settings.get("metrics"))
    return (
        f"coverage_items: share of item concepts some neuron captures (AUROC >= "
        f"{m['auroc_threshold']:g} and top-{m['align_top_k']} precision >= the concept's base rate "
        f"+ {m['label_precision_margin']:g}); a concept is scored when at least "
        f"{m['min_concept_count']} of its items (and of the rest) have >= "
        f"{m['active_min_interactions']} training interactions; ms_active: MS over those items."
    )


def _with_spread(frame: pd.DataFrame, wanted) -> list[str]:
    """``wanted`` columns of ``frame``, each followed by its ``_std`` column, then ``n_seeds``."""
    out = [x for c in _columns(frame, wanted) for x in (c, f"{c}_std") if x in frame.columns]
    return list(dict.fromkeys([*out, *_columns(frame, ["n_seeds"])]))


def mean_std_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each column that has a ``<column>_std`` partner written as ``mean ± std``
    text (the mean alone where the std is missing) and the ``_std`` columns dropped."""
    out = frame.copy()
    for column in [c for c in frame.columns if f"{c}_std" in frame.columns]:
        cells = []
        for mean, std in zip(frame[column], frame[f"{column}_std"], strict=True):
            if not collect.finite(mean):
                cells.append(None)
            elif collect.finite(std):
                cells.append(f"{mean:{FLOAT_FORMAT}} ± {std:{STD_FORMAT}}")
            else:
                cells.append(f"{mean:{FLOAT_FORMAT}}")
        out[column] = pd.Series(cells, index=frame.index, dtype=object)
    return out.drop(columns=[c for c in frame.columns if c.endswith("_std")])


def build_tables(results_dir: str | Path, settings: dict, out_dir: str | Path) -> dict:
    """Write every table of ``recsae.paths.TABLES`` (+ the tidy sweep CSV) to
    ``out_dir``; ``settings`` as ``recsae.workflow.report_settings``. Returns the frames."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    cfg = settings["report"]
    recs = collect.recommender_frame(results_dir, settings["recommenders"])
    sweep = collect.sweep_frame(results_dir, settings["sae_points"], cfg)
    over = collect.setting_frame(sweep)
    inter = collect.interventions_frame(results_dir, settings["sae_points"])
    metric, goal = cfg["best_point_metric"], collect.best_point_goal(cfg)
    rbo = collect.metric_column(sweep, "rbo") or cfg["pareto_fidelity"]
    delta_ndcg = collect.metric_column(sweep, "delta_ndcg")
    frames = {"recommenders": recs, SWEEP_TABLE: sweep}

    rec_metrics = [c for c in recs.columns if "@" in c]
    rec_over = collect.over_seeds(recs, rec_metrics)
    write_table(
        out_dir,
        "recommenders",
        "Base recommenders (test split, full ranking)",
        "One row per (dataset, model); MostPop (training popularity) once per dataset. Cells: "
        "mean ± std (ddof 1) over the model's n_seeds training seeds (the CSV: one row per "
        "trained model and seed).",
        recs,
        mean_std_cells(rec_over),
    )

    beta = collect.beta_points(over)
    beta_metrics = [rbo, "rbo_ext", *BETA_METRICS, *([delta_ndcg] if delta_ndcg else [])]
    beta = beta[["dataset", "model", "beta", *_with_spread(beta, beta_metrics)]]
    frames["beta"] = beta
    write_table(
        out_dir,
        "beta",
        "beta sweep (prediction-aware loss weight)",
        "Points whose sweep path sets only beta (path `beta~X`); fidelity on held-out "
        f"users, MS and coverage on items. {threshold_note(settings)} {TAU_NOTE} {SEED_NOTE}",
        beta,
        mean_std_cells(beta),
    )

    atomic_write(out_dir / f"{SWEEP_TABLE}.csv", lambda tmp: sweep.to_csv(tmp, index=False))

    names = ["dataset", "model", "variant", "point", "width", "k", "beta"]
    best = over[over["best"].astype(bool)] if len(over) else over
    measures = list(dict.fromkeys([metric, rbo, *BEST_COLUMNS]))
    best = best[[*_columns(best, names), *_with_spread(best, measures), "chosen"]]
    frames["best_points"] = best
    write_table(
        out_dir,
        "best_points",
        "Best sweep point per (dataset, model, variant)",
        f"Rule: {goal}imum of the mean `{metric}` over seeds; ties to the lower mean l0_items, "
        "then the point path. `chosen` marks the best per (dataset, model); the SAE of the "
        f"neuron cards and intervention curves is its first seed. {threshold_note(settings)} "
        f"{TAU_NOTE} {SEED_NOTE}",
        best,
        mean_std_cells(best),
    )

    fid, spa = cfg["pareto_fidelity"], cfg["pareto_sparsity"]
    pareto = over[over["pareto"].astype(bool)] if len(over) else over
    if len(pareto):
        pareto = pareto.sort_values(["dataset", "model", spa], kind="stable")
    measures = [spa, fid, SCORE_RECOVERED.key, MS_MEAN.key, COVERAGE_ITEMS.key]
    pareto = pareto[
        [
            *_columns(pareto, ["dataset", "model", "variant", "point"]),
            *_with_spread(pareto, measures),
        ]
    ]
    frames["pareto"] = pareto
    write_table(
        out_dir,
        "pareto",
        "Pareto-optimal sweep points (fidelity vs sparsity)",
        f"Per (dataset, model): no other point has mean `{spa}` <= and mean `{fid}` >= with one "
        f"strict (lower sparsity and higher fidelity dominate). {SEED_NOTE}",
        pareto,
        mean_std_cells(pareto),
    )

    frames["interventions"] = inter
    chosen = set()
    if len(sweep):
        picked = sweep[sweep["chosen"].astype(bool)]
        chosen = set(zip(picked.dataset, picked.model, picked.point, strict=True))
    shown = inter
    if len(inter):
        keep = [key in chosen for key in zip(inter.dataset, inter.model, inter.point, strict=True)]
        shown = inter[keep]
        if "concept" in shown:
            shown = shown.assign(concept=shown["family"].astype(str) + ":" + shown["concept"])
        cost = [
            collect.metric_column(inter, "delta_ndcg"),
            collect.metric_column(inter, "overlap"),
            "off_target_change",
            "note",
        ]
        shown = shown[_columns(shown, [*INTERVENTION_MD, *[c for c in cost if c]])]
    write_table(
        out_dir,
        "interventions",
        "Interventions: effect and cost per concept and level",
        "effect = concept share in the users' top-k (filtering, nudging) or share of the "
        "audience reaching the promoted item (promotion); cost = NDCG change and overlap "
        "with the unedited lists. The markdown/HTML show the chosen SAE per (dataset, "
        "model); the CSV has every sweep point.",
        inter,
        shown,
    )
    planted = collect.planted_frame(results_dir, settings["sae_points"])
    frames["planted"] = planted
    write_table(
        out_dir,
        "planted",
        "Planted-concept recovery (synthetic data)",
        "Per sweep point and planted family (and `all` planted concepts): the mean over concepts "
        "of the best neuron's AUROC and precision@R (R = the concept's size) on items, next to "
        "the same for as many seeded random directions. Empty without planted concepts.",
        planted,
    )
    methods = collect.methods_frame(sweep, inter, cfg["methods_filter_level"])
    frames["methods"] = methods
    write_table(
        out_dir,
        "methods",
        "Concept extractors: SAEs and baselines",
        "One row per (dataset, model) and setting of each method (sae, or a baseline: "
        f"{', '.join(METHODS)}; variant topk = each input's k largest latents); mean ± "
        "std over seeds (n_seeds). Fidelity on held-out users; concept columns on items: "
        "concept_auroc = the best single latent's AUROC per concept, probe_ceiling = "
        "cross-validated balanced logistic probe on the embedding, ceiling_share = "
        "sum(concept_auroc - 0.5) / sum(ceiling - 0.5) over concepts, sparse_probe_kK = "
        "cross-validated probe on K latents; filter_effect = drop of the concept's top-k share "
        "when its latent is set to "
        f"{cfg['methods_filter_level']:g} x its max, filter_delta_ndcg = its cost.",
        methods,
        with_std(methods),
    )
    assert set(frames) >= set(TABLES)
    return frames
