"""Config validation against config/schema.yaml, the one source of every config key's type and
default. ``validate_schema`` fills every default once (``recsae.workflow.validate_config``, which
the Snakefile calls before any job is scheduled, runs it first), so each job receives a complete
slice. ``fill_defaults`` gives a block's defaults to code that runs outside the workflow (tests,
benchmarks); Python adds only the checks a schema cannot express (cross-field and per-model
rules)."""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path

import jsonschema
import yaml

from recsae.errors import UserError

# config/schema.yaml, linked into the package so that a non-editable install finds it too
SCHEMA_PATH = Path(__file__).with_name("schema.yaml")


class ConfigError(UserError, ValueError):
    """A config that does not match the schema; the message names the offending key."""


def _with_defaults(validator_class):
    """A validator class that fills in ``default`` values while it validates (objects only),
    except inside a ``layered`` object, whose defaults the package lays under other layers."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict) and not schema.get("layered"):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _is_finite_number(checker, instance) -> bool:
    """JSON's number type without NaN and the infinities (YAML's ``.nan``, ``.inf``): no setting
    has a meaning for them, and every comparison with NaN passes a ``minimum``."""
    number = jsonschema.Draft202012Validator.TYPE_CHECKER.is_type(instance, "number")
    return number and not (isinstance(instance, float) and not math.isfinite(instance))


_FiniteValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _is_finite_number),
)
_Validator = _with_defaults(_FiniteValidator)


def _non_finite(error: jsonschema.ValidationError) -> bool:
    return isinstance(error.instance, float) and not math.isfinite(error.instance)


def _precise(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """``error``, or where an ``anyOf`` failed on a non-finite number inside it, that number's
    error (so that the message names its key)."""
    for sub in error.context or []:
        found = _precise(sub)
        if _non_finite(found):
            return found
    return error


def error_message(error: jsonschema.ValidationError) -> str:
    """The message of a validation error; a non-finite number says so (instead of ``nan is not
    of type 'number'`` or ``is not valid under any of the given schemas``)."""
    if _non_finite(error):
        return f"{error.instance!r} is not a finite number"
    return error.message


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The schema at ``path``, composed with the package's registries (``compose_schema``)."""
    with open(path, encoding="utf-8") as handle:
        return compose_schema(yaml.safe_load(handle))


def compose_schema(schema: dict) -> dict:
    """``schema`` with the registries filled in: the enums of ``$defs.sae_settings``'s
    ``method`` (sae and ``recsae.methods.METHODS``) and ``variant`` (``recsae.sae.variants``),
    every variant's own settings, inserted after the key that ``variant_settings_after`` names,
    and every dataset source's own settings (``recsae.data.registry``) in the dataset entry marked
    ``dataset_settings`` (in place; returned)."""
    from recsae.data.registry import dataset_settings
    from recsae.methods import METHODS
    from recsae.sae.variants import VARIANTS, variant_settings

    entry = schema.get("properties", {}).get("datasets", {}).get("additionalProperties", {})
    if entry.get("dataset_settings"):
        entry["properties"] |= copy.deepcopy(dataset_settings())
    sae = schema.get("$defs", {}).get("sae_settings")
    if sae is None or "variant_settings_after" not in sae:
        return schema
    sae["properties"]["method"]["enum"] = ["sae", *METHODS]
    sae["properties"]["variant"]["enum"] = list(VARIANTS)
    composed = {}
    for key, spec in sae["properties"].items():
        composed[key] = spec
        if key == sae["variant_settings_after"]:
            composed |= copy.deepcopy(variant_settings())
    sae["properties"] = composed
    return schema


@functools.cache
def _package_schema() -> dict:
    return load_schema(SCHEMA_PATH)


def section_schema(section: str) -> dict:
    """The schema of one config block: a top-level key (``metrics``, ``report``, ...), a nested
    one (``metrics.interventions``) or a shared definition (``$defs.split_settings``), with the
    schema's ``$defs`` so that its references resolve."""
    root = _package_schema()
    parts = section.split(".")
    node = root["$defs"][parts[1]] if parts[0] == "$defs" else root["properties"][parts[0]]
    for part in parts[2 if parts[0] == "$defs" else 1 :]:
        node = node["properties"][part]
    return {"$defs": root["$defs"], **node}


