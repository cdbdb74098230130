"""Issue 26: runs exit promptly, damaged results are named in one line, impossible settings are
refused before any job, and ordinary misuse of ``recsae`` gives one line and exit 2."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recsae.config import ConfigError, load_schema
from recsae.workflow import validate_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "config" / "schema.yaml"
BASE = {"datasets": {"d": {"source": "synthetic"}}, "models": {"m": {"model": "mf"}}}


def _recsae(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsae.cli", *args], capture_output=True, text=True
    )


def _error_lines(out: subprocess.CompletedProcess) -> list[str]:
    return [line for line in out.stderr.splitlines() if " INFO " not in line]


# --- non-finite numbers ---------------------------------------------------------------------

# the name a map's placeholder key gets, by the map's own key (``d`` and ``m`` exist in BASE)
_MAP_KEYS = {"datasets": "d", "models": "m", "pairs": "d/m", "params": "reg", "grids": "g"}


def _resolve(node: dict, root: dict) -> dict:
    while "$ref" in node:
        node = {**root["$defs"][node["$ref"].split("/")[-1]], **{
            k: v for k, v in node.items() if k != "$ref"}}  # fmt: skip
    return node


def _types(node: dict) -> set[str]:
    kind = node.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def numeric_keys(node: dict, root: dict, path: tuple = ()) -> list[tuple]:
    """Every place of the schema that takes a number (type number or integer, also as one choice
    of an ``anyOf``), as a path of keys and list indices (placeholder names for maps)."""
    node = _resolve(node, root)
    out = []
    branches = [_resolve(b, root) for b in node.get("anyOf", [])] or [node]
    if any(_types(b) & {"number", "integer"} for b in branches):
        out.append(path)
    for branch in branches:
        for key, sub in branch.get("properties", {}).items():
            out += numeric_keys(sub, root, (*path, key))
        extra = branch.get("additionalProperties")
        if isinstance(extra, dict):
            out += numeric_keys(extra, root, (*path, _MAP_KEYS.get(path[-1], "lr")))
        if isinstance(branch.get("items"), dict):
            out += numeric_keys(branch["items"], root, (*path, 0))
    return list(dict.fromkeys(out))


def _with_value(path: tuple, value) -> dict:
    config = copy.deepcopy(BASE)
    node = config
    for key, after in zip(path, (*path[1:], None), strict=True):
        if after is None:
            if isinstance(node, list):
                node.append(value)
            else:
                node[key] = value
        elif isinstance(node, list):
            node.append([] if isinstance(after, int) else {})
            node = node[-1]
        else:
            node = node.setdefault(key, [] if isinstance(after, int) else {})
    return config


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


SCHEMA_ROOT = load_schema(SCHEMA)
NUMERIC_KEYS = numeric_keys(SCHEMA_ROOT, SCHEMA_ROOT)


def test_the_schema_walk_finds_the_numeric_keys():
    dotted = {_dotted(p) for p in NUMERIC_KEYS}
    for key in ("seed", "datasets.d.min_rating", "datasets.d.split.test_fraction",
                "datasets.d.noise", "datasets.d.download.deadline", "models.m.params.reg",
                "models.m.train.weight_decay", "sae.defaults.lr", "metrics.auroc_threshold",
                "sae.sweep.grid.lr", "sae.sweep.points[0].beta", "metrics.bucket_cuts[0]"):
        assert key in dotted, key
    assert len(dotted) > 100


@pytest.mark.parametrize("path", NUMERIC_KEYS, ids=_dotted)
def test_non_finite_numbers_are_refused_for_every_numeric_key(path):
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ConfigError) as err:
            validate_config(_with_value(path, value), SCHEMA)
        assert f"{_dotted(path)}: {value!r} is not a finite number" in str(err.value)


def test_nan_in_a_config_file_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "nan.yaml"
    bad.write_text(yaml.safe_dump(BASE) + "sae: {defaults: {lr: .nan}}\n")
    out = _recsae("validate-config", str(bad))
    assert out.returncode == 2
    (line,) = _error_lines(out)
    assert line.startswith("recsae validate-config: error: ")
    assert "sae.defaults.lr: nan is not a finite number" in line
