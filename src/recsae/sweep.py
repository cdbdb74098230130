"""Sweep expansion: grids and explicit points of SAE configs, and their canonical paths.

A sweep config (``sweep_cfg``) may hold any of:

* ``grid``: {key: [values]} -- the cartesian product of the lists (a scalar is a fixed value);
* ``grids``: a list of such grids, or {name: grid}, each expanded on its own;
* ``points``: a list of explicit {key: value} points.

Every point is merged over ``defaults`` (the full default sae config); identical merged points are
kept once (first occurrence wins). ``width`` and ``expansion`` size the dictionary in two
exclusive ways: a point that sets one clears the other (sets it to null).

A point's path lists only the keys its own grid or explicit point sets (the swept keys), as
``key~value`` segments joined by ``/`` in the canonical key order (the order of
``recsae.sae.config.SAE_DEFAULTS``, then other keys alphabetically), e.g.
``variant~topk/width~64/k~8/beta~1``. Every other key comes from ``defaults``, so
``point_from_path(path, defaults)`` rebuilds the point, and adding a grid never renames the points
of another. A point that sets nothing is ``default``: a config without ``sae.sweep`` trains that
one point; an empty ``sweep``, ``grid``, ``grids`` or ``points`` is refused. ``seeded_points``
repeats every point once per seed of ``sae.seeds`` (the SAE's ``seed`` key; path segment
``seed~N``). Values are written by ``format_value``: floats by their shortest round-trip repr
without a trailing ``.0`` (``1.0 -> 1``, ``0.01``, ``1e-05``), bools ``true``/``false``, null
``none``, lists comma-joined (a one-element list keeps a trailing comma).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable

from recsae.sae.config import SAE_DEFAULTS

DEFAULT_PATH = "default"
EXCLUSIVE_KEYS = (("width", "expansion"),)
KEY_ORDER = tuple(SAE_DEFAULTS)
_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*~[^/~]+"
SAE_WILDCARD_REGEX = rf"(?:{DEFAULT_PATH}|{_SEGMENT}(?:/{_SEGMENT})*)"
_INT = re.compile(r"-?\d+")
_FORBIDDEN = set("/~, \t\n")


def format_value(value) -> str:
    """The one canonical text of a sweep value (see the module docstring)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"sweep value {value!r} is not finite")
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, (list, tuple)):
        parts = [format_value(v) for v in value]
        if any("," in p for p in parts):
            raise ValueError(f"sweep value {value!r}: nested lists have no path form")
        return ",".join(parts) + ("," if len(parts) <= 1 else "")
    if isinstance(value, str):
        if not value or _FORBIDDEN & set(value) or parse_value(value) != value:
            raise ValueError(
                f"sweep value {value!r} cannot appear in a path (empty, has one of '/~, ' or "
                "whitespace, or reads as a number/bool/none)"
            )
        return value
    raise ValueError(f"sweep value {value!r} of type {type(value).__name__} has no path form")


def parse_value(text: str):
    """Inverse of ``format_value``: bool, None, int, float, list or str."""
    if text == "true":
        return True
    if text == "false":
        return False
    if text == "none":
        return None
    if "," in text:
        return [parse_value(t) for t in text.split(",") if t]
    if _INT.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _key_rank(key: str) -> tuple[int, str]:
    return (KEY_ORDER.index(key), "") if key in KEY_ORDER else (len(KEY_ORDER), key)


def canonical_keys(keys: Iterable[str]) -> list[str]:
    """``keys`` deduplicated, in the canonical order."""
    return sorted(set(keys), key=_key_rank)


def point_path(point: dict, keys: Iterable[str]) -> str:
    """``key~value/...`` for the given (swept) ``keys`` of ``point``; ``default`` when none."""
    keys = canonical_keys(keys)
    for key in keys:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"sweep key {key!r} cannot appear in a path")
    return "/".join(f"{k}~{format_value(point[k])}" for k in keys) or DEFAULT_PATH


def parse_point_path(path: str) -> dict:
    """Inverse of ``point_path``: {key: value} of the swept keys (``default`` -> {})."""
    path = path.strip("/")
    if path == DEFAULT_PATH:
        return {}
    out = {}
    for segment in path.split("/"):
        key, sep, text = segment.partition("~")
        if not sep or not key or not text:
            raise ValueError(f"sweep path {path!r}: segment {segment!r} is not key~value")
        if key in out:
            raise ValueError(f"sweep path {path!r}: key {key!r} appears twice")
        out[key] = parse_value(text)
    return out


