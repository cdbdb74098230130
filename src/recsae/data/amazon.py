"""Amazon reviews (McAuley lab): the 2014 and 2018 per-category 5-core files, the 2023 release.

Settings: ``category`` (file name stem, e.g. "Books", "Video_Games"; required; letters, digits,
``_`` and ``-`` only), ``category_min_depth`` (default 1: the category path's root, the file's
own category shared by every item, is left out, and so is a repetition of it further down),
``metadata`` (``optional``, the default: without the metadata file the items carry no product
concepts, which the log and stats.json say; ``required``: its absence stops the run),
``price_buckets`` and ``sales_rank_buckets`` (default 4 each; 0 leaves the family out).
Implicit feedback: set ``min_rating`` (e.g. 4). Default split: leave-last-out by review time.
* ``amazon2014``: ``reviews_<Category>_5.json.gz`` (reviewerID, asin, overall, unixReviewTime)
  and ``meta_<Category>.json.gz`` (Python dict literals: asin, title, categories (a list of
  paths), brand, price (a number), salesRank ({top category: rank})).
* ``amazon2018``: ``<Category>_5.json.gz`` (same review keys) and ``meta_<Category>.json.gz``
  (asin, title, category, brand, price ("$12.99"), rank ("1,234 in Toys ("), date; some files
  hold Python dict literals instead of JSON, both are read).
* ``amazon2023``: ``<Category>.jsonl.gz`` (user_id, parent_asin, rating, timestamp in ms) and
  ``meta_<Category>.jsonl.gz`` (parent_asin, title, categories, store, price; no sales rank).
Concepts (items): the category path entries (family "category"), the brand / store with its
spellings merged (family "brand", ``brand_key``), price buckets (family "price": quantiles of
the reviewed products' prices) and sales-rank buckets (family "sales_rank"). A product listed on
several metadata lines is merged into one (the first non-empty value of each field); stats.json
counts the lines (``metadata_duplicate_lines``).
"""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsae.data.parsing import MalformedInputError, iter_records, read_json_lines
from recsae.data.registry import DatasetSpec, RawData, Resource, register_dataset
from recsae.errors import DataError

log = logging.getLogger(__name__)

URL_2014 = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
URL_2018 = "https://jmcauley.ucsd.edu/data/amazon_v2"
URL_2023 = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw"
LICENCE = (
    "Research use; cite McAuley et al. (SIGIR 2015) and He & McAuley (WWW 2016) for 2014, "
    "Ni, Li & McAuley (EMNLP 2019) for 2018 and Hou et al. (2024, arXiv:2403.03952) for 2023."
)
REVIEW_SPLIT = {"protocol": "leave_last_out", "test_n": 1, "valid_n": 1}
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_PRICE = re.compile(r"^\s*\$?\s*(\d[\d,]*(?:\.\d+)?)")
_RANK = re.compile(r"#?(\d[\d,]*)\s+in\b")
CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
METADATA_CHOICES = ("optional", "required")
DEFAULT_BUCKETS = 4
CORPORATE_SUFFIXES = frozenset(
    "inc incorporated llc llp lp ltd limited co corp corporation company plc gmbh ag sa pty".split()
)
_META_COLUMNS = ["raw_id", "title", "year", "brand", "categories", "price", "sales_rank"]


@dataclass(frozen=True)
class MetaKeys:
    """Where one release keeps a product's fields: id, brand, date (None: no date), the
    category key(s) tried in order, price, and sales rank (None: not in this release)."""

    id: str
    brand: str
    date: str | None
    price: str
    rank: str | None


META_2014 = MetaKeys("asin", "brand", None, "price", "salesRank")
META_2018 = MetaKeys("asin", "brand", "date", "price", "rank")
META_2023 = MetaKeys("parent_asin", "store", None, "price", None)


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


def resources_2014(settings: dict) -> list[Resource]:
    cat = _category(settings)
    return [
        Resource("amazon2014", f"reviews_{cat}_5.json.gz", f"{URL_2014}/reviews_{cat}_5.json.gz",
                 (f"reviews_{cat}_5.json.gz",), unpack=False),
        Resource("amazon2014", f"meta_{cat}.json.gz", f"{URL_2014}/meta_{cat}.json.gz",
                 (f"meta_{cat}.json.gz",), unpack=False,
                 optional=not _metadata_required(settings)),
    ]  # fmt: skip


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


