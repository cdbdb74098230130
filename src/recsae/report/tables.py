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
from recsae.report import collect
from recsae.report.targets import SWEEP_TABLE, TABLES

FLOAT_FORMAT = ".4g"
BETA_METRICS = ("kendall_tau", "ms_mean", "ms_alive", "coverage_items")
BEST_COLUMNS = (
    "ms_mean",
    "coverage_items",
    "score_recovered",
    "kendall_tau",
    "l0_items",
    "dead_fraction",
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


def build_tables(results_dir: str | Path, settings: dict, out_dir: str | Path) -> dict:
    """Write every table of ``recsae.report.targets.TABLES`` (+ the tidy sweep CSV) to
    ``out_dir``; ``settings`` as ``recsae.report.targets.report_settings``. Returns the frames."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    cfg = settings["report"]
    recs = collect.recommender_frame(results_dir, settings["recommenders"])
    sweep = collect.sweep_frame(results_dir, settings["sae_points"], cfg)
    inter = collect.interventions_frame(results_dir, settings["sae_points"])
    metric, goal = cfg["best_point_metric"], cfg["best_point_goal"]
    rbo = collect.metric_column(sweep, "rbo") or cfg["pareto_fidelity"]
    frames = {"recommenders": recs, SWEEP_TABLE: sweep}

    write_table(
        out_dir,
        "recommenders",
        "Base recommenders (test split, full ranking)",
        "One row per (dataset, model); MostPop (training popularity) once per dataset.",
        recs,
    )

    beta = collect.beta_points(sweep)
    beta = beta[_columns(beta, ["dataset", "model", "beta", rbo, "rbo_ext", *BETA_METRICS])]
    frames["beta"] = beta
    write_table(
        out_dir,
        "beta",
        "beta sweep (prediction-aware loss weight)",
        "Points whose sweep path sets only beta (path `beta~X`); fidelity on held-out "
        "users, MS and coverage on items.",
        beta,
    )

    atomic_write(out_dir / f"{SWEEP_TABLE}.csv", lambda tmp: sweep.to_csv(tmp, index=False))

    lead = [
        "dataset",
        "model",
        "variant",
        "point",
        "width",
        "k",
        "beta",
        metric,
        rbo,
        *BEST_COLUMNS,
    ]
    best = sweep[sweep["best"].astype(bool)] if len(sweep) else sweep
    best = best[_columns(best, dict.fromkeys([*lead, "chosen"]))]
    frames["best_points"] = best
    write_table(
        out_dir,
        "best_points",
        "Best sweep point per (dataset, model, variant)",
        f"Rule: {goal}imum of `{metric}`; ties to the lower l0_items, then the point "
        "path. `chosen` marks the best per (dataset, model), the SAE of the neuron "
        "cards and intervention curves.",
        best,
    )

    fid, spa = cfg["pareto_fidelity"], cfg["pareto_sparsity"]
    pareto = sweep[sweep["pareto"].astype(bool)] if len(sweep) else sweep
    if len(pareto):
        pareto = pareto.sort_values(["dataset", "model", spa], kind="stable")
    pareto = pareto[
        _columns(
            pareto,
            dict.fromkeys(
                [
                    "dataset",
                    "model",
                    "variant",
                    "point",
                    spa,
                    fid,
                    "score_recovered",
                    "ms_mean",
                    "coverage_items",
                ]
            ),
        )
    ]
    frames["pareto"] = pareto
    write_table(
        out_dir,
        "pareto",
        "Pareto-optimal sweep points (fidelity vs sparsity)",
        f"Per (dataset, model): no other point has `{spa}` <= and `{fid}` >= with one "
        "strict (lower sparsity and higher fidelity dominate).",
        pareto,
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
        "One row per (dataset, model) and setting of each method (sae, or a baseline: identity, "
        "pca, ica, random, nmf, kmeans; variant topk = each input's k largest latents); mean ± "
        "std over seeds (n_seeds). Fidelity on held-out users; concept columns on items: "
        "concept_auroc = the best single latent's AUROC per concept, probe_ceiling = "
        "cross-validated balanced logistic probe on the embedding, ceiling_share = "
        "(concept_auroc - 0.5) / (ceiling - 0.5), sparse_probe_kK = cross-validated probe on K "
        "latents; filter_effect = drop of the concept's top-k share when its latent is set to "
        f"{cfg['methods_filter_level']:g} x its max, filter_delta_ndcg = its cost.",
        methods,
        with_std(methods),
    )
    assert set(frames) >= set(TABLES)
    return frames
