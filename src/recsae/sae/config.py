"""The SAE configuration: every key, its default and meaning, and its validation.

``SAE_DEFAULTS`` is the single source of defaults for one sweep point (``sae_cfg``). Its key order
is also the canonical order of keys in sweep paths (see ``recsae.sweep``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from recsae.sae.presets import SAE_PRESETS, preset_settings

VARIANTS = ("relu", "topk", "batchtopk", "matryoshka")
MATRYOSHKA_BASES = ("relu", "batchtopk")
DECODER_NORMS = ("unit_norm", "weighted_l1", "none")
PRED_LOSSES = ("bce", "mse")
# concept extractors of a sweep point: the SAE, or a non-SAE baseline of ``recsae.methods``
METHODS = ("sae", "identity", "pca", "ica", "random", "nmf", "kmeans")
SIGNED_METHODS = ("identity", "pca", "ica", "random")  # 2 * input_dim latents (+/- halves)
METHOD_VARIANTS = ("relu", "topk")  # baselines: all latents, or each input's k largest
INPUT_SCALINGS = ("none", "minmax", "minmax_batch")
BATCHINGS = ("independent", "samples")
PRED_PAIRS = ("with_negatives", "positives")

SAE_DEFAULTS: dict = {
    "method": "sae",  # sae | identity | pca | ica | random | nmf | kmeans (recsae.methods)
    # architecture
    "variant": "relu",  # relu | topk | batchtopk | matryoshka
    "width": None,  # latents; null: round(expansion * input_dim); signed methods: 2 * input_dim
    "expansion": 1.1,  # latents per input dimension, used when width is null (paper: 22 for 20-d)
    "k": 8,  # active latents per input (topk), mean per input (batchtopk, matryoshka over it)
    "tied": True,  # decoder = encoder^T (paper); false: a separate decoder matrix
    "standardize": True,  # per-sample standardisation (row mean/std), undone after decoding
    "normalize_decoder": "unit_norm",  # untied only: unit_norm | weighted_l1 | none
    "matryoshka_prefixes": [0.25, 0.5, 1.0],  # nested prefixes: fractions in (0,1] or sizes > 1
    "matryoshka_base": "relu",  # activation under the Matryoshka prefixes: relu | batchtopk
    "threshold_momentum": 0.01,  # batchtopk: EMA weight of each batch's min selected activation
    # loss weights (docs/method.md, "Loss terms")
    "alpha": 1.0,  # weight of L_emb = MSE(U~,U) + MSE(V~,V)
    "beta": 1.0,  # weight of the prediction-aware L_pred; 0 = reconstruction-only baseline
    "lambda_kl": 0.01,  # weight of the KL sparsity penalty
    "rho": 0.05,  # KL target activation rate
    "lambda_l1": 0.0,  # weight of L_1 = mean|z_u| + mean|z_v|
    "aux_k": None,  # AuxK: dead latents used to model the residual; null: input_dim // 2
    "aux_k_coef": 0.03125,  # weight of the AuxK loss (topk family only; 0 disables)
    "dead_steps_threshold": 50,  # a latent inactive for this many steps counts as dead (AuxK)
    "pred_loss": "bce",  # pairwise models: bce (soft target sigmoid(orig logit)) | mse (logits)
    "negatives_per_positive": 1,  # pairwise models: sampled negatives per observed pair
    # optimisation
    "lr": 1e-3,  # Adam learning rate
    "batch_size": 256,  # users per step and items per step
    "epochs": 18,  # one epoch = one pass over the larger of (training users, items)
    "holdout_fraction": 0.2,  # share of users held out of SAE training (fidelity measured on them)
    # the authors' SAE (recsae.sae.presets; docs/method.md, "The SAE: paper preset")
    "preset": None,  # null | paper: the family's preset settings under this config layer's keys
    "pre_bias": True,  # learned pre-bias; false: none (the authors' NCF SAE)
    "input_scaling": "none",  # none | minmax (fitted once, used throughout) | minmax_batch
    "batching": "independent",  # independent user/item batches | samples (the training samples)
    "pred_pairs": "with_negatives",  # pairwise models: with_negatives | positives (authors')
    "seed": None,  # seed of initialisation and batches; null: the config's (holdout: always it)
}

_TYPES: dict[str, tuple[type, ...]] = {
    "width": (int, type(None)),
    "expansion": (int, float, type(None)),
    "k": (int,),
    "tied": (bool,),
    "standardize": (bool,),
    "pre_bias": (bool,),
    "preset": (str, type(None)),
    "matryoshka_prefixes": (list, tuple),
    "threshold_momentum": (int, float),
    "alpha": (int, float),
    "beta": (int, float),
    "lambda_kl": (int, float),
    "rho": (int, float),
    "lambda_l1": (int, float),
    "aux_k": (int, type(None)),
    "aux_k_coef": (int, float),
    "dead_steps_threshold": (int,),
    "negatives_per_positive": (int,),
    "lr": (int, float),
    "batch_size": (int,),
    "epochs": (int,),
    "holdout_fraction": (int, float),
    "seed": (int, type(None)),
}
_CHOICES = {
    "method": METHODS,
    "variant": VARIANTS,
    "normalize_decoder": DECODER_NORMS,
    "matryoshka_base": MATRYOSHKA_BASES,
    "pred_loss": PRED_LOSSES,
    "input_scaling": INPUT_SCALINGS,
    "batching": BATCHINGS,
    "pred_pairs": PRED_PAIRS,
}


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
    cfg = {**SAE_DEFAULTS, **(preset_settings(preset, family) if family else {}), **sae_cfg}
    if preset is not None and preset not in SAE_PRESETS:
        _fail("preset", f"{preset!r} is not one of {sorted(SAE_PRESETS)}")
    for key, value in cfg.items():
        if key in _CHOICES and value not in _CHOICES[key]:
            _fail(key, f"{value!r} is not one of {list(_CHOICES[key])}")
        types = _TYPES.get(key)
        if types and (
            not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
        ):
            _fail(key, f"expected {'/'.join(t.__name__ for t in types)}, got {value!r}")
    given = sae_cfg.get("expansion")
    if cfg["width"] is not None and given is not None and round(given * input_dim) != cfg["width"]:
        _fail("width", f"width {cfg['width']} and expansion {given} disagree; set one of them")
    if cfg["width"] is not None and given is None:
        cfg["expansion"] = None
    if cfg["width"] is None:
        if cfg["expansion"] is None or cfg["expansion"] <= 0:
            _fail("expansion", f"must be positive when width is null, got {cfg['expansion']!r}")
        cfg["width"] = max(1, int(round(cfg["expansion"] * input_dim)))
    if cfg["width"] < 1:
        _fail("width", f"must be >= 1, got {cfg['width']}")
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
    if cfg["aux_k"] < 1:
        _fail("aux_k", f"must be >= 1, got {cfg['aux_k']}")
    if not 0 < cfg["rho"] < 1:
        _fail("rho", f"must be in (0, 1), got {cfg['rho']}")
    if not 0 < cfg["threshold_momentum"] <= 1:
        _fail("threshold_momentum", f"must be in (0, 1], got {cfg['threshold_momentum']}")
    for key in ("alpha", "beta", "lambda_kl", "lambda_l1", "aux_k_coef"):
        if cfg[key] < 0 or not math.isfinite(cfg[key]):
            _fail(key, f"must be a finite number >= 0, got {cfg[key]}")
    if cfg["seed"] is not None and cfg["seed"] < 0:
        _fail("seed", f"must be >= 0, got {cfg['seed']}")
    for key in ("lr", "batch_size", "epochs", "dead_steps_threshold", "negatives_per_positive"):
        if cfg[key] <= 0:
            _fail(key, f"must be positive, got {cfg[key]}")
    cfg["matryoshka_prefixes"] = list(cfg["matryoshka_prefixes"])
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
    variant: str = "relu"
    k: int = 8
    tied: bool = True
    standardize: bool = True
    normalize_decoder: str = "unit_norm"
    pre_bias: bool = True
    input_scaling: str = "none"
    prefix_sizes: tuple[int, ...] | None = None
    matryoshka_base: str = "relu"
    threshold_momentum: float = 0.01

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

    def to_dict(self) -> dict:
        out = asdict(self)
        out["prefix_sizes"] = list(self.prefix_sizes) if self.prefix_sizes else None
        return out
