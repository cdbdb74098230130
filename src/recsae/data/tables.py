"""The canonical tables every dataset is turned into, and the split every later stage reads.

Layout (``results/{dataset}/data/``):
* ``interactions.parquet``: user (int64, dense 0..n_users-1), item (int64, dense 0..n_items-1),
  rating (float32; 1.0 for implicit data), timestamp (int64 seconds; 0 when unknown).
* ``items.parquet``: item (int64), raw_id (str, the dataset's own id), title (str, nullable),
  year (Int64, nullable), popularity (int64, interactions in the prepared data).
* ``users.parquet``: user (int64), raw_id (str), plus whatever attributes the dataset has
  (age, gender, occupation, ...), nullable.
* ``concepts.parquet``: long format, one row per label: entity ("item" | "user"), id (int64),
  family (str: "genre", "decade", "tag", "category", "brand", "planted_cluster", ...),
  concept (str).
* ``stats.json``: n_users, n_items, n_interactions, density, raw counts before filtering, filters.

Split (``results/{dataset}/split/``): ``train.parquet``, ``valid.parquet``, ``test.parquet`` with
the interaction columns, and ``stats.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsae.errors import DataError
from recsae.io import read_json, read_parquet

INTERACTION_COLUMNS = {"user": "int64", "item": "int64", "rating": "float32", "timestamp": "int64"}
CONCEPT_COLUMNS = ["entity", "id", "family", "concept"]
SPLIT_PARTS = ("train", "valid", "test")


def check_columns(frame: pd.DataFrame, required, where: str) -> None:
    """Raise a ValueError naming ``where`` when ``frame`` lacks any of ``required``."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; found {list(frame.columns)}")


