"""The registry of SAE variants: one module each (``recsae.sae.variants.<name>``), one line here.

``VARIANTS`` maps the config's ``variant`` value to its ``SAEVariant`` (settings, activation,
report marker); the schema's variant enum and variant settings are composed from it
(``recsae.config.load_schema``). docs/extending.md has the recipe for a new one.
"""

from __future__ import annotations

from recsae.sae.variants import batchtopk, jumprelu, matryoshka, relu, topk
from recsae.sae.variants.base import SAEVariant

VARIANTS: dict[str, SAEVariant] = {
    variant.name: variant
    for variant in (
        relu.VARIANT,
        topk.VARIANT,
        batchtopk.VARIANT,
        matryoshka.VARIANT,
        jumprelu.VARIANT,
    )
}


def variant_settings() -> dict:
    """{key: schema} of every variant's own settings, in registry order."""
    out: dict = {}
    for variant in VARIANTS.values():
        out |= variant.settings
    return out


__all__ = ["VARIANTS", "SAEVariant", "variant_settings"]
