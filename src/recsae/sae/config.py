"""One SAE sweep point as the stages receive it: ``SAEPoint``, resolved once per job from the
point's settings, and ``SAEConfig``, the architecture part stored in every checkpoint.

Keys, types and defaults live in config/schema.yaml (``$defs.sae_settings``), composed with the
settings of each SAE variant (``recsae.sae.variants``); ``SAE_DEFAULTS`` reads them, and their
order is the canonical order of keys in sweep paths (``recsae.sweep``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from types import MappingProxyType
from typing import Any

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
VARIANT_OPTIONS = tuple(variant_settings())  # keys only some variant reads: SAEPoint.options


def _fail(key: str, msg: str) -> None:
    raise ValueError(f"sae config key {key!r}: {msg}")


def _frozen(value: Any) -> Any:
    """A setting's value with its lists as tuples (a point's values cannot change)."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def _plain(value: Any) -> Any:
    """A setting's value with its tuples as lists (the JSON form)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class SAEPoint:
    """One sweep point resolved for embeddings of one size: every SAE setting, with ``width`` and
    ``aux_k`` as ints; ``options`` holds the value of every variant setting (``VARIANT_OPTIONS``,
    read-only). Training, evaluation and the report receive it under the name ``point``.

    Its serialised form is the flat object of settings in ``SAE_DEFAULTS`` order (``to_dict``,
    ``from_dict``): the JSON of the CLI's ``--settings`` (there before ``resolve``), of
    train_log.json's ``config`` and of a checkpoint's ``extra["sae_cfg"]``.
    """

    method: str
    variant: str
    width: int
    expansion: float | None
    k: int
    tied: bool
    standardize: bool
    normalize_decoder: str
    alpha: float
    beta: float
    lambda_kl: float
    rho: float
    lambda_l1: float
    aux_k: int
    aux_k_coef: float
    dead_steps_threshold: int
    pred_loss: str
    negatives_per_positive: int
    lr: float
    batch_size: int
    epochs: int
    holdout_fraction: float
    preset: str | None
    pre_bias: bool
    input_scaling: str
    batching: str
    pred_pairs: str
    seed: int | None
    options: Mapping[str, Any]

    @classmethod
    def resolve(
        cls, settings: Mapping[str, Any], input_dim: int, family: str | None = None
    ) -> SAEPoint:
        """``SAE_DEFAULTS`` < the named ``preset``'s settings for recommender ``family`` ("dot"
        or "pairwise"; without a family the preset is only a label) < ``settings`` (some or all
        keys), validated, with ``width`` and ``aux_k`` resolved for embeddings of size
        ``input_dim`` (the signed baselines (``MethodSpec.signed``) always have 2 * input_dim
        latents). Unknown keys and bad values raise a ValueError naming the key."""
        _check_known(settings)
        preset = settings.get("preset")
        if preset is not None and preset not in SAE_PRESETS:
            _fail("preset", f"{preset!r} is not one of {sorted(SAE_PRESETS)}")
        layered = {
            **SAE_DEFAULTS,
            **(preset_settings(preset, family) if family else {}),
            **{key: _plain(value) for key, value in settings.items()},
        }
        problem = check_layered("sae_settings", layered)
        if problem:
            raise ValueError(f"sae config key {problem}")
        given = settings.get("expansion")
        if (
            layered["width"] is not None
            and given is not None
            and round(given * input_dim) != layered["width"]
        ):
            _fail(
                "width", f"width {layered['width']} and expansion {given} disagree; set one of them"
            )
        if layered["width"] is not None and given is None:
            layered["expansion"] = None
        if layered["width"] is None:
            if layered["expansion"] is None:
                _fail("expansion", "must be set when width is null")
            layered["width"] = max(1, int(round(layered["expansion"] * input_dim)))
        if layered["method"] in METHODS and METHODS[layered["method"]].signed:
            layered["width"] = 2 * input_dim
        if layered["aux_k"] is None:
            layered["aux_k"] = max(1, input_dim // 2)
        return cls._checked(layered)

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> SAEPoint:
        """The point that ``to_dict`` wrote (train_log.json's ``config``, a checkpoint's
        ``extra["sae_cfg"]``); a key that an older file lacks takes its default. Unknown keys,
        bad values and an unresolved ``width`` or ``aux_k`` raise a ValueError naming the key."""
        _check_known(stored)
        layered = {**SAE_DEFAULTS, **{key: _plain(value) for key, value in stored.items()}}
        problem = check_layered("sae_settings", layered)
        if problem:
            raise ValueError(f"sae config key {problem}")
        for key in ("width", "aux_k"):
            if layered[key] is None:
                _fail(key, "a resolved point has an integer here, got null")
        return cls._checked(layered)

    @classmethod
    def _checked(cls, layered: dict) -> SAEPoint:
        """The point of fully layered, schema-valid settings ``layered`` (``width`` and ``aux_k``
        resolved), after the checks across keys."""
        if layered["method"] != "sae" and layered["variant"] not in METHOD_VARIANTS:
            _fail(
                "variant",
                f"method {layered['method']!r} takes variant relu (all latents) or topk (each "
                f"input's k largest), got {layered['variant']!r}",
            )
        for key in LOSS_WEIGHTS:
            if not math.isfinite(layered[key]):
                _fail(key, f"must be a finite number >= 0, got {layered[key]}")
        options = MappingProxyType({key: _frozen(layered[key]) for key in VARIANT_OPTIONS})
        point = cls(
            **{f.name: layered[f.name] for f in fields(cls) if f.name != "options"}, options=options
        )
        if point.ranked and not 1 <= point.k <= point.width:
            _fail("k", f"must be in [1, width={point.width}], got {point.k}")
        if point.method == "sae":
            VARIANTS[point.variant].check(point)
        return point

    @property
    def ranked(self) -> bool:
        """Whether the point's activation selects latents by rank (its variant's ``ranked``:
        TopK, BatchTopK, Matryoshka over BatchTopK; a baseline's ``variant: topk``)."""
        return VARIANTS[self.variant].ranked(self)

    def to_dict(self) -> dict:
        """The flat JSON object of every setting, in ``SAE_DEFAULTS`` order."""
        return {
            key: _plain(self.options[key] if key in VARIANT_OPTIONS else getattr(self, key))
            for key in SAE_DEFAULTS
        }