def _reviews_5core(path: Path) -> pd.DataFrame:
    """The 2014 / 2018 review columns as interactions."""
    reviews = read_json_lines(
        path, {"reviewerID": "str", "asin": "str", "overall": "float", "unixReviewTime": "int"}
    )
    return pd.DataFrame(
        {
            "user": reviews["reviewerID"],
            "item": reviews["asin"],
            "rating": reviews["overall"],
            "timestamp": reviews["unixReviewTime"],
        }
    )


def read_2014(raw_dir: Path, settings: dict, seed: int) -> RawData:
    cat = _category(settings)
    interactions = _reviews_5core(Path(raw_dir) / f"reviews_{cat}_5.json.gz")
    return _raw(interactions, Path(raw_dir) / f"meta_{cat}.json.gz", META_2014, settings)


def read_2018(raw_dir: Path, settings: dict, seed: int) -> RawData:
    cat = _category(settings)
    interactions = _reviews_5core(Path(raw_dir) / f"{cat}_5.json.gz")
    return _raw(interactions, Path(raw_dir) / f"meta_{cat}.json.gz", META_2018, settings)


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
    return _raw(interactions, Path(raw_dir) / f"meta_{cat}.jsonl.gz", META_2023, settings)


def read_meta(path: Path, keys: MetaKeys) -> pd.DataFrame:
    """One row per metadata line: raw_id, title, year, brand, categories (list of category paths,
    each a list of str), price (float, NaN unknown), sales_rank (float, NaN unknown)."""
    rows = []
    for line_no, record in iter_records(path, literal_fallback=True):
        if not isinstance(record.get(keys.id), str):
            raise MalformedInputError(f"{path}, line {line_no}: missing key {keys.id!r}")
        date = record.get(keys.date) if keys.date else None
        year = _YEAR.search(date) if isinstance(date, str) else None
        rows.append(
            (
                record[keys.id],
                _title(record.get("title")),
                int(year.group(1)) if year else None,
                _text(record.get(keys.brand)),
                _category_paths(record.get("category", record.get("categories"))),
                parse_price(record.get(keys.price)),
                parse_rank(record.get(keys.rank)) if keys.rank else np.nan,
            )
        )
    return pd.DataFrame(rows, columns=_META_COLUMNS)


def _category_paths(value) -> list[list[str]]:
    """A product's category paths: 2018 / 2023 hold one path (a list of str), 2014 a list of
    paths; entries are HTML-unescaped and stripped."""
    if not isinstance(value, list) or not value:
        return []
    paths = value if isinstance(value[0], list) else [value]
    return [[html.unescape(c).strip() for c in path if isinstance(c, str)] for path in paths]


def _text(value) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return html.unescape(value).strip()


def _title(value) -> str | None:
    """The title, or None when it is missing or HTML debris (a tag where the title was)."""
    text = _text(value)
    return None if text is None or text.startswith("<") else text


def parse_price(value) -> float:
    """A price as a number: 12.99, "$12.99", "$1,250.00", "$10.99 - $25.00" (the lower end);
    NaN for anything else (an empty string, page debris)."""
    if isinstance(value, bool):
        return np.nan
    if isinstance(value, int | float):
        return float(value) if np.isfinite(value) and value > 0 else np.nan
    match = _PRICE.match(value) if isinstance(value, str) else None
    return float(match.group(1).replace(",", "")) if match else np.nan


def parse_rank(value) -> float:
    """A sales rank as a number: 1234, {"Toys & Games": 1234} (2014, the first entry),
    "1,234 in Toys (" or a list of such strings (2018, the first); NaN when absent."""
    if isinstance(value, dict):
        value = next(iter(value.values()), None)
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if value > 0 else np.nan
    match = _RANK.search(value) if isinstance(value, str) else None
    return float(match.group(1).replace(",", "")) if match else np.nan


