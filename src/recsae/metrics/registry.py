"""The registry of metric families: one module each in ``recsae.metrics``, one line here.

``summary(m, cfg)`` is ``metrics.json``'s ``summary`` (every family's scalars, in this order);
``metric_for(column)`` finds a summary column's declaration (its direction for the best-point
rule, its title for figures); ``reference_markdown()`` writes the metrics.json reference
(``recsae metrics-reference``). docs/extending.md has the recipe for a new metric.
"""

from __future__ import annotations

from recsae.metrics import alignment, fidelity, health, monosemanticity, probes, selectivity
from recsae.metrics.spec import Metric, MetricFamily

FAMILIES: tuple[MetricFamily, ...] = (
    monosemanticity.FAMILY,
    alignment.ALIGNMENT_FAMILY,
    alignment.PLANTED_FAMILY,
    health.FAMILY,
    probes.FAMILY,
    fidelity.EMBEDDING_FAMILY,
    fidelity.SCORE_FAMILY,
    fidelity.ACCURACY_FAMILY,
    selectivity.FAMILY,
)
METRICS: tuple[Metric, ...] = tuple(metric for family in FAMILIES for metric in family.metrics)


def summary(m: dict, cfg: dict) -> dict:
    """The flat summary scalars of the metrics.json dict ``m`` (resolved metrics config ``cfg``)."""
    out: dict = {}
    for family in FAMILIES:
        out |= family.summarize(m, cfg)
    return out


def metric_for(column: str) -> Metric | None:
    """The declaration of summary column ``column`` (e.g. ``rbo30``), or None."""
    return next((metric for metric in METRICS if metric.matches(column)), None)


def goal_of(column: str) -> str | None:
    """max when higher ``column`` is better, min when lower is, None when undeclared/neither."""
    metric = metric_for(column)
    return metric.goal if metric is not None else None


def reference_markdown() -> str:
    """The metrics.json summary reference: one table row per declared scalar, per family."""
    lines = [
        "# metrics.json summary",
        "",
        "Every scalar of `summary` in an SAE point's `metrics.json` (and a column of "
        "`results/tables/sweep.csv`), generated from the declarations of `recsae.metrics` "
        "(`recsae metrics-reference`). `{k}`-style placeholders stand for the numbers the "
        "metrics config sets. Goal: max = higher is better, min = lower is better.",
    ]
    for family in FAMILIES:
        lines += [
            "",
            f"## {family.name} (`{family.section}`)",
            "",
            "| key | level | goal | definition |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{m.key}` | {m.level} | {m.goal or '-'} | {m.definition} |" for m in family.metrics
        ]
    return "\n".join(lines) + "\n"