def _check_known(settings: Mapping[str, Any]) -> None:
    unknown = sorted(set(settings) - set(SAE_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown sae config key(s) {unknown}; known: {list(SAE_DEFAULTS)}")


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
    def from_point(cls, point: SAEPoint, input_dim: int) -> SAEConfig:
        """The architecture part of a point resolved for embeddings of size ``input_dim``."""
        settings = point.to_dict()
        return cls(
            input_dim=input_dim,
            width=point.width,
            variant=point.variant,
            k=point.k,
            tied=point.tied,
            standardize=point.standardize,
            normalize_decoder=point.normalize_decoder,
            pre_bias=point.pre_bias,
            input_scaling=point.input_scaling,
            **({"prefix_sizes": None} | VARIANTS[point.variant].architecture(point)),
            options={key: settings[key] for key in VARIANT_OPTIONS},
        )

    @classmethod
    def from_dict(cls, stored: dict) -> SAEConfig:
        """A checkpoint's config; a key that an older checkpoint lacks takes its default (an
        older checkpoint's variant settings stand beside the other fields)."""
        defaults = {
            key: value for key, value in SAE_DEFAULTS.items() if key in cls.__dataclass_fields__
        }
        options = {key: SAE_DEFAULTS[key] for key in VARIANT_OPTIONS}
        options |= {key: stored[key] for key in VARIANT_OPTIONS if key in stored}
        options |= stored.get("options", {})
        known = {key: value for key, value in stored.items() if key in cls.__dataclass_fields__}
        return cls(**({"prefix_sizes": None} | defaults | known | {"options": options}))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["prefix_sizes"] = list(self.prefix_sizes) if self.prefix_sizes else None
        return out
