"""Yelp Open Dataset: user -> business star ratings, business categories as concepts.

The licence requires accepting Yelp's terms, so there is no public download address. Settings:
``url`` (your own download link) or ``archive`` (a local yelp_dataset.zip / .tar / .tar.gz, a
zip that wraps the tar is unpacked too). Alternatively place the two JSON files in the raw dir or
under ``<mirror>/yelp/``. Concepts (items): business categories (comma-separated, family
"category"), the city with its state (family "city", e.g. "Tucson, AZ"), the state (family
"state") and the price range (``attributes.RestaurantsPriceRange2`` 1-4, family "price", "$" to
"$$$$") where the business lists them. Default split: leave-last-out by review time.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from recsae.data.parsing import iter_records, read_json_lines
from recsae.data.registry import DatasetSpec, RawData, Resource, local_archive, register_dataset
from recsae.errors import DataError

REVIEWS = "yelp_academic_dataset_review.json"
BUSINESSES = "yelp_academic_dataset_business.json"
LICENCE = "Yelp Dataset Terms of Use: non-commercial, academic use only; accept them first."
HOW_TO_GET = (
    "The Yelp Open Dataset needs its terms accepted: open "
    "https://business.yelp.com/data/resources/open-dataset/ , accept the terms, download the JSON "
    "archive (yelp_dataset.zip or .tar), then set datasets.<name>.archive to its local path "
    "(or datasets.<name>.url to your download link)."
)


def resources(settings: dict) -> list[Resource]:
    local = local_archive(settings)
    url = settings.get("url")
    if local is not None:
        filename = local.name
    elif url:
        filename = Path(urlparse(url).path).name or "yelp_dataset.tar"
    else:
        filename = "yelp_dataset.tar"
    return [Resource("yelp", filename, url, (REVIEWS, BUSINESSES), local=local)]


def read(raw_dir: Path, settings: dict, seed: int) -> RawData:
    """Reviews (user_id, business_id, stars, date) and business names and categories."""
    raw_dir = Path(raw_dir)
    reviews = read_json_lines(
        raw_dir / REVIEWS,
        {"user_id": "str", "business_id": "str", "stars": "float", "date": "str"},
    )
    when = pd.to_datetime(reviews["date"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
    if when.isna().any():
        row = int(when.isna().to_numpy().nonzero()[0][0])
        raise DataError(
            f"{raw_dir / REVIEWS}: review {row + 1}: date {reviews['date'].iloc[row]!r} "
            "is not 'YYYY-MM-DD HH:MM:SS'"
        )
    interactions = pd.DataFrame(
        {
            "user": reviews["user_id"],
            "item": reviews["business_id"],
            "rating": reviews["stars"],
            "timestamp": (when - pd.Timestamp(0)) // pd.Timedelta(seconds=1),
        }
    )
    business, concepts = read_businesses(raw_dir / BUSINESSES)
    unlisted = ~interactions["item"].isin(business["raw_id"])
    return RawData(
        interactions=interactions,
        items=business,
        users=None,
        concepts=concepts.assign(entity="item"),
        stats={
            "n_interactions_without_metadata": int(unlisted.sum()),
            "n_businesses_listed": len(business),
            **{
                f"n_businesses_with_{family}": int(n)
                for family, n in concepts.groupby("family")["raw_id"].nunique().items()
            },
        },
    )


def read_businesses(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items: raw_id, title, year; concepts: raw_id, family, concept) of the business file."""
    items, concepts = [], []
    for line_no, record in iter_records(path):
        raw_id = record.get("business_id")
        if not isinstance(raw_id, str):
            raise DataError(f"{path}, line {line_no}: missing key 'business_id'")
        items.append((raw_id, _text(record.get("name")), None))
        concepts += [(raw_id, "category", c) for c in business_categories(record)]
        city, state = _text(record.get("city")), _text(record.get("state"))
        if state:
            concepts.append((raw_id, "state", state))
        if city:
            concepts.append((raw_id, "city", f"{city}, {state}" if state else city))
        price = price_range(record)
        if price:
            concepts.append((raw_id, "price", price))
    return (
        pd.DataFrame(items, columns=["raw_id", "title", "year"]),
        pd.DataFrame(concepts, columns=["raw_id", "family", "concept"]),
    )


def business_categories(record: dict) -> list[str]:
    """The comma-separated ``categories`` string as a list (empty when null)."""
    text = record.get("categories")
    if not isinstance(text, str):
        return []
    return [c.strip() for c in text.split(",") if c.strip()]


def price_range(record: dict) -> str | None:
    """``attributes.RestaurantsPriceRange2`` ("1".."4") as "$".."$$$$"; None when absent or not
    1-4 (the file also holds "None")."""
    attributes = record.get("attributes")
    value = attributes.get("RestaurantsPriceRange2") if isinstance(attributes, dict) else None
    text = str(value).strip()
    return "$" * int(text) if text in {"1", "2", "3", "4"} else None


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


SPEC = register_dataset(
    DatasetSpec(
        name="yelp",
        description="Yelp Open Dataset reviews (stars) with business categories.",
        licence=LICENCE,
        homepage="https://business.yelp.com/data/resources/open-dataset/",
        resources=resources,
        read=read,
        settings={
            "url": {
                "description": "yelp: a download URL you obtained after accepting Yelp's terms.",
                "type": "string",
                "pattern": "^https?://[^/?#]+/",
            }
        },
        how_to_get=HOW_TO_GET,
        default_split={"protocol": "leave_last_out", "test_n": 1, "valid_n": 1},
    )
)
