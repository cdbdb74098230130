"""Seeded per-user train / valid / test split of the canonical interactions.

Protocols (setting ``protocol``):
* ``random_holdout``: per user, a random ``test_n`` (or ``test_fraction``) of the interactions go
  to test, then a random ``valid_n`` (or ``valid_fraction`` of the rest) to valid.
* ``leave_last_out``: per user, the latest ``test_n`` (or fraction) by timestamp go to test, the
  ones just before them to valid (ties in time broken at random).
* ``file``: the test pairs are read from ``test_file``, a CSV with the header ``user_id,item_id``
  in the dataset's raw ids (``read_test_file``), so a run can use exactly the split another
  implementation used; then a random ``valid_n`` (or ``valid_fraction``) of each test user's
  remaining interactions go to valid, as far as ``min_train`` allows. Users without a test row
  stay in train.

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
from recsae.io import atomic_write, read_parquet, result_metadata, write_json, write_parquet
from recsae.seeding import numpy_rng

_TRAIN, _VALID, _TEST, _DROP = 0, 1, 2, -1
# the fewest users with training interactions, and items, a split may leave: the SAE holds out
# users, so that one user alone leaves it nothing to train on
MIN_USERS, MIN_ITEMS = 2, 2


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
    test_file: str | None

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
    inter = read_parquet(data_dir / "interactions.parquet")
    inter = as_interactions(inter, str(data_dir / "interactions.parquet"))
    inter = inter.sort_values(["user", "item"], kind="stable").reset_index(drop=True)
    rng = numpy_rng(seed, "split")
    if cfg.protocol == "file":
        is_test = read_test_file(cfg.test_file, data_dir, inter)
        part, eligible = assign_parts_from_test(inter["user"].to_numpy(), is_test, cfg, rng)
    else:
        part, eligible = assign_parts(
            inter["user"].to_numpy(), inter["timestamp"].to_numpy(), cfg, rng
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
    if stats["n_users_train"] < MIN_USERS or stats["n_items"] < MIN_ITEMS:
        raise DataError(
            f"{stats_in.get('dataset', data_dir)}: {stats['n_users_train']} user(s) with training "
            f"interactions and {stats['n_items']} item(s) after filtering and splitting; a "
            f"recommender and its SAE need at least {MIN_USERS} users and {MIN_ITEMS} items "
            "(lower the dataset's kcore or min_rating, or the split's test_n / valid_n)"
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


def read_test_file(path: str, data_dir: Path, inter: pd.DataFrame) -> np.ndarray:
    """Bool (n,): which rows of ``inter`` (canonical interactions) are test pairs named in the CSV
    ``path`` (header ``user_id,item_id``, the raw ids of ``data_dir``'s users and items tables).
    A missing file or column, an unknown user or item, a repeated pair, or a pair the user never
    interacted with raises a DataError naming the file and its line."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the split test file: {err}") from None
    if list(table.columns) != ["user_id", "item_id"]:
        raise DataError(
            f"{path}: line 1: the header must be user_id,item_id, got {','.join(table.columns)}"
        )
    line = np.arange(len(table)) + 2
    ids = {}
    for entity, column in (("user", "user_id"), ("item", "item_id")):
        known = read_parquet(data_dir / f"{entity}s.parquet")
        lookup = pd.Series(known[entity].to_numpy(), index=known["raw_id"].astype(str))
        dense = lookup.reindex(table[column].str.strip()).to_numpy()
        unknown = np.flatnonzero(pd.isna(dense))
        if len(unknown):
            bad = unknown[0]
            raise DataError(
                f"{path}: line {line[bad]}: unknown {entity} {table[column].iloc[bad]!r} (not in "
                f"the prepared dataset's {entity}s)"
            )
        ids[entity] = dense.astype(np.int64)
    n_items = int(max(inter["item"].max(), ids["item"].max())) + 1
    wanted = ids["user"] * n_items + ids["item"]
    repeated = pd.Series(wanted).duplicated().to_numpy()
    if repeated.any():
        bad = int(np.flatnonzero(repeated)[0])
        raise DataError(f"{path}: line {line[bad]}: the pair {tuple(table.iloc[bad])} repeats")
    keys = inter["user"].to_numpy() * n_items + inter["item"].to_numpy()
    missing = ~np.isin(wanted, keys)
    if missing.any():
        bad = int(np.flatnonzero(missing)[0])
        raise DataError(
            f"{path}: line {line[bad]}: user {table['user_id'].iloc[bad]!r} never interacted "
            f"with item {table['item_id'].iloc[bad]!r}"
        )
    return np.isin(keys, wanted)


def export_test_pairs(data_dir: Path, split_dir: Path, out: Path) -> int:
    """Write the test pairs of a prepared split as a ``protocol: file`` test file (header
    ``user_id,item_id``, the dataset's raw ids, sorted by user then item); return the row count.
    The file makes another run, or another implementation, use exactly this split's test set."""
    data_dir, split_dir = Path(data_dir), Path(split_dir)
    test = read_parquet(split_dir / "test.parquet")[["user", "item"]]
    test = test.drop_duplicates().sort_values(["user", "item"], kind="stable")
    names = {}
    for entity in ("user", "item"):
        table = read_parquet(data_dir / f"{entity}s.parquet")
        names[entity] = pd.Series(table["raw_id"].astype(str).to_numpy(), index=table[entity])
    frame = pd.DataFrame(
        {
            "user_id": names["user"].reindex(test["user"]).to_numpy(),
            "item_id": names["item"].reindex(test["item"]).to_numpy(),
        }
    )
    atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False))
    return len(frame)


def assign_parts_from_test(
    users: np.ndarray, is_test: np.ndarray, cfg: SplitSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(part, eligible) as ``assign_parts``, for given test rows ``is_test`` (n,) bool: each user
    with test rows gets ``valid_n`` (or ``valid_fraction``) random valid rows among the rest,
    fewer where ``min_train`` training rows would not remain; eligible: the user has a test row."""
    n = len(users)
    rest = ~is_test
    order = np.lexsort((rng.random(n), ~rest, users))
    count = np.bincount(users)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - start[users[order]]
    n_test = np.bincount(users, weights=is_test, minlength=len(count)).astype(np.int64)
    n_rest = count - n_test
    n_valid = np.minimum(
        _per_user(n_rest, cfg.valid_n, cfg.valid_fraction), np.maximum(n_rest - cfg.min_train, 0)
    )
    n_valid[n_test == 0] = 0
    part = np.full(n, _TRAIN, dtype=np.int8)
    part[rest & (rank < n_valid[users])] = _VALID
    part[is_test] = _TEST
    return part, n_test > 0


def _per_user(count: np.ndarray, n: int, fraction: float | None) -> np.ndarray:
    """Per-user size: ``n``, or ``fraction`` of ``count`` rounded half up and at least 1."""
    if fraction is None:
        return np.full(count.shape, int(n), dtype=np.int64)
    return np.maximum(np.floor(fraction * count + 0.5), 1).astype(np.int64)
