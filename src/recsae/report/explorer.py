"""Neuron explorer: one self-contained offline HTML page per (dataset, model) with every neuron of
every sweep point of the run, and an index page that links them.

Layout (``recsae.paths``)::

    results/explorer/index.html                      # the pairs, their points, links
    results/explorer/{dataset}/{model}.html          # the explorer of one pair

A pair page embeds its data as one JSON block (``<script type="application/json">``) and draws it
with the plain JavaScript and CSS of ``explorer_page/`` (no library, no network request), so it
opens from ``file://``. Points are enumerated from the run's sweep paths whatever their keys
(``method~pca``, ``seed~1``, ...); a point's *setting* is its path without the ``seed~N`` segment,
so the comparison view groups the repeats of one setting.

Per point (N items, U users, H neurons; concepts as the metrics see them: ``concepts.parquet``
plus the popularity/activity buckets of ``recsae.metrics.alignment.entity_concepts``):

* neurons: best item concept, its AUROC and top-k precision, the label (the captured concept,
  if any; ``metrics.json`` alignment), MS,
  activation frequency on items and held-out users, dead and dense flags (``metrics.json``
  health, pooled as the metrics pool them);
* per neuron: its ``TOP_ITEMS`` most activating items with activations, the item-concept shares
  of its top-k items (k = ``align_top_k``), the user-attribute shares of its ``TOP_USERS`` most
  activating users it fires on (``topUserCount`` of them; users.parquet attributes, numeric
  ones in decades, activity buckets);
* per item: the ``ITEM_NEURONS`` neurons that fire most on it; per concept: the
  ``CONCEPT_NEURONS`` neurons with the highest AUROC, with their precision;
* the intervention curves of ``interventions.json``;
* the point's summary line: the ``SUMMARY_METRICS`` columns of its ``metrics.json`` summary, each
  with the title, direction and definition its metric declares (``recsae.metrics``).
"""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsae import paths
from recsae.data.tables import load_split
from recsae.io import atomic_write, read_json
from recsae.metrics.alignment import COVERAGE_ITEMS, auroc_matrix, top_precision
from recsae.metrics.fidelity import RBO
from recsae.metrics.health import DEAD_FRACTION, L0_ITEMS
from recsae.metrics.monosemanticity import MS_MEAN
from recsae.metrics.spec import Metric
from recsae.report.collect import point_setting
from recsae.report.labels import item_names
from recsae.sweep import parse_point_path

PAGE_DIR = Path(__file__).with_name("explorer_page")
TOP_ITEMS = 20
TOP_USERS = 50
ITEM_NEURONS = 5
CONCEPT_NEURONS = 10
MAX_ATTRIBUTE_VALUES = 30  # user attributes with more distinct values (zip codes) are left out
EXPERIMENTS = ("filtering", "nudging", "promotion")
# the metrics of a point's summary line, in this order
SUMMARY_METRICS: tuple[Metric, ...] = (L0_ITEMS, RBO, MS_MEAN, COVERAGE_ITEMS, DEAD_FRACTION)


def pair_paths(settings: dict, dataset: str, model: str) -> list[str]:
    """The sweep paths of one (dataset, model) pair, in config order."""
    return [p for d, m, p in settings.get("sae_points", []) if (d, m) == (dataset, model)]


def _round(values, digits: int = 3) -> list:
    """Floats rounded for the page (None for NaN/inf/None)."""
    out = []
    for v in np.asarray(values, dtype=object).tolist():
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            out.append(None)
        else:
            out.append(round(float(v), digits))
    return out