def brand_key(name: str) -> str:
    """The spelling-independent form of a brand: accents, case, punctuation and trailing
    corporate suffixes dropped, runs of single letters joined ("Meredith Corporation" and
    "MEREDITH" -> "meredith"; "T.G.I. Friday's" -> "tgi fridays")."""
    text = unicodedata.normalize("NFKD", html.unescape(name).casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"['\u2019]", "", text.replace("&", " and "))
    tokens = re.findall(r"[a-z0-9]+", text)
    while len(tokens) > 1 and tokens[-1] in CORPORATE_SUFFIXES:
        tokens.pop()
    joined = re.sub(r"\b(\w) (?=\w\b)", r"\1", " ".join(tokens))
    return joined or name.strip().casefold()


def brand_labels(brands: pd.Series) -> pd.Series:
    """Each brand's label: the most frequent spelling among those with the same ``brand_key``
    (ties: the shortest, then the first alphabetically). ``brands``: (n,) str, no nulls."""
    spellings = pd.DataFrame({"brand": brands, "key": brands.map(brand_key)})
    counts = spellings.value_counts(["key", "brand"]).rename("n").reset_index()
    counts = counts.assign(length=counts["brand"].str.len())
    best = counts.sort_values(["key", "n", "length", "brand"], ascending=[True, False, True, True])
    label = best.drop_duplicates("key").set_index("key")["brand"]
    return spellings["key"].map(label)


def quantile_buckets(values: pd.Series, n_buckets: int, label) -> pd.Series:
    """Each value's quantile bucket as a label (NaN stays NaN). ``values``: (n,) float; edges
    are the quantiles of the non-NaN values, repeated edges merged (ties put many values in one
    bucket); ``label(low, high, first)`` names the bucket (low, high] ([low, high] if first)."""
    known = values.dropna()
    if n_buckets < 1 or known.nunique() < 2:
        return pd.Series(np.nan, index=values.index, dtype=object)
    edges = np.unique(np.quantile(known.to_numpy(), np.linspace(0, 1, n_buckets + 1)))
    bucket = np.searchsorted(edges, values.to_numpy(), side="left")
    bucket = np.clip(bucket, 1, len(edges) - 1)
    names = np.array([label(edges[b - 1], edges[b], b == 1) for b in range(1, len(edges))])
    return pd.Series(names[bucket - 1], index=values.index, dtype=object).where(values.notna())


def _money(value: float) -> str:
    return f"${value:,.0f}" if float(value).is_integer() else f"${value:,.2f}"


def price_label(low: float, high: float, first: bool) -> str:
    return f"{_money(low)}–{_money(high)}" if first else f"over {_money(low)}–{_money(high)}"


def rank_label(low: float, high: float, first: bool) -> str:
    start = int(low) if first else int(low) + 1
    return f"sales rank {start:,}–{int(high):,}"


