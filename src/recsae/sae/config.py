"""The SAE configuration of one sweep point: its layered resolution and the checks that a schema
cannot express.

Keys, types and defaults live in config/schema.yaml (``$defs.sae_settings``), composed with the
settings of each SAE variant (``recsae.sae.variants``); ``SAE_DEFAULTS`` reads them, and their
order is the canonical order of keys in sweep paths (``recsae.sweep``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from recsae.config import check_layered, layered_defaults
from recsae.methods import METHODS
from recsae.sae.presets import SAE_PRESETS, preset_settings
from recsae.sae.variants import VARIANTS, variant_settings

# concept extractors of a sweep point: the SAE, or a non-SAE baseline of ``recsae.methods``
METHOD_VARIANTS = ("relu", "topk")  # baselines: all latents, or each input's k largest
LOSS_WEIGHTS = ("alpha", "beta", "lambda_kl", "lambda_l1", "aux_k_coef")

# Every key of one sweep point with its default, in sweep-path order: config/schema.yaml,
# $defs.sae_settings (its descriptions and types; docs/method.md gives the meaning).
SAE_DEFAULTS: dict = layered_defaults("sae_settings")
VARIANT_OPTIONS = tuple(variant_settings())  # keys only some variant reads: SAEConfig.options


def _fail(key: str, msg: str) -> None:
    raise ValueError(f"sae config key {key!r}: {msg}")


def resolve_sae_config(sae_cfg: dict, input_dim: int, family: str | None = None) -> dict:
    """``SAE_DEFAULTS`` < the named ``preset``'s settings for recommender ``family`` ("dot" or
    "pairwise"; without a family the preset is only a label) < ``sae_cfg``, validated, with
    ``width`` and ``aux_k`` resolved to ints for embeddings of size ``input_dim`` (the signed
    baselines (``MethodSpec.signed``) always have 2 * input_dim latents). Unknown keys and bad
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
    if cfg["method"] in METHODS and METHODS[cfg["method"]].signed:
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
    if cfg["method"] == "sae":
        VARIANTS[cfg["variant"]].check(cfg)
    return cfg


def uses_topk(cfg: dict) -> bool:
    """Whether the point's activation selects latents by rank (its variant's ``ranked``: TopK,
    BatchTopK, Matryoshka over BatchTopK; a baseline's ``variant: topk``)."""
    return VARIANTS[cfg["variant"]].ranked(cfg)


@dataclass(frozen=True)
class SAEConfig:
    """Everything needed to rebuild an SAE's modules (stored in every checkpoint). ``options``:
    the resolved value of every variant setting (``VARIANT_OPTIONS``, e.g. threshold_momentum);
    ``prefix_sizes``: Matryoshka's nested prefix sizes, else None."""

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
    options: dict

    def __post_init__(self):
        if self.variant not in VARIANTS:
            _fail("variant", f"{self.variant!r} is not one of {list(VARIANTS)}")
        if self.prefix_sizes is not None:
            object.__setattr__(self, "prefix_sizes", tuple(int(s) for s in self.prefix_sizes))

    @classmethod
    def from_sae_cfg(cls, sae_cfg: dict, input_dim: int) -> SAEConfig:
        """The architecture part of a (possibly partial) ``sae_cfg``."""
        cfg = resolve_sae_config(sae_cfg, input_dim)
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
            **({"prefix_sizes": None} | VARIANTS[cfg["variant"]].architecture(cfg)),
            options={key: cfg[key] for key in VARIANT_OPTIONS},
        )

    @classmethod
    def from_dict(cls, stored: dict) -> SAEConfig:
        """A checkpoint's config; a key that an older checkpoint lacks takes its default (an
        older checkpoint's variant settings stand beside the other fields)."""
        fields = {
            key: value for key, value in SAE_DEFAULTS.items() if key in cls.__dataclass_fields__
        }
        options = {key: SAE_DEFAULTS[key] for key in VARIANT_OPTIONS}
        options |= {key: stored[key] for key in VARIANT_OPTIONS if key in stored}
        options |= stored.get("options", {})
        known = {key: value for key, value in stored.items() if key in cls.__dataclass_fields__}
        return cls(**({"prefix_sizes": None} | fields | known | {"options": options}))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["prefix_sizes"] = list(self.prefix_sizes) if self.prefix_sizes else None
        return out