def as_interactions(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The interaction columns of ``frame`` in canonical order and dtypes."""
    check_columns(frame, INTERACTION_COLUMNS, where)
    return frame[list(INTERACTION_COLUMNS)].astype(INTERACTION_COLUMNS).reset_index(drop=True)


@dataclass(frozen=True)
class Split:
    """A prepared dataset split. DataFrames hold the canonical interaction columns."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    n_users: int
    n_items: int

    def matrix(self, part: str = "train") -> sp.csr_matrix:
        """Binary user x item CSR matrix (n_users, n_items) of one part."""
        frame = getattr(self, part)
        data = np.ones(len(frame), dtype=np.float32)
        mat = sp.csr_matrix(
            (data, (frame["user"].to_numpy(), frame["item"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )
        mat.sum_duplicates()
        mat.data[:] = 1.0
        return mat


def load_split(data_dir: str | Path, split_dir: str | Path) -> Split:
    """Read ``split_dir/{train,valid,test}.parquet`` with sizes from ``data_dir/stats.json``."""
    data_dir, split_dir = Path(data_dir), Path(split_dir)
    stats = read_json(data_dir / "stats.json")
    parts = {}
    for part in SPLIT_PARTS:
        path = split_dir / f"{part}.parquet"
        parts[part] = as_interactions(read_parquet(path), str(path))
    return Split(n_users=int(stats["n_users"]), n_items=int(stats["n_items"]), **parts)


def load_concepts(data_dir: str | Path, entity: str = "item") -> pd.DataFrame:
    """Concept labels of one entity kind: columns id, family, concept."""
    path = Path(data_dir) / "concepts.parquet"
    frame = read_parquet(path)
    check_columns(frame, CONCEPT_COLUMNS, str(path))
    return frame.loc[frame["entity"] == entity, ["id", "family", "concept"]].reset_index(drop=True)


CANONICAL_TABLES = ("interactions", "items", "users", "concepts")
CANONICAL_FILES = tuple(f"{name}.parquet" for name in CANONICAL_TABLES)


class CanonicalTableError(ValueError):
    """Canonical tables that break the contract above; the message names the file."""


def validate_canonical(data_dir: str | Path) -> dict:
    """Check the canonical tables in ``data_dir`` against the contract; return stats.json.

    Checks: all files present; interaction columns with integer ids, numeric rating, integer
    timestamp and no nulls; dense ids (every user 0..n_users-1 and item 0..n_items-1 occurs);
    no duplicate (user, item) pairs; items/users tables with one row per dense id; concept rows
    with valid entity and id; stats.json n_users / n_items / n_interactions equal to the tables.
    """
    data_dir = Path(data_dir)
    missing = [n for n in (*CANONICAL_FILES, "stats.json") if not (data_dir / n).is_file()]
    if missing:
        raise CanonicalTableError(f"{data_dir}: missing canonical file(s) {missing}")
    stats = read_json(data_dir / "stats.json")
    for key in ("n_users", "n_items", "n_interactions"):
        if not isinstance(stats.get(key), int):
            raise CanonicalTableError(f"{data_dir / 'stats.json'}: {key!r} missing or not an int")
    path = data_dir / "interactions.parquet"
    inter = read_parquet(path)
    check_columns(inter, INTERACTION_COLUMNS, str(path))
    for column in ("user", "item", "timestamp"):
        if not pd.api.types.is_integer_dtype(inter[column]):
            raise CanonicalTableError(
                f"{path}: column {column!r} must be integer, is {inter[column].dtype}"
            )
    if not pd.api.types.is_numeric_dtype(inter["rating"]):
        raise CanonicalTableError(
            f"{path}: column 'rating' must be numeric, is {inter['rating'].dtype}"
        )
    nulls = [c for c in INTERACTION_COLUMNS if inter[c].isna().any()]
    if nulls:
        raise CanonicalTableError(f"{path}: null values in column(s) {nulls}")
    if len(inter) != stats["n_interactions"]:
        raise CanonicalTableError(
            f"{path}: {len(inter)} rows, stats.json says n_interactions={stats['n_interactions']}"
        )
    for column, key in (("user", "n_users"), ("item", "n_items")):
        _check_dense(inter[column].to_numpy(), stats[key], f"{path}: column {column!r}", key)
    if inter.duplicated(["user", "item"]).any():
        row = int(np.flatnonzero(inter.duplicated(["user", "item"]).to_numpy())[0])
        raise CanonicalTableError(f"{path}: duplicate (user, item) pair at row {row}")
    for entity, key in (("item", "n_items"), ("user", "n_users")):
        table_path = data_dir / f"{entity}s.parquet"
        table = read_parquet(table_path)
        check_columns(table, [entity, "raw_id"], str(table_path))
        ids = np.sort(table[entity].to_numpy())
        if len(ids) != stats[key] or not np.array_equal(ids, np.arange(stats[key])):
            raise CanonicalTableError(
                f"{table_path}: column {entity!r} must hold each id 0..{stats[key] - 1} once "
                f"({key}={stats[key]} in stats.json), found {len(ids)} rows"
            )
    path = data_dir / "concepts.parquet"
    concepts = read_parquet(path)
    check_columns(concepts, CONCEPT_COLUMNS, str(path))
    bad_entity = sorted(set(concepts["entity"]) - {"item", "user"})
    if bad_entity:
        raise CanonicalTableError(f"{path}: entity must be 'item' or 'user', found {bad_entity}")
    for entity, key in (("item", "n_items"), ("user", "n_users")):
        ids = concepts.loc[concepts["entity"] == entity, "id"].to_numpy()
        if len(ids) and (ids.min() < 0 or ids.max() >= stats[key]):
            raise CanonicalTableError(f"{path}: {entity} ids outside 0..{stats[key] - 1}")
    return stats


def _check_dense(ids: np.ndarray, n: int, where: str, key: str) -> None:
    if len(ids) and (ids.min() < 0 or ids.max() >= n):
        raise CanonicalTableError(f"{where}: ids must lie in 0..{n - 1} ({key}={n} in stats.json)")
    present = np.unique(ids).size
    if present != n:
        raise CanonicalTableError(
            f"{where}: ids are not dense: {present} distinct of {key}={n} (every id must occur)"
        )
