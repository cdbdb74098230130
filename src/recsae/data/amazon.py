"""Amazon reviews (McAuley lab): the 2018 per-category 5-core files and the 2023 release.

Settings: ``category`` (file name stem, e.g. "Books", "Video_Games"; required; letters, digits,
``_`` and ``-`` only), ``category_min_depth`` (default 1: the category path's root, the file's
own category shared by every item, is left out), ``metadata`` (``optional``, the default: without
the metadata file the items carry no category/brand concepts, which the log and stats.json say;
``required``: its absence stops the run). Implicit feedback: set ``min_rating`` (e.g. 4).
* ``amazon2018``: ``<Category>_5.json.gz`` (reviewerID, asin, overall, unixReviewTime) and
  ``meta_<Category>.json.gz`` (asin, title, category, brand, date; some files hold Python dict
  literals instead of JSON, both are read).
* ``amazon2023``: ``<Category>.jsonl.gz`` (user_id, parent_asin, rating, timestamp in ms) and
  ``meta_<Category>.jsonl.gz`` (parent_asin, title, categories, store).
Concepts: the category path entries (family "category") and the brand / store (family "brand").
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from recsae.data.parsing import MalformedInputError, iter_records, read_json_lines
from recsae.data.registry import DatasetSpec, RawData, Resource, register_dataset
from recsae.errors import DataError

log = logging.getLogger(__name__)

URL_2018 = "https://jmcauley.ucsd.edu/data/amazon_v2"
URL_2023 = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw"
LICENCE = (
    "Research use; cite Ni, Li & McAuley (EMNLP 2019) for 2018 and Hou et al. (2024, "
    "arXiv:2403.03952) for 2023."
)
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
METADATA_CHOICES = ("optional", "required")
_META_COLUMNS = ["raw_id", "title", "year", "brand", "categories"]


def _category(settings: dict) -> str:
    category = settings.get("category")
    if not category:
        raise DataError("amazon: the setting 'category' is required (e.g. Books, Video_Games)")
    if not CATEGORY.match(str(category)):
        raise DataError(
            f"amazon: category {category!r} is not a file name stem (letters, digits, _ and - "
            "only, e.g. Video_Games)"
        )
    return str(category)


def _metadata_required(settings: dict) -> bool:
    value = settings.get("metadata", "optional")
    if value not in METADATA_CHOICES:
        raise DataError(f"amazon: metadata must be one of {METADATA_CHOICES}, got {value!r}")
    return value == "required"


def resources_2018(settings: dict) -> list[Resource]:
    cat = _category(settings)
    return [
        Resource("amazon2018", f"{cat}_5.json.gz", f"{URL_2018}/categoryFilesSmall/{cat}_5.json.gz",
                 (f"{cat}_5.json.gz",), unpack=False),
        Resource("amazon2018", f"meta_{cat}.json.gz", f"{URL_2018}/metaFiles2/meta_{cat}.json.gz",
                 (f"meta_{cat}.json.gz",), unpack=False,
                 optional=not _metadata_required(settings)),
    ]  # fmt: skip


def resources_2023(settings: dict) -> list[Resource]:
    cat = _category(settings)
    return [
        Resource("amazon2023", f"{cat}.jsonl.gz", f"{URL_2023}/review_categories/{cat}.jsonl.gz",
                 (f"{cat}.jsonl.gz",), unpack=False),
        Resource("amazon2023", f"meta_{cat}.jsonl.gz",
                 f"{URL_2023}/meta_categories/meta_{cat}.jsonl.gz",
                 (f"meta_{cat}.jsonl.gz",), unpack=False,
                 optional=not _metadata_required(settings)),
    ]  # fmt: skip


def read_2018(raw_dir: Path, settings: dict, seed: int) -> RawData:
    cat = _category(settings)
    reviews = read_json_lines(
        Path(raw_dir) / f"{cat}_5.json.gz",
        {"reviewerID": "str", "asin": "str", "overall": "float", "unixReviewTime": "int"},
    )
    interactions = pd.DataFrame(
        {
            "user": reviews["reviewerID"],
            "item": reviews["asin"],
            "rating": reviews["overall"],
            "timestamp": reviews["unixReviewTime"],
        }
    )
    meta_path = Path(raw_dir) / f"meta_{cat}.json.gz"
    return _raw(interactions, meta_path, ("asin", "brand", "date"), settings)


def read_2023(raw_dir: Path, settings: dict, seed: int) -> RawData:
    cat = _category(settings)
    reviews = read_json_lines(
        Path(raw_dir) / f"{cat}.jsonl.gz",
        {"user_id": "str", "parent_asin": "str", "rating": "float", "timestamp": "int"},
    )
    interactions = pd.DataFrame(
        {
            "user": reviews["user_id"],
            "item": reviews["parent_asin"],
            "rating": reviews["rating"],
            "timestamp": reviews["timestamp"] // 1000,
        }
    )
    meta_path = Path(raw_dir) / f"meta_{cat}.jsonl.gz"
    return _raw(interactions, meta_path, ("parent_asin", "store", None), settings)


def read_meta(path: Path, id_key: str, brand_key: str, date_key: str | None) -> pd.DataFrame:
    """One row per item: raw_id, title, year, brand, categories (list of str, the path)."""
    rows = []
    for line_no, record in iter_records(path, literal_fallback=True):
        if not isinstance(record.get(id_key), str):
            raise MalformedInputError(f"{path}, line {line_no}: missing key {id_key!r}")
        categories = record.get("category", record.get("categories")) or []
        if categories and isinstance(categories[0], list):
            categories = categories[0]
        date = record.get(date_key) if date_key else None
        year = _YEAR.search(date) if isinstance(date, str) else None
        rows.append(
            (
                record[id_key],
                _text(record.get("title")),
                int(year.group(1)) if year else None,
                _text(record.get(brand_key)),
                [c.strip() for c in categories if isinstance(c, str)],
            )
        )
    return pd.DataFrame(rows, columns=_META_COLUMNS)


def _text(value) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def _read_optional_meta(path: Path, keys: tuple, settings: dict) -> tuple[pd.DataFrame, dict]:
    """(metadata, stats entries): an absent file is an error when ``metadata: required``, else
    an empty table and a note (logged and put into stats.json)."""
    if path.is_file():
        return read_meta(path, *keys), {"metadata": "read"}
    if _metadata_required(settings):
        raise DataError(
            f"{path}: metadata file missing and the dataset's setting is metadata: required "
            "(fetch it, or set metadata: optional to go on without item concepts)"
        )
    note = f"absent ({path.name}): items carry no category/brand concepts"
    log.warning("%s: metadata %s", path.parent, note)
    return pd.DataFrame(columns=_META_COLUMNS), {"metadata": note}


def _raw(interactions: pd.DataFrame, meta_path: Path, keys: tuple, settings: dict) -> RawData:
    meta, stats = _read_optional_meta(meta_path, keys, settings)
    unlisted = ~interactions["item"].isin(meta["raw_id"])
    stats["n_interactions_without_metadata"] = int(unlisted.sum())
    depth = int(settings.get("category_min_depth", 1))
    paths = meta[["raw_id", "categories"]].assign(
        concept=meta["categories"].map(lambda path: path[depth:])
    )
    categories = paths.explode("concept").dropna(subset=["concept"])
    categories = categories[
        (categories["concept"] != "") & ~categories["concept"].str.contains("<", regex=False)
    ].assign(family="category")
    brands = meta.dropna(subset=["brand"]).rename(columns={"brand": "concept"})
    brands = brands.assign(family="brand")
    concepts = pd.concat(
        [categories[["raw_id", "family", "concept"]], brands[["raw_id", "family", "concept"]]],
        ignore_index=True,
    ).assign(entity="item")
    return RawData(
        interactions=interactions,
        items=meta[["raw_id", "title", "year"]],
        users=None,
        concepts=concepts,
        stats=stats,
    )


SETTINGS = {
    "category": {
        "description": "amazon2018/amazon2023: the category file name, e.g. Books.",
        "type": "string",
        "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*$",
    },
    "category_min_depth": {
        "description": "amazon: depth of the category path used as concepts.",
        "type": "integer",
        "minimum": 0,
    },
    "metadata": {
        "description": "amazon: without the metadata file items carry no category/brand "
        "concepts (optional, said in the log and stats.json), or the run stops (required).",
        "enum": ["optional", "required"],
    },
}

SPEC_2018 = register_dataset(
    DatasetSpec(
        name="amazon2018",
        description="Amazon reviews 2018, per-category 5-core reviews + metadata (`category`).",
        licence=LICENCE,
        homepage="https://nijianmo.github.io/amazon/",
        resources=resources_2018,
        read=read_2018,
        settings=SETTINGS,
    )
)
SPEC_2023 = register_dataset(
    DatasetSpec(
        name="amazon2023",
        description="Amazon reviews 2023, per-category reviews + metadata (`category`).",
        licence=LICENCE,
        homepage="https://amazon-reviews-2023.github.io/",
        resources=resources_2023,
        read=read_2023,
        settings=SETTINGS,
    )
)
