"""The report stage: tables, figures, neuron cards and the neuron explorer of a run."""

from __future__ import annotations

import logging
from pathlib import Path

from recsae import paths
from recsae.config import fill_defaults
from recsae.device import resolve_device

PARTS = ("tables", "sweep-figures", "interventions", "neuron-cards", "explorer", "explorer-index")


def render(
    settings: dict,
    *,
    part: str,
    results_dir: str | Path,
    out_dir: str | Path,
    dataset: str | None = None,
    model: str | None = None,
    device: str = "cpu",
) -> None:
    """Build one part of the report (``recsae.report``) into ``out_dir`` from the results under
    ``results_dir`` (settings: ``workflow.report_settings``; a missing ``report`` block gets the
    schema's defaults; ``device``: auto, cpu or cuda[:N])."""
    device = resolve_device(device)
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    settings = {**settings, "report": fill_defaults("report", settings.get("report"))}
    settings.setdefault("recommenders", [])
    settings.setdefault("sae_points", [])
    tables_dir = Path(paths.tables_dir(results_dir))
    if part == "tables":
        from recsae.report.tables import build_tables

        build_tables(results_dir, settings, out_dir)
        return
    if part == "sweep-figures":
        from recsae.report.figures import sweep_figures

        sweep_figures(tables_dir, settings, out_dir)
        return
    if part == "explorer-index":
        from recsae.report.explorer import build_index

        build_index(settings, out_dir / "index.html")
        return
    if part not in PARTS:
        raise ValueError(f"unknown report part {part!r}; known: {PARTS}")
    if not dataset or not model:
        raise ValueError(f"report part {part!r} needs a dataset and a model")
    if part == "explorer":
        from recsae.report.explorer import build_pair_page

        stats = build_pair_page(
            results_dir, settings, dataset, model, out_dir / f"{model}.html", device
        )
        logging.getLogger(__name__).info("explorer %s/%s: %s", dataset, model, stats)
        return
    name = part.replace("-", "_")
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    if part == "interventions":
        from recsae.report.figures import intervention_curves

        intervention_curves(tables_dir, dataset, model, png, svg)
    else:
        from recsae.report.neuron_cards import neuron_cards

        neuron_cards(results_dir, tables_dir, dataset, model, settings, png, svg, device)
