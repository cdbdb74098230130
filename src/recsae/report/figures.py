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
from recsae.metrics.alignment import COVERAGE_ITEMS  # noqa: E402
from recsae.metrics.fidelity import SCORE_RECOVERED  # noqa: E402
from recsae.metrics.monosemanticity import MS_MEAN  # noqa: E402
from recsae.metrics.registry import metric_for  # noqa: E402
from recsae.report import collect  # noqa: E402
from recsae.sae.variants import VARIANTS  # noqa: E402
from recsae.sweep import format_value, parse_point_path  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "recsae", "font.size": 9, "axes.titlesize": 9})
LEGEND_COLUMNS = 5
VARIANT_MARKERS = {name: variant.marker for name, variant in VARIANTS.items()}
EXPERIMENT_TITLES = {
    "filtering": "filtering (set in heavy users)",
    "nudging": "nudging (add in light users)",
    "promotion": "promotion (set in target items)",
}
SETTING_TITLES = {
    "width": "dictionary width (neurons)",
    "beta": "β, prediction-loss weight",
}
SETTING_SYMBOLS = {"beta": "β", "width": "w", "k": "k", "seed": "seed"}
EMPTY_PANEL_REASONS = {
    "coverage_items": "no item concept could be scored\n(metrics.min_concept_count)",
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


def axis_title(column: str) -> str:
    """A sweep column as an axis title in words (with its unit or scale): a metric's declared
    title (``recsae.metrics.registry``), a setting's, else the column name."""
    metric = metric_for(column)
    if metric is not None and metric.title:
        return metric.label(column)
    return SETTING_TITLES.get(column, column)


def setting_label(setting: str) -> str:
    """Short text of a sweep setting (its path without the seed), e.g. ``×4 β=1``."""
    keys = parse_point_path(setting) if setting != "default" else {}
    parts = []
    for key, value in keys.items():
        if key == "expansion":
            parts.append(f"×{format_value(value)}")
        elif key in SETTING_SYMBOLS:
            parts.append(f"{SETTING_SYMBOLS[key]}={format_value(value)}")
        elif key in ("variant", "method", "matryoshka_base"):
            parts.append(str(value))
        else:
            parts.append(f"{key}={format_value(value)}")
    return " ".join(parts) or "default"


def setting_means(frame: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per (dataset, model, setting) of sweep rows: the metrics' means over seeds, their
    ``_std`` and ``n_seeds`` (``collect.over_seeds``), with the setting's variant, width, beta."""
    keys = [c for c in ("dataset", "model", "method", "variant", "width", "beta") if c in frame]
    base = frame[keys].copy()
    base["setting"] = [collect.point_setting(str(p))[0] for p in frame["point"]]
    base["seed"] = [collect.point_setting(str(p))[1] for p in frame["point"]]
    for metric in metrics:
        base[metric] = _numeric(frame, metric)
    return collect.over_seeds(base, metrics)


def _scatter_by_variant(ax, frame, x, y, colors, label=True, annotate=False):
    """Points per SAE variant or baseline method (``series_label``); error bars (one std over
    seeds) where a setting has several seeds."""
    for series, group in frame.groupby(series_label(frame), sort=False):
        xs, ys = _numeric(group, x), _numeric(group, y)
        ax.scatter(
            xs,
            ys,
            s=28,
            color=colors[series],
            marker=VARIANT_MARKERS.get(str(group["variant"].iloc[0]), "o"),
            label=series if label else None,
            edgecolor="black",
            linewidth=0.4,
            zorder=3,
        )
        xerr, yerr = _numeric(group, f"{x}_std"), _numeric(group, f"{y}_std")
        if xerr.notna().any() or yerr.notna().any():
            ax.errorbar(
                xs,
                ys,
                xerr=xerr.fillna(0),
                yerr=yerr.fillna(0),
                fmt="none",
                ecolor=colors[series],
                elinewidth=0.8,
                capsize=2,
                zorder=2,
            )
        if annotate:  # labels alternate above and below their points, in order of x
            order = np.argsort(xs.to_numpy(float), kind="stable")
            for rank, i in enumerate(order):
                xv, yv, setting = xs.iloc[i], ys.iloc[i], group["setting"].iloc[i]
                if np.isfinite(xv) and np.isfinite(yv):
                    ax.annotate(
                        setting_label(str(setting)),
                        (xv, yv),
                        xytext=(4, 4 if rank % 2 == 0 else -10),
                        textcoords="offset points",
                        fontsize=6.5,
                        color="#333",
                    )


def empty_panel(ax, frame: pd.DataFrame, x: str, y: str) -> bool:
    """Write a note in place of a panel with no point whose x and y are both finite (e.g. no
    concept scored, so no coverage), and return True; False when there is something to plot."""
    finite = np.isfinite(_numeric(frame, x).to_numpy(float)) & np.isfinite(
        _numeric(frame, y).to_numpy(float)
    )
    if finite.any():
        return False
    reason = EMPTY_PANEL_REASONS.get(y, "no finite value in the results")
    ax.text(0.5, 0.5, f"{axis_title(y)}:\n{reason}", ha="center", va="center",
            transform=ax.transAxes, fontsize=8, color="#555", wrap=True)  # fmt: skip
    ax.set(xticks=[], yticks=[], xlabel=axis_title(x), ylabel=axis_title(y))
    return True


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
    each point labelled with its setting (mean over seeds, error bars: one std), Pareto fronts
    (over all methods) marked; one panel row per (dataset, model)."""
    if sweep.empty:
        return placeholder("no SAE sweep points", png, svg)
    sparsity = cfg["pareto_sparsity"]
    fidelities = list(dict.fromkeys([cfg["pareto_fidelity"], SCORE_RECOVERED.key]))
    pairs, colors = _pairs(sweep), _variant_colors(sweep)
    sweep = setting_means(sweep, [sparsity, *fidelities])
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
            if empty_panel(ax, frame, sparsity, fidelity):
                ax.set_title(f"{dataset} / {model}")
                continue
            _pareto_line(ax, frame, fidelity, sparsity)
            _scatter_by_variant(ax, frame, sparsity, fidelity, colors, annotate=True)
            ax.set(
                xlabel=axis_title(sparsity),
                ylabel=axis_title(fidelity),
                title=f"{dataset} / {model}",
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
    """MS (mean over neurons) and item-concept coverage vs dictionary width and vs beta (means over
    seeds, error bars: one std); one panel row per (dataset, model). Lines join the beta-only
    points (the paper's beta sweep)."""
    if sweep.empty:
        return placeholder("no SAE sweep points", png, svg)
    pairs, colors = _pairs(sweep), _variant_colors(sweep)
    measures = [MS_MEAN.key, COVERAGE_ITEMS.key]
    panels = [(x, y) for x in ("width", "beta") for y in measures]
    sweep = setting_means(sweep, measures)
    fig, axes = plt.subplots(
        len(pairs), len(panels), squeeze=False, figsize=(3.4 * len(panels), 2.9 * len(pairs))
    )
    for row, (dataset, model) in enumerate(pairs):
        frame = sweep[(sweep.dataset == dataset) & (sweep.model == model)]
        only_beta = frame["setting"].map(lambda p: set(parse_point_path(p)) == {"beta"})
        line = frame[only_beta].assign(_beta=_numeric(frame, "beta")).sort_values("_beta")
        for col, (x, y) in enumerate(panels):
            ax = axes[row, col]
            if empty_panel(ax, frame, x, y):
                ax.set_title(f"{dataset} / {model}")
                continue
            if x == "beta" and len(line) > 1:
                ax.plot(
                    _numeric(line, x),
                    _numeric(line, y),
                    color="grey",
                    lw=1,
                    zorder=2,
                    label="β sweep (beta~X points)",
                )
            _scatter_by_variant(ax, frame, x, y, colors)
            if x == "width" and _numeric(frame, "width").gt(0).all():
                ax.set_xscale("log", base=2)
            if x == "beta":
                ax.set_xscale("symlog", linthresh=1)
            ax.set(xlabel=axis_title(x), ylabel=axis_title(y), title=f"{dataset} / {model}")
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
    """Per concept intervened on (rows) and experiment (columns) of the chosen SAE of (dataset,
    model): the effect against the level (concept share in the top-k; promotion: success rate)
    with the unedited share as a dashed line, and beneath it, on the same x axis, the cost:
    ΔNDCG@K and the overlap@k of the edited and original top-k."""
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
    cost, overlap = (
        collect.metric_column(inter, "delta_ndcg"),
        collect.metric_column(inter, "overlap"),
    )
    inter = inter.assign(_name=inter["family"].astype(str) + "=" + inter["concept"].astype(str))
    concepts = list(dict.fromkeys(inter["_name"]))
    fig, axes = plt.subplots(
        2 * len(concepts),
        len(collect.EXPERIMENTS),
        figsize=(3.5 * len(collect.EXPERIMENTS), 3.3 * len(concepts) + 0.8),
        squeeze=False,
        sharex="col",
        gridspec_kw={"height_ratios": [1.3, 1] * len(concepts)},
    )
    for row, concept in enumerate(concepts):
        for col, experiment in enumerate(collect.EXPERIMENTS):
            effect_ax, cost_ax = axes[2 * row, col], axes[2 * row + 1, col]
            part = inter[(inter["_name"] == concept) & (inter.experiment == experiment)]
            part = part.assign(_level=_numeric(part, "level")).sort_values("_level")
            neuron = part["neuron"].iloc[0] if len(part) else None
            effect_ax.set_title(
                f"{concept}: {EXPERIMENT_TITLES[experiment]}"
                + (f"\nneuron {int(neuron)}" if neuron is not None and pd.notna(neuron) else ""),
                fontsize=8,
            )
            if part.empty:
                effect_ax.text(
                    0.5, 0.5, "not run", ha="center", va="center", transform=effect_ax.transAxes
                )
                cost_ax.axis("off")
                continue
            effect_ax.plot(
                part["_level"],
                _numeric(part, "effect"),
                marker="o",
                color="tab:blue",
                label="edited",
            )
            reference = _numeric(part, "share_original").dropna()
            if experiment != "promotion" and len(reference):
                effect_ax.axhline(reference.iloc[0], color="grey", ls="--", lw=1, label="unedited")
            effect_ax.set_ylim(-0.03, 1.03)
            effect_ax.set_ylabel(
                "audience with target\nin top-(th+10)"
                if experiment == "promotion"
                else f"{concept.split('=')[0]} share\nin top-k lists",
                fontsize=8,
            )
            effect_ax.grid(alpha=0.3)
            effect_ax.legend(fontsize=7, loc="best")
            for column, marker, color, label in (
                (cost, "s", "tab:red", f"Δ{str(cost).removeprefix('delta_').upper()}"),
                (overlap, "^", "tab:green", f"{overlap} with original"),
            ):
                if column:
                    cost_ax.plot(
                        part["_level"],
                        _numeric(part, column),
                        marker=marker,
                        color=color,
                        label=label,
                    )
            cost_ax.axhline(0, color="grey", lw=0.6)
            low = min(-0.05, float(_numeric(part, cost).min()) - 0.05) if cost else -0.05
            cost_ax.set_ylim(low, 1.05)
            cost_ax.set_ylabel("cost", fontsize=8)
            cost_ax.set_xlabel("level (× neuron's max activation)", fontsize=8)
            cost_ax.grid(alpha=0.3)
            cost_ax.legend(fontsize=6.5, loc="best")
    fig.suptitle(f"{dataset} / {model}: interventions of SAE {point}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    save(fig, png, svg)