def _coerce(key: str, value, defaults: dict):
    """Ints given for float-valued defaults become floats (``beta: 1`` == ``beta: 1.0``)."""
    default = defaults.get(key)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def merge_point(overrides: dict, defaults: dict, where: str = "sweep") -> dict:
    """``defaults`` overlaid with ``overrides`` (keys checked, exclusive sizing keys cleared)."""
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {list(defaults)}")
    point = {**defaults, **{k: _coerce(k, v, defaults) for k, v in overrides.items()}}
    for a, b in EXCLUSIVE_KEYS:
        if a in overrides and b in overrides:
            if overrides[a] is not None and overrides[b] is not None:
                raise ValueError(f"{where}: set {a!r} or {b!r}, not both")
        elif a in overrides and a in defaults and b in defaults:
            point[b] = None if overrides[a] is not None else defaults[b]
        elif b in overrides and a in defaults and b in defaults:
            point[a] = None if overrides[b] is not None else defaults[a]
    return point


def _grid_overrides(grid: dict, where: str) -> list[dict]:
    if not isinstance(grid, dict):
        raise ValueError(f"{where}: a grid is a mapping key -> list of values, got {grid!r}")
    if not grid:
        raise ValueError(f"{where} is empty: give it {{key: [values]}} or leave it out")
    keys = list(grid)
    values = []
    for key in keys:
        vals = grid[key] if isinstance(grid[key], list) else [grid[key]]
        if not vals:
            raise ValueError(f"{where}: key {key!r} has an empty list of values")
        values.append(vals)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def _named_grids(sweep_cfg: dict) -> list[tuple[str, dict]]:
    grids = []
    if "grid" in sweep_cfg:
        grids.append(("sweep grid", sweep_cfg["grid"]))
    named = sweep_cfg.get("grids") or []
    if isinstance(named, dict):
        grids += [(f"sweep grid {name!r}", grid) for name, grid in named.items()]
    elif isinstance(named, list):
        grids += [(f"sweep grids[{i}]", grid) for i, grid in enumerate(named)]
    else:
        raise ValueError(f"sweep key 'grids': expected a list or mapping, got {named!r}")
    return grids


def sweep_points(sweep_cfg: dict | None, defaults: dict) -> dict[str, dict]:
    """{path: merged point} of every distinct point, in config order (grids, then points)."""
    sweep_cfg = sweep_cfg or {}
    unknown = sorted(set(sweep_cfg) - {"grid", "grids", "points"})
    if unknown:
        raise ValueError(f"unknown sweep key(s) {unknown}; expected grid, grids, points")
    empty = [key for key in ("grids", "points") if key in sweep_cfg and not sweep_cfg[key]]
    if empty:
        raise ValueError(f"sae.sweep.{empty[0]} is empty: give it points or leave it out")
    overrides: list[tuple[str, dict]] = []
    for where, grid in _named_grids(sweep_cfg):
        overrides += [(where, o) for o in _grid_overrides(grid, where)]
    points = sweep_cfg.get("points")
    if points is not None and not isinstance(points, list):
        raise ValueError(f"sweep key 'points': expected a list of mappings, got {points!r}")
    for i, p in enumerate(points or []):
        if not isinstance(p, dict):
            raise ValueError(f"sweep points[{i}]: expected a mapping, got {p!r}")
        overrides.append((f"sweep points[{i}]", p))
    if not overrides:
        overrides = [("sweep", {})]
    out: dict[str, dict] = {}
    seen: set[str] = set()
    for where, o in overrides:
        point = merge_point(o, defaults, where)
        identity = json.dumps(point, sort_keys=True, default=repr)
        if identity in seen:
            continue
        seen.add(identity)
        path = point_path(point, o)
        if path in out:
            raise ValueError(f"{where}: path {path!r} names two different points")
        out[path] = point
    return out


def seeded_points(points: dict[str, dict], seeds) -> dict[str, dict]:
    """Every point of ``points`` ({path: point}) once per seed of ``seeds``: the point gains
    ``seed: N`` and its path a ``seed~N`` segment. No seeds (None or []): ``points`` unchanged."""
    if not seeds:
        return points
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"sae.seeds {list(seeds)} repeats a seed")
    out: dict[str, dict] = {}
    for path, point in points.items():
        swept = parse_point_path(path)
        if "seed" in swept:
            raise ValueError(f"sweep point {path!r} sets seed itself; use sae.seeds or the sweep")
        for seed in seeds:
            seeded = {**point, "seed": seed}
            out[point_path(seeded, [*swept, "seed"])] = seeded
    return out


def strip_seed(path: str) -> str:
    """``path`` without its ``seed~N`` segment (``seed~0`` alone -> ``default``)."""
    kept = [segment for segment in path.strip("/").split("/") if not segment.startswith("seed~")]
    return "/".join(kept) or DEFAULT_PATH


def expand_sweep(sweep_cfg: dict | None, defaults: dict) -> list[dict]:
    """Every distinct point of the sweep, each a full config merged over ``defaults``."""
    return list(sweep_points(sweep_cfg, defaults).values())


def point_from_path(path: str, defaults: dict) -> dict:
    """The full config a sweep path names: ``defaults`` overlaid with the path's keys."""
    return merge_point(parse_point_path(path), defaults, f"sweep path {path!r}")
