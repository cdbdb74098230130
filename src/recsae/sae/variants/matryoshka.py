"""Matryoshka SAE (Bussmann et al. 2025): nested prefixes of the latents each reconstruct the
input; the embedding loss sums over the prefixes (``recsae.sae.losses``)."""

from __future__ import annotations

from recsae.sae.variants.base import SAEVariant
from recsae.sae.variants.batchtopk import VARIANT as BATCHTOPK
from recsae.sae.variants.relu import VARIANT as RELU

BASES = {"relu": RELU, "batchtopk": BATCHTOPK}


def _fail(msg: str) -> None:
    raise ValueError(f"sae config key 'matryoshka_prefixes': {msg}")


def prefix_sizes(prefixes, width: int) -> tuple[int, ...]:
    """Strictly increasing Matryoshka prefix sizes ending at ``width``.

    Each entry is a fraction of the width (0 < p <= 1) or an absolute size (an integer > 1); the
    full width is appended when the last entry is smaller.
    """
    sizes = []
    for p in prefixes:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or p <= 0:
            _fail(f"entries must be positive numbers, got {p!r}")
        if p <= 1:
            size = max(1, int(round(p * width)))
        elif float(p).is_integer():
            size = int(p)
        else:
            _fail(f"{p!r} is neither a fraction <= 1 nor an integer size")
        if size > width:
            _fail(f"prefix size {size} exceeds width {width}")
        sizes.append(size)
    if not sizes or sizes[-1] != width:
        sizes.append(width)
    if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
        _fail(f"sizes {sizes} (width {width}) are not strictly increasing")
    return tuple(sizes)


def _check(point) -> None:
    prefix_sizes(point.options["matryoshka_prefixes"], point.width)


def _architecture(point) -> dict:
    return {"prefix_sizes": prefix_sizes(point.options["matryoshka_prefixes"], point.width)}


VARIANT = SAEVariant(
    name="matryoshka",
    description="nested prefixes of latents, each trained to reconstruct (base activation: "
    "matryoshka_base)",
    marker="^",
    make_activation=lambda config: BASES[config.options["matryoshka_base"]].make_activation(config),
    settings={
        "matryoshka_prefixes": {
            "description": "Prefix sizes: fractions of the width or integer sizes (Matryoshka).",
            "$ref": "#/$defs/number_list",
            "default": [0.25, 0.5, 1.0],
        },
        "matryoshka_base": {
            "description": "The activation of a Matryoshka SAE.",
            "enum": list(BASES),
            "default": "relu",
        },
    },
    ranked=lambda point: BASES[point.options["matryoshka_base"]].ranked(point),
    check=_check,
    architecture=_architecture,
)
