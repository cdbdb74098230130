"""What a metric declares: its summary key, level, direction, definition and title.

A metric family (one module of ``recsae.metrics``) holds a ``MetricFamily``: the ``Metric`` of
every scalar it adds to ``metrics.json``'s ``summary`` and the function that reads those scalars
from its section of ``metrics.json``. ``recsae.metrics.registry`` lists the families; evaluation
(``summary``), the report's tables, figures and best-point rule and the metrics.json reference
(``reference_markdown``) read the declarations.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

LEVELS = ("items", "users")
GOALS = ("max", "min")


@dataclass(frozen=True)
class Metric:
    """One summary scalar. ``key``: its column name, or a template whose ``{placeholders}`` stand
    for numbers set by the metrics config (``rbo{k}``, ``overlap@{k}``). ``level``: measured on
    items or on users (held-out users for fidelity). ``goal``: max (higher is better), min, or
    None (a descriptive count such as a ceiling). ``definition``: one line; ``title``: the axis or
    column title in words (default: the key)."""

    key: str
    level: str
    goal: str | None
    definition: str
    title: str | None = None

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"metric {self.key!r}: level {self.level!r} not in {LEVELS}")
        if self.goal is not None and self.goal not in GOALS:
            raise ValueError(f"metric {self.key!r}: goal {self.goal!r} not in {GOALS}")

    @property
    def pattern(self) -> re.Pattern:
        """The column names this metric covers: the key with each placeholder as digits."""
        parts = re.split(r"\{[a-z_]+\}", self.key)
        return re.compile(r"\d+".join(re.escape(p) for p in parts))

    def matches(self, column: str) -> bool:
        return self.pattern.fullmatch(column) is not None

    def label(self, column: str | None = None) -> str:
        """The title of ``column`` (one of this metric's columns), placeholders filled in."""
        title = self.title or self.key
        if column is None or "{" not in self.key:
            return title
        numbers = re.findall(r"\d+", column[len(self.key.split("{")[0]) :])
        names = re.findall(r"\{([a-z_]+)\}", self.key)
        return title.format(**dict(zip(names, numbers, strict=False)))


@dataclass(frozen=True)
class MetricFamily:
    """A module's metrics. ``section``: its key (or keys) of ``metrics.json``; ``metrics``: its
    summary scalars; ``summarize(m, cfg)``: those scalars from the full ``metrics.json`` dict m
    and the resolved metrics config, in the declared order."""

    name: str
    section: str
    metrics: tuple[Metric, ...]
    summarize: Callable[[dict, dict], dict]
