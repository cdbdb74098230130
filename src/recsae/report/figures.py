"""Figures of the sweep (one panel row per (dataset, model)) and the intervention curves of the
chosen SAE of each pair. Matplotlib with the Agg backend; every figure is written as PNG and SVG
(deterministic: fixed SVG hash salt, no dates in the metadata)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from recsae.io import atomic_write  # noqa: E402
from recsae.report import collect  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "recsae", "font.size": 9, "axes.titlesize": 9})
LEGEND_COLUMNS = 5
VARIANT_MARKERS = {"relu": "o", "topk": "s", "batchtopk": "D", "matryoshka": "^"}
EXPERIMENT_TITLES = {
    "filtering": "filtering (set level in heavy users)",
    "nudging": "nudging (add level in light users)",
    "promotion": "promotion (set level in target items)",
}


def save(fig, png: str | Path, svg: str | Path | None = None, dpi: int = 110) -> None:
    """Write ``fig`` to png (and svg), atomically, and close it."""
    atomic_write(
        png, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    )
    if svg is not None:
        atomic_write(svg, lambda tmp: fig.savefig(tmp, format="svg", metadata={"Date": None}))
    plt.close(fig)


def placeholder(text: str, png, svg=None) -> None:
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    save(fig, png, svg)


def _pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(frame["dataset"], frame["model"], strict=True)))


def series_label(frame: pd.DataFrame) -> pd.Series:
    """Legend entry of each sweep row: the SAE variant, or a baseline's method (``-topk`` for its
    L0-matched form)."""
    variant = frame["variant"].astype(str)
    if "method" not in frame:
        return variant
    method = frame["method"].fillna("sae").astype(str)
    baseline = method + variant.map(lambda v: "-topk" if v == "topk" else "")
    return variant.where(method.eq("sae"), baseline)


def _variant_colors(frame: pd.DataFrame) -> dict:
    labels = list(dict.fromkeys(series_label(frame)))
    cmap = plt.get_cmap("tab20" if len(labels) > 10 else "tab10")
    return {v: cmap(i % cmap.N) for i, v in enumerate(labels)}


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce")


def _scatter_by_variant(ax, frame, x, y, colors, label=True):
    for series, group in frame.groupby(series_label(frame), sort=False):
        ax.scatter(
            _numeric(group, x),
            _numeric(group, y),
            s=28,
            color=colors[series],
            marker=VARIANT_MARKERS.get(str(group["variant"].iloc[0]), "o"),
            label=series if label else None,
            edgecolor="black",
            linewidth=0.4,
            zorder=3,
        )


def _pareto_line(ax, frame, fidelity, sparsity):
    mask = collect.pareto_mask(frame, fidelity, sparsity)
    front = frame[mask].assign(_x=_numeric(frame, sparsity), _y=_numeric(frame, fidelity))
    front = front.sort_values("_x")
    if len(front):
        ax.step(
            front["_x"],
            front["_y"],
            where="post",
            color="black",
            lw=1,
            alpha=0.7,
            zorder=2,
            label="Pareto front",
        )
        ax.scatter(
            front["_x"],
            front["_y"],
            s=90,
            facecolor="none",
            edgecolor="black",
            linewidth=1,
            zorder=4,
        )


def fidelity_sparsity(sweep: pd.DataFrame, cfg: dict, png, svg) -> None:
    """Fidelity (rank agreement and score recovered) vs L0 per SAE variant and baseline method,
    Pareto fronts (over all methods) marked; one panel row per (dataset, model)."""
    if sweep.empty:
        return placeholder("no SAE sweep points", png, svg)
    sparsity = cfg["pareto_sparsity"]
    fidelities = list(dict.fromkeys([cfg["pareto_fidelity"], "score_recovered"]))
    pairs, colors = _pairs(sweep), _variant_colors(sweep)
    fig, axes = plt.subplots(
        len(pairs),
        len(fidelities),
        squeeze=False,
        figsize=(4.2 * len(fidelities), 3.0 * len(pairs)),
    )
    for row, (dataset, model) in enumerate(pairs):
        frame = sweep[(sweep.dataset == dataset) & (sweep.model == model)]
        for col, fidelity in enumerate(fidelities):
            ax = axes[row, col]
            _pareto_line(ax, frame, fidelity, sparsity)
            _scatter_by_variant(ax, frame, sparsity, fidelity, colors)
            ax.set(
                xlabel=f"{sparsity} (active latents per item)",
                ylabel=fidelity,
                title=f"{dataset} / {model}: {fidelity} vs {sparsity}",
            )
            ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    _save_with_top_legend(fig, handles, labels, png, svg)


def _save_with_top_legend(fig, handles, labels, png, svg) -> None:
    """The legend above all panels (rows of at most ``LEGEND_COLUMNS``), then save PNG + SVG."""
    ncol = min(len(labels), LEGEND_COLUMNS) or 1
    rows = -(-len(labels) // ncol)
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=ncol,
        frameon=False,
        bbox_to_anchor=(0.5, 1.0),
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 * max(rows, 1) / fig.get_figheight()))
    save(fig, png, svg)


def ms_coverage(sweep: pd.DataFrame, cfg: dict, png, svg) -> None:
    """MS (mean over neurons) and item-concept coverage vs dictionary width and vs beta; one
    panel row per (dataset, model). Lines join the beta-only points (the paper's beta sweep)."""
    if sweep.empty:
        return placeholder("no SAE sweep points", png, svg)
    pairs, colors = _pairs(sweep), _variant_colors(sweep)
    panels = [(x, y) for x in ("width", "beta") for y in ("ms_mean", "coverage_items")]
    fig, axes = plt.subplots(
        len(pairs), len(panels), squeeze=False, figsize=(3.4 * len(panels), 2.9 * len(pairs))
    )
    beta_only = collect.beta_points(sweep)
    for row, (dataset, model) in enumerate(pairs):
        frame = sweep[(sweep.dataset == dataset) & (sweep.model == model)]
        line = beta_only[(beta_only.dataset == dataset) & (beta_only.model == model)]
        for col, (x, y) in enumerate(panels):
            ax = axes[row, col]
            if x == "beta" and len(line) > 1:
                ax.plot(
                    _numeric(line, x),
                    _numeric(line, y),
                    color="grey",
                    lw=1,
                    zorder=2,
                    label="beta~X points",
                )
            _scatter_by_variant(ax, frame, x, y, colors)
            if x == "width" and _numeric(frame, "width").gt(0).all():
                ax.set_xscale("log", base=2)
            if x == "beta":
                ax.set_xscale("symlog", linthresh=1)
            ax.set(xlabel=x, ylabel=y, title=f"{dataset} / {model}: {y} vs {x}")
            ax.grid(alpha=0.3)
    handles, labels = [], []
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    _save_with_top_legend(fig, handles, labels, png, svg)


def sweep_figures(tables_dir: str | Path, settings: dict, out_dir: str | Path) -> None:
    """fidelity_sparsity and ms_coverage (.png, .svg) from ``tables_dir/sweep.csv``."""
    out_dir = Path(out_dir)
    sweep = read_sweep(tables_dir)
    cfg = settings["report"]
    fidelity_sparsity(
        sweep, cfg, out_dir / "fidelity_sparsity.png", out_dir / "fidelity_sparsity.svg"
    )
    ms_coverage(sweep, cfg, out_dir / "ms_coverage.png", out_dir / "ms_coverage.svg")


def read_sweep(tables_dir: str | Path) -> pd.DataFrame:
    path = Path(tables_dir) / "sweep.csv"
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=["dataset", "model", "point", "variant"])
    return frame.astype({"dataset": str, "model": str, "point": str})


