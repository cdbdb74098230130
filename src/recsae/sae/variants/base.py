"""What an SAE variant declares: its settings, its activation and how the report draws it.

A variant is one module of ``recsae.sae.variants`` holding one ``SAEVariant`` and one line in the
registry (``recsae.sae.variants.VARIANTS``); nothing else names it. The config schema's variant
enum and the variant settings of ``$defs.sae_settings`` are composed from the registry
(``recsae.config.load_schema``), the report's markers read ``marker``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn


def _never(point: Any) -> bool:
    return False


def _no_check(point: Any) -> None:
    return None


def _no_architecture(point: Any) -> dict:
    return {}


@dataclass(frozen=True)
class SAEVariant:
    """One SAE architecture.

    ``settings``: the config keys only this variant reads, as a JSON-schema fragment ``{key:
    {type..., default}}`` (composed into ``$defs.sae_settings``; their resolved values reach the
    activation as ``SAEConfig.options``). ``make_activation(config)``: the (N, h) -> (N, h)
    activation module for an ``SAEConfig``. The other callables take the resolved sweep point
    (``recsae.sae.config.SAEPoint``; the variant's settings in ``point.options``):
    ``ranked(point)``: whether it selects latents by rank (then ``k`` is checked against the width
    and AuxK applies). ``check(point)``: cross-key checks (raise ValueError naming the key).
    ``architecture(point)``: extra ``SAEConfig`` fields (Matryoshka's ``prefix_sizes``).
    ``marker``: the matplotlib marker of the report's scatter plots.
    """

    name: str
    description: str
    marker: str
    make_activation: Callable[[Any], nn.Module]
    settings: dict = field(default_factory=dict)
    ranked: Callable[[Any], bool] = _never
    check: Callable[[Any], None] = _no_check
    architecture: Callable[[Any], dict] = _no_architecture