def merge_duplicate_lines(meta: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """(one row per product, stats): a product on several lines takes the first non-empty value
    of each field in file order; stats counts the lines and the extra lines."""
    counted = meta.assign(categories=meta["categories"].map(lambda paths: paths or None))
    merged = counted.groupby("raw_id", sort=False, as_index=False).first()
    merged["categories"] = merged["categories"].map(lambda paths: paths or [])
    extra = len(meta) - len(merged)
    if extra:
        log.info(
            "metadata: %d lines for %d products; %d duplicate lines merged",
            len(meta), len(merged), extra,
        )  # fmt: skip
    stats = {"metadata_lines": len(meta), "metadata_duplicate_lines": extra}
    return merged[_META_COLUMNS], stats


def _read_optional_meta(path: Path, keys: MetaKeys, settings: dict) -> tuple[pd.DataFrame, dict]:
    """(metadata, stats entries): an absent file is an error when ``metadata: required``, else
    an empty table and a note (logged and put into stats.json)."""
    if path.is_file():
        meta, stats = merge_duplicate_lines(read_meta(path, keys))
        return meta, {"metadata": "read", **stats}
    if _metadata_required(settings):
        raise DataError(
            f"{path}: metadata file missing and the dataset's setting is metadata: required "
            "(fetch it, or set metadata: optional to go on without item concepts)"
        )
    note = f"absent ({path.name}): items carry no category/brand/price concepts"
    log.warning("%s: metadata %s", path.parent, note)
    return pd.DataFrame(columns=_META_COLUMNS), {"metadata": note}


def _category_concepts(meta: pd.DataFrame, depth: int) -> pd.DataFrame:
    """raw_id, concept: every entry of every category path from ``depth`` on, without markup
    and, when ``depth`` >= 1, without repetitions of the path's root."""
    rows = [
        (raw_id, entry)
        for raw_id, paths in zip(meta["raw_id"], meta["categories"], strict=True)
        for path in paths
        for entry in path[depth:]
        if entry and "<" not in entry and not (depth >= 1 and entry == path[0])
    ]
    return pd.DataFrame(rows, columns=["raw_id", "concept"])


def _buckets(settings: dict, key: str) -> int:
    value = settings.get(key, DEFAULT_BUCKETS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"amazon: {key} must be an integer >= 0, got {value!r}")
    return value


def product_concepts(meta: pd.DataFrame, reviewed: pd.Series, settings: dict) -> tuple:
    """(concepts: raw_id, family, concept; stats entries) of the merged metadata ``meta``;
    price and sales-rank quantiles are those of the ``reviewed`` products (raw ids)."""
    depth = int(settings.get("category_min_depth", 1))
    parts = [_category_concepts(meta, depth).assign(family="category")]
    brands = meta.dropna(subset=["brand"])
    labels = brand_labels(brands["brand"])
    parts.append(pd.DataFrame({"raw_id": brands["raw_id"], "concept": labels, "family": "brand"}))
    on_sale = meta[meta["raw_id"].isin(reviewed)]
    for column, family, key, label in (
        ("price", "price", "price_buckets", price_label),
        ("sales_rank", "sales_rank", "sales_rank_buckets", rank_label),
    ):
        bucket = quantile_buckets(on_sale[column].astype(float), _buckets(settings, key), label)
        parts.append(
            pd.DataFrame({"raw_id": on_sale["raw_id"], "concept": bucket, "family": family})
        )
    concepts = pd.concat(parts, ignore_index=True).dropna(subset=["concept"])
    stats = {
        "brand_spellings": int(brands["brand"].nunique()),
        "brands_after_merging_spellings": int(labels.nunique()),
        "reviewed_products_with_price": int(on_sale["price"].notna().sum()),
        "reviewed_products_with_sales_rank": int(on_sale["sales_rank"].notna().sum()),
    }
    return concepts[["raw_id", "family", "concept"]], stats


def _raw(interactions: pd.DataFrame, meta_path: Path, keys: MetaKeys, settings: dict) -> RawData:
    meta, stats = _read_optional_meta(meta_path, keys, settings)
    unlisted = ~interactions["item"].isin(meta["raw_id"])
    stats["n_interactions_without_metadata"] = int(unlisted.sum())
    concepts, concept_stats = product_concepts(meta, interactions["item"], settings)
    return RawData(
        interactions=interactions,
        items=meta[["raw_id", "title", "year"]],
        users=None,
        concepts=concepts.assign(entity="item"),
        stats=stats | concept_stats,
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
        "description": "amazon: without the metadata file items carry no product concepts "
        "(optional, said in the log and stats.json), or the run stops (required).",
        "enum": ["optional", "required"],
    },
    "price_buckets": {
        "description": "amazon: price quantile buckets as concepts (default 4; 0: none).",
        "type": "integer",
        "minimum": 0,
    },
    "sales_rank_buckets": {
        "description": "amazon: sales-rank quantile buckets as concepts (default 4; 0: none).",
        "type": "integer",
        "minimum": 0,
    },
}

SPEC_2014 = register_dataset(
    DatasetSpec(
        name="amazon2014",
        description="Amazon reviews 2014, per-category 5-core reviews + metadata (`category`).",
        licence=LICENCE,
        homepage="https://jmcauley.ucsd.edu/data/amazon/",
        resources=resources_2014,
        read=read_2014,
        default_split=REVIEW_SPLIT,
        settings=SETTINGS,
    )
)
SPEC_2018 = register_dataset(
    DatasetSpec(
        name="amazon2018",
        description="Amazon reviews 2018, per-category 5-core reviews + metadata (`category`).",
        licence=LICENCE,
        homepage="https://nijianmo.github.io/amazon/",
        resources=resources_2018,
        read=read_2018,
        default_split=REVIEW_SPLIT,
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
        default_split=REVIEW_SPLIT,
        settings=SETTINGS,
    )
)