def _latents(model_path: Path, sae_path: Path, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(U, H) user and (N, H) item latents of the recommender's embeddings under one SAE."""
    from recsae.interventions import sae_encode
    from recsae.recommenders.base import load_checkpoint
    from recsae.sae.model import load_sae

    model = load_checkpoint(model_path, device)
    sae = load_sae(sae_path, device)
    with torch.no_grad():
        users = sae_encode(sae, model.user_embeddings().detach())
        items = sae_encode(sae, model.item_embeddings().detach())
    return users.cpu(), items.cpu()


def user_attributes(users: pd.DataFrame) -> pd.DataFrame:
    """Long-format labels (id, family, concept) of the attribute columns of users.parquet:
    numeric ones in decades (age 25 -> "20s"), text ones with at most MAX_ATTRIBUTE_VALUES
    distinct values as they are; ids, raw ids and missing values are left out."""
    frames = []
    for column in users.columns:
        if column in ("user", "raw_id"):
            continue
        values = users[column]
        keep = values.notna()
        if pd.api.types.is_numeric_dtype(values):
            labels = (values[keep].astype(float) // 10 * 10).astype(int).astype(str) + "s"
        elif values[keep].nunique() <= MAX_ATTRIBUTE_VALUES:
            labels = values[keep].astype(str)
        else:
            continue
        frames.append(
            pd.DataFrame({"id": users.loc[keep, "user"], "family": column, "concept": labels})
        )
    if not frames:
        return pd.DataFrame(columns=["id", "family", "concept"])
    return pd.concat(frames, ignore_index=True)


def _concept_names(concepts) -> list[str]:
    return [f"{f}={c}" for f, c in zip(concepts.family, concepts.name, strict=True)]


def _sparse_rows(matrix: np.ndarray, digits: int = 2) -> list[list]:
    """Per row, [[column, value], ...] of the nonzero entries, largest first."""
    out = []
    for row in matrix:
        cols = np.flatnonzero(row > 0)
        cols = cols[np.argsort(-row[cols], kind="stable")]
        out.append([[int(c), round(float(row[c]), digits)] for c in cols])
    return out


def _top(acts: torch.Tensor, k: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest entries along ``dim`` (ties: lower index first)."""
    k = min(k, acts.shape[dim])
    values, indices = acts.to(torch.float64).sort(dim=dim, descending=True, stable=True)
    return indices.narrow(dim, 0, k).numpy(), values.narrow(dim, 0, k).numpy()


def _neuron_table(metrics: dict, n_neurons: int, n_items: int) -> dict:
    """The per-neuron columns of the neuron table, from metrics.json."""
    per_neuron = ((metrics.get("alignment") or {}).get("items") or {}).get("per_neuron") or {}
    none = [None] * n_neurons
    family, concept = per_neuron.get("family") or none, per_neuron.get("concept") or none
    label_family, label = per_neuron.get("label_family") or none, per_neuron.get("label") or none
    health = metrics.get("health") or {}
    freq_users = np.asarray(health.get("freq_users") or [0.0] * n_neurons, dtype=float)
    freq_items = np.asarray(health.get("freq_items") or [0.0] * n_neurons, dtype=float)
    n_users = int((metrics.get("heldout") or {}).get("n_users") or 0)
    pooled = (freq_users * n_users + freq_items * n_items) / max(n_users + n_items, 1)
    threshold = float(health.get("dense_threshold", 0.5))
    return {
        "concept": [
            f"{f}={c}" if c is not None else None for f, c in zip(family, concept, strict=True)
        ],
        "label": [
            f"{f}={c}" if c is not None else None for f, c in zip(label_family, label, strict=True)
        ],
        "auroc": _round(per_neuron.get("auroc") or none),
        "precision": _round(per_neuron.get("precision") or none),
        "ms": _round((metrics.get("monosemanticity") or {}).get("per_neuron") or none),
        "freqItems": _round(freq_items, 4),
        "freqUsers": _round(freq_users, 4),
        "dead": [bool(f == 0) for f in pooled],
        "dense": [bool(f > threshold) for f in pooled],
    }


def _interventions(path: Path) -> list[dict]:
    """Per concept intervened on: neuron, AUROC and per experiment the curves of the page."""
    if not path.is_file():
        return []
    out = []
    for entry in read_json(path).get("concepts", []):
        curves = {}
        for name in EXPERIMENTS:
            block = entry.get(name) or {}
            levels = block.get("levels") or []
            if not levels:
                continue
            cost = next((k for k in levels[0] if k.startswith("delta_ndcg@")), None)
            overlap = next((k for k in levels[0] if k.startswith("overlap@")), None)
            effect = "success" if name == "promotion" else "share"
            curves[name] = {
                "shareOriginal": block.get("share_original"),
                "level": _round([r["level"] for r in levels]),
                "effect": _round([r.get(effect) for r in levels]),
                "cost": _round([r.get(cost) for r in levels]),
                "overlap": _round([r.get(overlap) for r in levels]),
                "costName": cost,
                "overlapName": overlap,
            }
        out.append(
            {
                "concept": f"{entry.get('family')}={entry.get('concept')}",
                "neuron": entry.get("neuron"),
                "auroc": _round([entry.get("auroc")])[0],
                "curves": curves,
            }
        )
    return out


def point_data(
    model_path: Path, sae_dir: Path, path: str, item_concepts, user_concepts, device: str = "cpu"
) -> dict:
    """Everything the page shows of the sweep point ``path`` whose files are in ``sae_dir``, of
    the recommender ``model_path`` (see the module docstring)."""
    metrics = read_json(sae_dir / "metrics.json")
    z_users, z_items = _latents(model_path, sae_dir / "sae.pt", device)
    n_neurons = z_items.shape[1]
    align_k = int((metrics.get("config") or {}).get("align_top_k", 30))
    top_items, top_acts = _top(z_items, TOP_ITEMS, dim=0)  # (k, H)
    item_neurons, item_acts = _top(z_items, ITEM_NEURONS, dim=1)  # (N, k)
    auroc = auroc_matrix(z_items, item_concepts.labels)  # (H, C)
    precision = top_precision(z_items, item_concepts.labels, align_k)  # (H, C)
    concept_neurons = np.argsort(-auroc, axis=0, kind="stable")[:CONCEPT_NEURONS].T  # (C, k)
    user_shares = top_precision(z_users, user_concepts.labels, TOP_USERS)  # (H, Cu)
    setting, seed = point_setting(path)
    summary = {k: v for k, v in (metrics.get("summary") or {}).items() if isinstance(v, float)}
    return {
        "path": path,
        "setting": setting,
        "seed": seed,
        "keys": {k: str(v) for k, v in parse_point_path(path).items()},
        "width": n_neurons,
        "summary": dict(zip(summary, _round(list(summary.values()), 4), strict=True)),
        "neurons": _neuron_table(metrics, n_neurons, z_items.shape[0]),
        "topItems": [
            [int(i) for i, a in zip(top_items[:, j], top_acts[:, j], strict=True) if a > 0]
            for j in range(n_neurons)
        ],
        "topActs": [_round([a for a in top_acts[:, j] if a > 0]) for j in range(n_neurons)],
        "itemShares": _sparse_rows(precision),
        "userShares": _sparse_rows(user_shares),
        "topUserCount": np.minimum((z_users > 0).sum(0).numpy(), TOP_USERS).tolist(),
        "itemNeurons": [
            [[int(n), round(float(a), 3)] for n, a in zip(ns, acts, strict=True) if a > 0]
            for ns, acts in zip(item_neurons, item_acts, strict=True)
        ],
        "conceptNeurons": [
            [[int(n), round(float(auroc[n, c]), 3), round(float(precision[n, c]), 2)] for n in row]
            for c, row in enumerate(concept_neurons)
        ],
        "interventions": _interventions(sae_dir / "interventions.json"),
    }


def summary_metrics(points: list[dict]) -> list[dict]:
    """The summary line's metrics: per ``SUMMARY_METRICS`` entry, the first summary column of
    ``points`` (``point_data`` dicts) it covers (``rbo30`` for ``rbo{agreement_k}``), as {key,
    title, goal (max: higher is better, min: lower, null), definition}; metrics no point has
    are left out."""
    columns = list(dict.fromkeys(key for p in points for key in p["summary"]))
    out = []
    for metric in SUMMARY_METRICS:
        column = next((c for c in columns if metric.matches(c)), None)
        if column is not None:
            out.append(
                {
                    "key": column,
                    "title": metric.label(column),
                    "goal": metric.goal,
                    "definition": metric.definition,
                }
            )
    return out


def _catalogue(concepts) -> dict:
    n = concepts.labels.shape[0]
    return {"name": _concept_names(concepts), "share": _round(concepts.n_positives / max(n, 1))}


def pair_data(
    results_dir: Path, dataset: str, model: str, point_paths: list[str], device="cpu"
) -> dict:
    """The JSON data of one pair's page: the catalogue once, then every point in ``point_paths``."""
    from recsae.config import resolve_metrics_config
    from recsae.metrics.alignment import entity_concepts

    data_dir = Path(paths.data_dir(dataset, results_dir))
    model_path = Path(paths.model_dir(dataset, model, results_dir)) / "model.pt"

    def sae_dir(point: str) -> Path:
        return Path(paths.sae_dir(dataset, model, point, results_dir))

    items = pd.read_parquet(data_dir / "items.parquet").set_index("item").sort_index()
    users = pd.read_parquet(data_dir / "users.parquet")
    split = load_split(data_dir, paths.split_dir(dataset, results_dir))
    train = split.matrix("train")
    first = read_json(sae_dir(point_paths[0]) / "metrics.json") if point_paths else {}
    cfg = resolve_metrics_config(first.get("config"))
    labels = pd.read_parquet(data_dir / "concepts.parquet")
    item_concepts = entity_concepts(
        labels, "item", np.asarray(train.sum(0)).ravel(), "popularity", cfg
    )
    user_labels = pd.concat([labels, user_attributes(users).assign(entity="user")])
    activity = np.asarray(train.sum(1)).ravel()
    user_concepts = entity_concepts(
        user_labels, "user", activity, "activity", {**cfg, "min_concept_count": 1}
    )
    titles = item_names(items)
    points = [
        point_data(model_path, sae_dir(p), p, item_concepts, user_concepts, device)
        for p in point_paths
    ]
    return {
        "dataset": dataset,
        "model": model,
        "items": {
            "title": titles,
            "popularity": np.asarray(train.sum(0)).ravel().astype(int).tolist(),
        },
        "itemConcepts": _catalogue(item_concepts),
        "userConcepts": _catalogue(user_concepts),
        "nUsers": int(train.shape[0]),
        "alignTopK": int(cfg["align_top_k"]),
        "topUsers": TOP_USERS,
        "metrics": summary_metrics(points),
        "points": points,
    }


def _page(title: str, body: str, data: dict | None = None) -> str:
    """A full HTML document with the page's CSS and (with data) its script and JSON inlined."""
    css = (PAGE_DIR / "explorer.css").read_text()
    script = ""
    if data is not None:
        payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
        js = (PAGE_DIR / "explorer.js").read_text()
        script = (
            f'<script type="application/json" id="explorer-data">{payload}</script>\n'
            f"<script>\n{js}</script>\n"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<link rel="icon" href="data:,">\n<title>{html.escape(title)}</title>\n'
        f"<style>\n{css}</style>\n</head>\n<body>\n{body}\n{script}</body>\n</html>\n"
    )


def build_pair_page(
    results_dir: str | Path,
    settings: dict,
    dataset: str,
    model: str,
    out: str | Path,
    device: str = "cpu",
) -> dict:
    """Write the explorer page of (dataset, model); return {points, neurons, bytes, seconds}."""
    start = time.perf_counter()
    point_paths = pair_paths(settings, dataset, model)
    data = pair_data(Path(results_dir), dataset, model, point_paths, device)
    body = (PAGE_DIR / "explorer.html").read_text()
    page = _page(f"recsae explorer: {dataset} / {model}", body, data)
    atomic_write(out, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return {
        "points": len(point_paths),
        "neurons": sum(p["width"] for p in data["points"]),
        "bytes": len(page.encode()),
        "seconds": round(time.perf_counter() - start, 2),
    }


def build_index(settings: dict, out: str | Path) -> None:
    """Write the index page: per (dataset, model) a link to its page and its sweep points."""
    pairs = list(dict.fromkeys((d, m) for d, m, _ in settings.get("sae_points", [])))
    rows = []
    for dataset, model in pairs:
        point_paths = pair_paths(settings, dataset, model)
        href = html.escape(f"{dataset}/{model}.html")
        points = ", ".join(f"<code>{html.escape(p)}</code>" for p in point_paths)
        rows.append(
            f'<tr><td><a href="{href}">{html.escape(dataset)} / {html.escape(model)}</a></td>'
            f"<td>{len(point_paths)}</td><td>{points}</td></tr>"
        )
    body = (
        "<h1>recsae neuron explorer</h1>\n<p>One page per (dataset, model); each lists every "
        "neuron of every sweep point. The pages work offline (open them from disk).</p>\n"
        "<table><thead><tr><th>dataset / model</th><th>points</th><th>sweep points</th></tr>"
        f"</thead><tbody>{''.join(rows) or '<tr><td colspan=3>no SAE sweep</td></tr>'}"
        "</tbody></table>"
    )
    atomic_write(out, lambda tmp: Path(tmp).write_text(_page("recsae explorer", body), "utf-8"))
