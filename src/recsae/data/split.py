"""Seeded per-user train / valid / test split of the canonical interactions.

Protocols (setting ``protocol``):
* ``random_holdout``: per user, a random ``test_n`` (or ``test_fraction``) of the interactions go
  to test, then a random ``valid_n`` (or ``valid_fraction`` of the rest) to valid.
* ``leave_last_out``: per user, the latest ``test_n`` (or fraction) by timestamp go to test, the
  ones just before them to valid (ties in time broken at random).

Settings are layered: the schema's defaults (``$defs.split_settings``), then the defaults the
dataset's source states (``DatasetSpec.default_split``: leave_last_out with one test and one
validation item for Amazon and Yelp reviews), then the config's ``split`` block.
A fraction, when set, takes precedence over the count; it is rounded half up, at least 1.
Small users: a user needs test + valid + ``min_train`` interactions. Otherwise ``small_users``
decides: ``train_only`` (default) keeps all of them in train (the user is not evaluated), ``drop``
removes them from every part. Each (user, item) pair lies in exactly one part, so no test or valid
item of a user is in that user's train set. Everything is vectorised (no per-user loop).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsae.config import ConfigError, check_layered, layered_defaults
from recsae.data.registry import default_split
from recsae.data.tables import INTERACTION_COLUMNS, SPLIT_PARTS, as_interactions, validate_canonical
from recsae.errors import DataError
from recsae.io import result_metadata, write_json, write_parquet
from recsae.seeding import numpy_rng

_TRAIN, _VALID, _TEST, _DROP = 0, 1, 2, -1


@dataclass(frozen=True)
class SplitSettings:
    """The ``split`` config block (see the module doc; keys, types and defaults:
    config/schema.yaml, ``$defs.split_settings``)."""

    protocol: str
    test_n: int
    test_fraction: float | None
    valid_n: int
    valid_fraction: float | None
    small_users: str
    min_train: int

    @classmethod
    def from_settings(cls, settings: dict | None, source: str | None = None) -> SplitSettings:
        """The block over ``source``'s default split and the schema's defaults
        (``resolve_split_settings``)."""
        return cls(**resolve_split_settings(settings, source))


def resolve_split_settings(settings: dict | None, source: str | None = None) -> dict:
    """Every split key: the config's ``settings`` over the default split of dataset source
    ``source`` over the schema's defaults; a bad key or value raises a ConfigError naming it
    (``split_settings: ... 'tets_n' was unexpected``)."""
    full = layered_defaults("split_settings") | default_split(source) | dict(settings or {})
    problem = check_layered("split_settings", full)
    if problem:
        raise ConfigError(f"split_settings: {problem}")
    return full


def make_split(data_dir: Path, settings: dict, seed: int, out_dir: Path) -> dict:
    """Split ``data_dir/interactions.parquet`` (validated first) into ``out_dir/{train,valid,
    test}.parquet`` and ``out_dir/stats.json``; return the stats."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    stats_in = validate_canonical(data_dir)
    cfg = SplitSettings.from_settings(settings, stats_in.get("source"))
    inter = pd.read_parquet(data_dir / "interactions.parquet")
    inter = as_interactions(inter, str(data_dir / "interactions.parquet"))
    inter = inter.sort_values(["user", "item"], kind="stable").reset_index(drop=True)
    part, eligible = assign_parts(
        inter["user"].to_numpy(), inter["timestamp"].to_numpy(), cfg, numpy_rng(seed, "split")
    )
    frames = {
        name: inter[part == code].sort_values(["user", "timestamp", "item"], kind="stable")
        for name, code in zip(SPLIT_PARTS, (_TRAIN, _VALID, _TEST), strict=True)
    }
    users_with = {name: int(frame["user"].nunique()) for name, frame in frames.items()}
    stats = {
        "n_users": stats_in["n_users"],
        "n_items": stats_in["n_items"],
        **{f"n_{name}": len(frame) for name, frame in frames.items()},
        **{f"n_users_{name}": n for name, n in users_with.items()},
        "n_eval_users": users_with["test"],
        "n_small_users": int((~eligible).sum()),
        "n_dropped_interactions": int((part == _DROP).sum()),
        **result_metadata(asdict(cfg), seed),
    }
    if stats["n_eval_users"] == 0:
        raise DataError(
            f"{stats_in.get('dataset', data_dir)}: the split leaves no user to evaluate: "
            f"{stats['n_users']} users, {stats['n_small_users']} of them with fewer than "
            f"test + valid + min_train interactions (split.protocol={cfg.protocol}, "
            f"test_n={cfg.test_n}, test_fraction={cfg.test_fraction}, valid_n={cfg.valid_n}, "
            f"valid_fraction={cfg.valid_fraction}, min_train={cfg.min_train}); "
            + workable_splits(np.bincount(inter["user"].to_numpy()), cfg.protocol)
        )
    for name, frame in frames.items():
        write_parquet(out_dir / f"{name}.parquet", frame[list(INTERACTION_COLUMNS)])
    write_json(out_dir / "stats.json", stats)
    return stats


def workable_splits(per_user: np.ndarray, protocol: str) -> str:
    """A hint naming split settings that evaluate some of these users (``per_user``: (n_users,)
    interaction counts), each with how many users it evaluates, or saying that none can."""
    candidates = [(1, 3, ""), (0, 2, " (no validation part: no early stopping)")]
    options = [
        f"split: {{protocol: {protocol}, test_n: 1, valid_n: {valid_n}, min_train: 1}} "
        f"evaluates the {n} users with >= {needed} interactions{note}"
        for valid_n, needed, note in candidates
        if (n := int((per_user >= needed).sum()))
    ]
    if not options:
        return (
            "every user has a single interaction, so no split can evaluate one: use a larger "
            "sample of the data"
        )
    return "split settings that would work for this data: " + "; ".join(options)


def assign_parts(
    users: np.ndarray, timestamps: np.ndarray, cfg: SplitSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(part, eligible): part code per interaction (n,) int8: 0 train, 1 valid, 2 test, -1
    dropped; eligible per user id (max id + 1,) bool: large enough for the protocol.

    ``users``, ``timestamps``: (n,) int arrays (dense user ids). Each user's interactions are
    ranked (random order, or latest first for leave_last_out); rank < n_test is test, the next
    n_valid are valid. Users without rows count as eligible.
    """
    n = len(users)
    key = rng.random(n)
    if cfg.protocol == "leave_last_out":
        order = np.lexsort((key, -timestamps, users))
    else:
        order = np.lexsort((key, users))
    count = np.bincount(users)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - start[users[order]]

    n_test = _per_user(count, cfg.test_n, cfg.test_fraction)
    n_valid = _per_user(count - n_test, cfg.valid_n, cfg.valid_fraction)
    eligible = count - n_test - n_valid >= cfg.min_train
    part = np.full(n, _TRAIN, dtype=np.int8)
    part[rank < n_valid[users] + n_test[users]] = _VALID
    part[rank < n_test[users]] = _TEST
    part[~eligible[users]] = _DROP if cfg.small_users == "drop" else _TRAIN
    return part, eligible | (count == 0)


def _per_user(count: np.ndarray, n: int, fraction: float | None) -> np.ndarray:
    """Per-user size: ``n``, or ``fraction`` of ``count`` rounded half up and at least 1."""
    if fraction is None:
        return np.full(count.shape, int(n), dtype=np.int64)
    return np.maximum(np.floor(fraction * count + 0.5), 1).astype(np.int64)
