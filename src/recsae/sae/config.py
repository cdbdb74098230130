"""The SAE configuration of one sweep point: its layered resolution and the checks that a schema
cannot express.

Keys, types and defaults live in config/schema.yaml (``$defs.sae_settings``); ``SAE_DEFAULTS``
reads them, and their order is the canonical order of keys in sweep paths (``recsae.sweep``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from recsae.config import check_layered, layered_defaults, section_schema
from recsae.sae.presets import SAE_PRESETS, preset_settings

# concept extractors of a sweep point: the SAE, or a non-SAE baseline of ``recsae.methods``
SIGNED_METHODS = ("identity", "pca", "ica", "random")  # 2 * input_dim latents (+/- halves)
METHOD_VARIANTS = ("relu", "topk")  # baselines: all latents, or each input's k largest
LOSS_WEIGHTS = ("alpha", "beta", "lambda_kl", "lambda_l1", "aux_k_coef")

# Every key of one sweep point with its default, in sweep-path order: config/schema.yaml,
# $defs.sae_settings (its descriptions and types; docs/method.md gives the meaning).
SAE_DEFAULTS: dict = layered_defaults("sae_settings")
VARIANTS = tuple(section_schema("$defs.sae_settings")["properties"]["variant"]["enum"])


def _fail(key: str, msg: str) -> None:
    raise ValueError(f"sae config key {key!r}: {msg}")


def resolve_sae_config(sae_cfg: dict, input_dim: int, family: str | None = None) -> dict:
    """``SAE_DEFAULTS`` < the named ``preset``'s settings for recommender ``family`` ("dot" or
    "pairwise"; without a family the preset is only a label) < ``sae_cfg``, validated, with
    ``width`` and ``aux_k`` resolved to ints for embeddings of size ``input_dim`` (the signed
    baselines of ``SIGNED_METHODS`` always have 2 * input_dim latents). Unknown keys and bad
    values raise a ValueError naming the key."""
    unknown = sorted(set(sae_cfg) - set(SAE_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown sae config key(s) {unknown}; known: {list(SAE_DEFAULTS)}")
    preset = sae_cfg.get("preset")
    if preset is not None and preset not in SAE_PRESETS:
        _fail("preset", f"{preset!r} is not one of {sorted(SAE_PRESETS)}")
    cfg = {**SAE_DEFAULTS, **(preset_settings(preset, family) if family else {}), **sae_cfg}
    if isinstance(cfg["matryoshka_prefixes"], tuple):
        cfg["matryoshka_prefixes"] = list(cfg["matryoshka_prefixes"])
    problem = check_layered("sae_settings", cfg)
    if problem:
        raise ValueError(f"sae config key {problem}")
    given = sae_cfg.get("expansion")
    if cfg["width"] is not None and given is not None and round(given * input_dim) != cfg["width"]:
        _fail("width", f"width {cfg['width']} and expansion {given} disagree; set one of them")
    if cfg["width"] is not None and given is None:
        cfg["expansion"] = None
    if cfg["width"] is None:
        if cfg["expansion"] is None:
            _fail("expansion", "must be set when width is null")
        cfg["width"] = max(1, int(round(cfg["expansion"] * input_dim)))
    if cfg["method"] in SIGNED_METHODS:
        cfg["width"] = 2 * input_dim
    if cfg["method"] != "sae" and cfg["variant"] not in METHOD_VARIANTS:
        _fail(
            "variant",
            f"method {cfg['method']!r} takes variant relu (all latents) or topk (each input's k "
            f"largest), got {cfg['variant']!r}",
        )
    topk_family = uses_topk(cfg)
    if topk_family and not 1 <= cfg["k"] <= cfg["width"]:
        _fail("k", f"must be in [1, width={cfg['width']}], got {cfg['k']}")
    if cfg["aux_k"] is None:
        cfg["aux_k"] = max(1, input_dim // 2)
    for key in LOSS_WEIGHTS:
        if not math.isfinite(cfg[key]):
            _fail(key, f"must be a finite number >= 0, got {cfg[key]}")
    if cfg["variant"] == "matryoshka":
        prefix_sizes(cfg["matryoshka_prefixes"], cfg["width"])
    return cfg


def uses_topk(cfg: dict) -> bool:
    """Whether the activation selects latents by rank (TopK, BatchTopK, Matryoshka over it)."""
    return cfg["variant"] in ("topk", "batchtopk") or (
        cfg["variant"] == "matryoshka" and cfg["matryoshka_base"] == "batchtopk"
    )


def prefix_sizes(prefixes, width: int) -> tuple[int, ...]:
    """Strictly increasing Matryoshka prefix sizes ending at ``width``.

    Each entry is a fraction of the width (0 < p <= 1) or an absolute size (an integer > 1); the
    full width is appended when the last entry is smaller.
    """
    sizes = []
    for p in prefixes:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or p <= 0:
            _fail("matryoshka_prefixes", f"entries must be positive numbers, got {p!r}")
        if p <= 1:
            size = max(1, int(round(p * width)))
        elif float(p).is_integer():
            size = int(p)
        else:
            _fail("matryoshka_prefixes", f"{p!r} is neither a fraction <= 1 nor an integer size")
        if size > width:
            _fail("matryoshka_prefixes", f"prefix size {size} exceeds width {width}")
        sizes.append(size)
    if not sizes or sizes[-1] != width:
        sizes.append(width)
    if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
        _fail("matryoshka_prefixes", f"sizes {sizes} (width {width}) are not strictly increasing")
    return tuple(sizes)


@dataclass(frozen=True)
class SAEConfig:
    """Everything needed to rebuild an SAE's modules (stored in every checkpoint)."""

    input_dim: int
    width: int
    variant: str
    k: int
    tied: bool
    standardize: bool
    normalize_decoder: str
    pre_bias: bool
    input_scaling: str
    prefix_sizes: tuple[int, ...] | None
    matryoshka_base: str
    threshold_momentum: float

    def __post_init__(self):
        if self.variant not in VARIANTS:
            _fail("variant", f"{self.variant!r} is not one of {list(VARIANTS)}")
        if self.prefix_sizes is not None:
            object.__setattr__(self, "prefix_sizes", tuple(int(s) for s in self.prefix_sizes))

    @property
    def activation_kind(self) -> str:
        """relu | topk | batchtopk: the activation (Matryoshka's is its base)."""
        return self.matryoshka_base if self.variant == "matryoshka" else self.variant

    @classmethod
    def from_sae_cfg(cls, sae_cfg: dict, input_dim: int) -> SAEConfig:
        """The architecture part of a (possibly partial) ``sae_cfg``."""
        cfg = resolve_sae_config(sae_cfg, input_dim)
        sizes = None
        if cfg["variant"] == "matryoshka":
            sizes = prefix_sizes(cfg["matryoshka_prefixes"], cfg["width"])
        return cls(
            input_dim=input_dim,
            width=cfg["width"],
            variant=cfg["variant"],
            k=cfg["k"],
            tied=cfg["tied"],
            standardize=cfg["standardize"],
            normalize_decoder=cfg["normalize_decoder"],
            pre_bias=cfg["pre_bias"],
            input_scaling=cfg["input_scaling"],
            prefix_sizes=sizes,
            matryoshka_base=cfg["matryoshka_base"],
            threshold_momentum=float(cfg["threshold_momentum"]),
        )

    @classmethod
    def from_dict(cls, stored: dict) -> SAEConfig:
        """A checkpoint's config; a key that an older checkpoint lacks takes its default."""
        defaults = {"prefix_sizes": None} | {
            key: value for key, value in SAE_DEFAULTS.items() if key in cls.__dataclass_fields__
        }
        return cls(**(defaults | stored))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["prefix_sizes"] = list(self.prefix_sizes) if self.prefix_sizes else None
        return out