def layered_defaults(name: str) -> dict:
    """{key: default} of the layered block ``$defs.<name>`` of the schema (``sae_settings``,
    ``train_settings``), in the schema's key order."""
    properties = _package_schema()["$defs"][name]["properties"]
    return {key: copy.deepcopy(spec["default"]) for key, spec in properties.items()}


def check_layered(name: str, settings: dict) -> str | None:
    """The first problem of fully layered ``settings`` against ``$defs.<name>`` (a key and its
    message, e.g. ``'k': -1 is less than the minimum of 1``), or None."""
    error = jsonschema.exceptions.best_match(
        _FiniteValidator(section_schema(f"$defs.{name}")).iter_errors(settings)
    )
    if error is not None:
        error = _precise(error)
    if error is None:
        return None
    key = key_path(error)
    return f"{key!r}: {error_message(error)}" if error.absolute_path else error_message(error)


def fill_defaults(section: str, value: dict | None = None) -> dict:
    """A copy of ``value`` (default: empty) with every default of the schema's ``section`` filled
    in, validated; a bad key or value raises ConfigError naming it (``metrics.rbo_p: ...``)."""
    instance = copy.deepcopy(value) if value is not None else {}
    validator = _Validator(section_schema(section))
    errors = [_precise(e) for e in validator.iter_errors(instance)]
    errors.sort(key=lambda e: list(e.absolute_path))
    if errors:
        where = section.removeprefix("$defs.")
        raise ConfigError(
            "; ".join(
                f"{where}{'.' + key_path(e) if e.absolute_path else ''}: {error_message(e)}"
                for e in errors
            )
        )
    return instance


def resolve_metrics_config(metrics_cfg: dict | None) -> dict:
    """The metrics block with the schema's defaults (``config/schema.yaml``, key ``metrics``)
    filled in and validated, plus the check the schema cannot express (overlap_ks <= agreement_k).
    """
    cfg = fill_defaults("metrics", metrics_cfg)
    bad = [k for k in cfg["overlap_ks"] if not 1 <= k <= cfg["agreement_k"]]
    if bad:
        raise ConfigError(
            f"metrics.overlap_ks {bad} must lie in [1, agreement_k={cfg['agreement_k']}]"
        )
    return cfg


def key_path(error: jsonschema.ValidationError) -> str:
    """Dotted config key of a validation error, e.g. ``sae.sweep.grid.beta[2]``."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate_schema(
    config: dict, schema_path: str | Path = SCHEMA_PATH, source: str = "config"
) -> dict:
    """Validate ``config`` in place against the schema, filling defaults, and check that the
    names it uses exist; raise ConfigError naming every bad key. ``recsae.workflow.
    validate_config`` adds the checks that need the package's modules."""
    schema = load_schema(schema_path)
    errors = [_precise(e) for e in _Validator(schema).iter_errors(config)]
    errors.sort(key=lambda e: [str(part) for part in e.absolute_path])
    if errors:
        lines = [f"  - {key_path(e)}: {error_message(e)}" for e in errors]
        raise ConfigError(f"{source} does not match {schema_path}:\n" + "\n".join(lines))
    _check_references(config, source)
    return config


def read_config(path: str | Path) -> dict:
    """The mapping in a YAML config file (a YAML error names the file, line and column)."""
    with open(path, encoding="utf-8") as handle:
        try:
            config = yaml.safe_load(handle) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err)
            raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(config).__name__}")
    return config


def _check_references(config: dict, source: str) -> None:
    """Names used in ``experiments``, ``sae.targets`` and ``sae.overrides`` must exist."""
    for where, groups in (
        ("experiments", config["experiments"]),
        ("sae.targets", config["sae"]["targets"]),
    ):
        for i, group in enumerate(groups):
            for kind in ("datasets", "models"):
                for name in group[kind]:
                    if name not in config[kind]:
                        raise ConfigError(
                            f"{source}: {where}[{i}].{kind} names {name!r}, which is not a key "
                            f"of {kind} (known: {sorted(config[kind])})"
                        )
    overrides = config["sae"]["overrides"]
    for kind in ("datasets", "models"):
        for name in overrides[kind]:
            if name not in config[kind]:
                raise ConfigError(
                    f"{source}: sae.overrides.{kind}.{name} names an unknown {kind[:-1]}"
                )
    for pair in overrides["pairs"]:
        dataset, model = pair.split("/")
        if dataset not in config["datasets"] or model not in config["models"]:
            raise ConfigError(
                f"{source}: sae.overrides.pairs.{pair} names an unknown dataset or model"
            )