def chosen_point(sweep: pd.DataFrame, dataset: str, model: str) -> str | None:
    """The sweep path marked ``chosen`` for (dataset, model), or None."""
    if sweep.empty:
        return None
    rows = sweep[
        (sweep.dataset == dataset)
        & (sweep.model == model)
        & sweep["chosen"].astype(str).str.lower().eq("true")
    ]
    return str(rows["point"].iloc[0]) if len(rows) else None


def intervention_curves(tables_dir: str | Path, dataset: str, model: str, png, svg) -> None:
    """Concept share (promotion: success) vs level, with the NDCG change on a second axis, per
    experiment, for the chosen SAE of (dataset, model); one colour per concept."""
    tables_dir = Path(tables_dir)
    point = chosen_point(read_sweep(tables_dir), dataset, model)
    inter = pd.read_csv(tables_dir / "interventions.csv") if point else pd.DataFrame()
    if len(inter):
        inter = inter[
            (inter.dataset.astype(str) == dataset)
            & (inter.model.astype(str) == model)
            & (inter.point.astype(str) == point)
        ]
        inter = inter[_numeric(inter, "level").notna()] if "level" in inter else inter.iloc[:0]
    if inter.empty:
        return placeholder(
            f"{dataset} / {model}: no intervention results" + (f" for {point}" if point else ""),
            png,
            svg,
        )
    cost = collect.metric_column(inter, "delta_ndcg")
    concepts = list(dict.fromkeys(inter["family"].astype(str) + ":" + inter["concept"].astype(str)))
    cmap = plt.get_cmap("tab10")
    colors = {c: cmap(i % 10) for i, c in enumerate(concepts)}
    fig, axes = plt.subplots(1, len(collect.EXPERIMENTS), figsize=(4.6 * 3, 3.6), squeeze=False)
    for ax, experiment in zip(axes[0], collect.EXPERIMENTS, strict=True):
        rows = inter[inter.experiment == experiment]
        twin = ax.twinx()
        for concept in concepts:
            part = rows[rows["family"].astype(str) + ":" + rows["concept"].astype(str) == concept]
            if part.empty:
                continue
            part = part.sort_values("level")
            ax.plot(part["level"], part["effect"], marker="o", color=colors[concept], label=concept)
            if experiment != "promotion" and part["share_original"].notna().any():
                ax.axhline(part["share_original"].iloc[0], color=colors[concept], lw=0.8, ls=":")
            if cost:
                twin.plot(
                    part["level"], part[cost], marker="x", ls="--", color=colors[concept], alpha=0.8
                )
        ax.set(
            xlabel="level (x neuron max)",
            title=EXPERIMENT_TITLES[experiment],
            ylabel="promotion success" if experiment == "promotion" else "concept share in top-k",
        )
        ax.set_ylim(-0.02, 1.02)
        if cost:
            twin.set_ylabel(f"{cost} (dashed)")
            twin.axhline(0, color="grey", lw=0.6)
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes[0, 1:]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.suptitle(
        f"{dataset} / {model}: interventions of SAE {point} "
        "(solid: effect, dotted: unedited share, dashed: NDCG cost)",
        y=0.99,
    )
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    save(fig, png, svg)
