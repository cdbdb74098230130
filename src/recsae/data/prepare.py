"""Raw data -> canonical tables: dedup, rating threshold, iterative k-core, dense ids, stats.

Order of operations: (1) duplicate (user, item) pairs keep the latest (largest timestamp; the
last in file order on ties), so a later rating replaces an earlier one; (2) ``min_rating`` keeps
ratings >= the threshold (null keeps all); (3) iterative k-core: drop users with fewer than
``kcore.user`` and items with fewer than ``kcore.item`` interactions until both hold; (4) users
and items are numbered 0..n-1 in the order of their sorted raw ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsae.data.fetch import verify_manifest
from recsae.data.registry import RawData, get_dataset
from recsae.data.tables import CONCEPT_COLUMNS, INTERACTION_COLUMNS, check_columns
from recsae.errors import DataError
from recsae.io import result_metadata, write_json, write_parquet


def prepare_dataset(dataset: str, settings: dict, raw_dir: Path, out_dir: Path, seed: int) -> dict:
    """Read config entry ``dataset`` from ``raw_dir`` and write its canonical tables to
    ``out_dir`` (interactions, items, users, concepts .parquet, stats.json); return the stats."""
    spec = get_dataset(settings["source"])
    verify_manifest(Path(raw_dir))
    raw = spec.read(Path(raw_dir), settings, seed)
    return prepare_raw(raw, settings, out_dir, dataset=dataset, seed=seed)


def prepare_raw(
    raw: RawData, settings: dict, out_dir: Path, *, dataset: str, seed: int = 0
) -> dict:
    """Filter and remap ``raw`` (see the module doc), write the canonical tables; return stats.

    Usable from a hand-written Snakemake rule: build a RawData from any source and call this.
    """
    out_dir = Path(out_dir)
    where = f"{dataset}: interactions"
    check_columns(raw.interactions, list(INTERACTION_COLUMNS), where)
    inter = raw.interactions[list(INTERACTION_COLUMNS)].reset_index(drop=True)
    inter = inter.astype({"rating": "float64", "timestamp": "int64"})
    if inter.empty:
        raise DataError(f"{dataset}: the raw data holds no interactions")
    if not np.isfinite(inter["rating"].to_numpy()).all():
        raise DataError(f"{dataset}: interactions: a rating is not a finite number")
    raw_counts = _counts(inter)
    if raw.items is not None:
        raw_counts["n_items_catalogue"] = int(raw.items["raw_id"].nunique())
    if raw.users is not None:
        raw_counts["n_users_catalogue"] = int(raw.users["raw_id"].nunique())

    inter = inter.sort_values("timestamp", kind="stable").drop_duplicates(
        ["user", "item"], keep="last"
    )
    after_dedup = _counts(inter)
    min_rating = settings.get("min_rating")
    if min_rating is not None:
        inter = inter[inter["rating"] >= float(min_rating)]
        if inter.empty:
            ratings = raw.interactions["rating"]
            raise DataError(
                f"{dataset}: no interactions left after the min_rating={min_rating} setting "
                f"(ratings range {ratings.min()}..{ratings.max()})"
            )
    after_threshold = _counts(inter)
    kcore = _kcore_setting(settings, dataset)
    inter = kcore_filter(inter, kcore["user"], kcore["item"])
    if inter.empty:
        raise DataError(
            f"{dataset}: no interactions left after the kcore setting "
            f"(user={kcore['user']}, item={kcore['item']}); lower kcore.user / kcore.item"
        )

    users, user_codes = _dense(inter["user"])
    items, item_codes = _dense(inter["item"])
    interactions = pd.DataFrame(
        {
            "user": user_codes,
            "item": item_codes,
            "rating": inter["rating"].to_numpy(),
            "timestamp": inter["timestamp"].to_numpy(),
        }
    ).astype(INTERACTION_COLUMNS)
    interactions = interactions.sort_values(["user", "timestamp", "item"], kind="stable")
    interactions = interactions.reset_index(drop=True)
    popularity = np.bincount(item_codes, minlength=len(items)).astype(np.int64)
    items_table = _items_table(items, raw.items, popularity)
    users_table = _entity_table("user", users, raw.users)
    concepts = _concepts_table(raw.concepts, users, items, dataset)

    stats = {
        "dataset": dataset,
        "source": settings.get("source"),
        "n_users": len(users),
        "n_items": len(items),
        "n_interactions": len(interactions),
        "density": len(interactions) / (len(users) * len(items)),
        "raw": raw_counts,
        "after_dedup": after_dedup,
        "after_min_rating": after_threshold,
        "filters": {"dedup": "keep latest", "min_rating": min_rating, "kcore": kcore},
        "concept_families": {
            f"{entity}/{family}": int(n)
            for (entity, family), n in concepts.groupby(["entity", "family"])["concept"]
            .nunique()
            .items()
        },
        **raw.stats,
        **result_metadata(settings, seed),
    }
    write_parquet(out_dir / "interactions.parquet", interactions)
    write_parquet(out_dir / "items.parquet", items_table)
    write_parquet(out_dir / "users.parquet", users_table)
    write_parquet(out_dir / "concepts.parquet", concepts)
    for name, obj in raw.extra_json.items():
        write_json(out_dir / name, obj)
    write_json(out_dir / "stats.json", stats)
    return stats


def kcore_filter(inter: pd.DataFrame, user_min: int, item_min: int) -> pd.DataFrame:
    """Rows of ``inter`` (columns user, item) left by iterative k-core filtering."""
    if user_min <= 1 and item_min <= 1:
        return inter
    users, _ = pd.factorize(inter["user"])
    items, _ = pd.factorize(inter["item"])
    keep = np.ones(len(inter), dtype=bool)
    while True:
        user_n = np.bincount(users[keep], minlength=users.max() + 1 if len(users) else 0)
        item_n = np.bincount(items[keep], minlength=items.max() + 1 if len(items) else 0)
        new_keep = keep & (user_n[users] >= user_min) & (item_n[items] >= item_min)
        if new_keep.sum() == keep.sum():
            return inter[keep]
        keep = new_keep


def _kcore_setting(settings: dict, dataset: str) -> dict:
    kcore = dict(settings.get("kcore") or {})
    out = {}
    for key in ("user", "item"):
        value = kcore.pop(key, 0) or 0
        if int(value) != value or value < 0:
            raise DataError(f"{dataset}: kcore.{key} must be an integer >= 0, got {value!r}")
        out[key] = int(value)
    if kcore:
        raise DataError(f"{dataset}: unknown kcore key(s) {sorted(kcore)}; use user, item")
    return out


def _counts(inter: pd.DataFrame) -> dict:
    return {
        "n_interactions": len(inter),
        "n_users": int(inter["user"].nunique()),
        "n_items": int(inter["item"].nunique()),
    }


def _dense(raw_ids: pd.Series) -> tuple[pd.Index, np.ndarray]:
    """Sorted unique raw ids and each row's dense code (int64)."""
    codes, uniques = pd.factorize(raw_ids, sort=True)
    return pd.Index(uniques), codes.astype(np.int64)


