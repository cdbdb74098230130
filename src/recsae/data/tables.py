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

from recsae.io import read_json

INTERACTION_COLUMNS = {"user": "int64", "item": "int64", "rating": "float32", "timestamp": "int64"}
CONCEPT_COLUMNS = ["entity", "id", "family", "concept"]
SPLIT_PARTS = ("train", "valid", "test")


def check_columns(frame: pd.DataFrame, required, where: str) -> None:
    """Raise a ValueError naming ``where`` when ``frame`` lacks any of ``required``."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; found {list(frame.columns)}")


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
        parts[part] = as_interactions(pd.read_parquet(path), str(path))
    return Split(n_users=int(stats["n_users"]), n_items=int(stats["n_items"]), **parts)


def load_concepts(data_dir: str | Path, entity: str = "item") -> pd.DataFrame:
    """Concept labels of one entity kind: columns id, family, concept."""
    path = Path(data_dir) / "concepts.parquet"
    frame = pd.read_parquet(path)
    check_columns(frame, CONCEPT_COLUMNS, str(path))
    return frame.loc[frame["entity"] == entity, ["id", "family", "concept"]].reset_index(drop=True)