def _entity_table(entity: str, ids: pd.Index, attributes: pd.DataFrame | None) -> pd.DataFrame:
    """Columns ``entity`` (dense id), raw_id (str), then the attribute columns of ``attributes``."""
    table = pd.DataFrame({entity: np.arange(len(ids), dtype=np.int64), "raw_id": ids})
    if attributes is not None:
        check_columns(attributes, ["raw_id"], f"{entity}s table")
        table = table.merge(attributes.drop_duplicates("raw_id"), on="raw_id", how="left")
    table["raw_id"] = table["raw_id"].astype(str)
    return table


def _items_table(ids: pd.Index, items: pd.DataFrame | None, popularity: np.ndarray) -> pd.DataFrame:
    """item, raw_id, title, year (Int64), popularity."""
    base = pd.DataFrame({"raw_id": ids})
    for column in ("title", "year"):
        base[column] = None
    if items is not None:
        meta = items.drop_duplicates("raw_id")
        meta = meta[[c for c in ("raw_id", "title", "year") if c in meta.columns]]
        base = base[["raw_id"]].merge(meta, on="raw_id", how="left")
        for column in ("title", "year"):
            if column not in base.columns:
                base[column] = None
    return pd.DataFrame(
        {
            "item": np.arange(len(ids), dtype=np.int64),
            "raw_id": base["raw_id"].astype(str),
            "title": base["title"].astype("str").where(base["title"].notna(), None),
            "year": pd.to_numeric(base["year"], errors="coerce").round().astype("Int64"),
            "popularity": popularity,
        }
    )


def _concepts_table(
    concepts: pd.DataFrame | None, users: pd.Index, items: pd.Index, dataset: str
) -> pd.DataFrame:
    """Long table entity, id (dense), family, concept for the users and items that remain."""
    if concepts is None or concepts.empty:
        return pd.DataFrame(
            {
                "entity": pd.Series(dtype=str),
                "id": pd.Series(dtype=np.int64),
                "family": pd.Series(dtype=str),
                "concept": pd.Series(dtype=str),
            }
        )
    check_columns(concepts, ["entity", "raw_id", "family", "concept"], f"{dataset}: concepts")
    parts = []
    for entity, index in (("item", items), ("user", users)):
        rows = concepts[concepts["entity"] == entity]
        ids = index.get_indexer(rows["raw_id"])
        if len(rows) and (ids < 0).all() and len(index):
            raise DataError(
                f"{dataset}: no {entity} concept raw_id matches an interaction's {entity} id "
                f"(concept ids like {rows['raw_id'].iloc[0]!r}, {entity} ids like {index[0]!r})"
            )
        kept = rows.assign(id=ids)[ids >= 0]
        parts.append(kept[CONCEPT_COLUMNS])
    table = pd.concat(parts, ignore_index=True).dropna(subset=["concept"])
    table = table.astype({"entity": str, "id": np.int64, "family": str, "concept": str})
    table = table.drop_duplicates().sort_values(CONCEPT_COLUMNS, kind="stable")
    return table.reset_index(drop=True)
